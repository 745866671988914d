"""The egress guard: untrusted URLs (webhooks, function fetch) never reach a private network.

Every destination address is checked when the connection is made, after DNS, so a
name that resolves to 127.0.0.1 or 169.254.169.254 is refused as surely as the
literal address (and a DNS answer cannot change between check and connect).
Blocked unless explicitly allowed: loopback, private, link-local, shared, reserved,
multicast and cloud-metadata addresses; plain http unless allowed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


class EgressBlockedError(OSError):
    """The URL or the address it resolves to is not allowed by the egress policy."""


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    allow: tuple[IPNetwork, ...] = ()
    allow_http: bool = False

    @classmethod
    def from_config(cls, allow: Iterable[str] = (), allow_http: bool = False) -> EgressPolicy:
        networks = tuple(ipaddress.ip_network(item, strict=False) for item in allow)
        return cls(allow=networks, allow_http=allow_http)

    def blocked_reason(self, address: IPAddress) -> str | None:
        """Why ``address`` may not be contacted, or None if it may."""
        if isinstance(address, ipaddress.IPv6Address):
            # IPv4 inside IPv6 (mapped, 6to4, Teredo) is judged as the IPv4 it carries
            embedded = address.ipv4_mapped or address.sixtofour
            if embedded is None and address.teredo is not None:
                embedded = address.teredo[1]
            if embedded is not None:
                address = embedded
        if any(address in network for network in self.allow):
            return None
        if address in METADATA_ADDRESSES:
            return f"{address} is a cloud metadata address"
        if address.is_loopback:
            return f"{address} is a loopback address"
        if address.is_link_local:
            return f"{address} is a link-local address"
        if address.is_private:
            return f"{address} is a private address"
        if address.is_multicast or address.is_reserved or address.is_unspecified:
            return f"{address} is not a unicast public address"
        if not address.is_global:
            return f"{address} is not a public address"
        return None

    def check_url(self, url: str | URL, *, allow_http: bool = False) -> URL:
        """Refuse a URL before any connection: scheme, plain http, literal addresses."""
        parsed = URL(url, encoded=True) if isinstance(url, str) else url  # keep it as sent
        if parsed.scheme not in ("http", "https"):
            raise EgressBlockedError(f"only http(s) URLs can be called, not {parsed.scheme!r}")
        if parsed.scheme == "http" and not (self.allow_http or allow_http):
            raise EgressBlockedError(
                "plain http is not allowed: use https, or set [egress] allow_http = true"
            )
        if not parsed.host:
            raise EgressBlockedError(f"the URL {str(parsed)!r} has no host")
        try:
            literal = ipaddress.ip_address(parsed.host.strip("[]"))
        except ValueError:
            return parsed
        reason = self.blocked_reason(literal)
        if reason:
            raise EgressBlockedError(f"{reason}; allow it in [egress] allow to call it")
        return parsed


@dataclass
class GuardedResolver(AbstractResolver):
    """Resolves names with the system resolver, then drops every blocked address."""

    policy: EgressPolicy
    _inner: AbstractResolver = field(default_factory=aiohttp.ThreadedResolver)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed, reasons = [], []
        for result in results:
            reason = self.policy.blocked_reason(ipaddress.ip_address(result["host"]))
            if reason is None:
                allowed.append(result)
            else:
                reasons.append(reason)
        if not allowed:
            raise EgressBlockedError(
                f"{host} resolves only to blocked addresses ({'; '.join(reasons)});"
                " allow them in [egress] allow to call it"
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def guarded_session(
    policy: EgressPolicy, *, limit: int = 256, **session_options: Any
) -> aiohttp.ClientSession:
    """One shared client session with keep-alive whose every connection is guarded."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(policy),
        limit=limit,
        limit_per_host=0,
        ttl_dns_cache=10,
        keepalive_timeout=30,
    )
    return aiohttp.ClientSession(connector=connector, **session_options)


def blocked_cause(exc: BaseException) -> EgressBlockedError | None:
    """The EgressBlockedError behind an aiohttp connection error, if that was the cause."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, EgressBlockedError):
            return seen
        os_error = getattr(seen, "os_error", None)
        if isinstance(os_error, EgressBlockedError):
            return os_error
        seen = seen.__cause__ or seen.__context__
    return None
