"""The egress guard: untrusted URLs (webhooks, function fetch) never reach a private network.

Every destination address is checked when the connection is made, after DNS, so a
name that resolves to 127.0.0.1 or 169.254.169.254 is refused as surely as the
literal address (and a DNS answer cannot change between check and connect).
Blocked unless explicitly allowed: loopback, private, link-local, shared, reserved,
multicast and cloud-metadata addresses; plain http unless allowed. An allow rule can
name one port (``"127.0.0.1:9000"``), so that opening a test server does not open every
local port; and segue's own port is never reachable, whatever is allowed.
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
class AddressRule:
    """An address or network, on one port or on every port (``port`` None)."""

    network: IPNetwork
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> AddressRule:
        """A rule from its text: ``"10.0.0.0/8"``, ``"127.0.0.1:9000"``, ``"::1"``,
        ``"[::1]:8080"`` or ``"[fd00::/8]:443"``.

        ValueError (with the accepted forms) for anything else.
        """
        item, port = text.strip(), None
        if item.startswith("["):
            inside, bracket, rest = item[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ValueError(f"{text!r}: write an IPv6 address with a port as [::1]:8080")
            item, port = inside, _port(rest[1:], text) if rest else None
        elif item.count(":") == 1:  # IPv4 (or IPv4 network) with a port
            item, _, number = item.partition(":")
            port = _port(number, text)
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(
                f"{text!r} is not an address or network, with an optional port"
                ' ("127.0.0.1:9000", "[::1]:8080", "10.0.0.0/8")'
            ) from None
        return cls(network, port)

    def matches(self, address: IPAddress, port: int | None) -> bool:
        return address in self.network and (self.port is None or self.port == port)


def _port(number: str, text: str) -> int:
    if not number.isdigit() or not 0 < int(number) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return int(number)


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """IPv4 inside IPv6 (mapped, 6to4, Teredo) is judged as the IPv4 it carries."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None:
            return embedded
    return address


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """What webhooks and function fetches may reach.

    ``allow`` opens addresses that would otherwise be blocked (on one port, or all);
    ``own`` is segue's own listening ports, on which no local address is ever reachable
    from a destination or a function, whatever ``allow`` says.
    """

    allow: tuple[AddressRule, ...] = ()
    allow_http: bool = False
    own: tuple[AddressRule, ...] = ()

    @classmethod
    def from_config(
        cls,
        allow: Iterable[str] = (),
        allow_http: bool = False,
        *,
        own_ports: Iterable[int] = (),
        own_addresses: Iterable[str] = (),
    ) -> EgressPolicy:
        """``own_addresses``: where segue listens besides loopback (e.g. a LAN address)."""
        rules = tuple(AddressRule.parse(item) for item in allow)
        local = {"127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128", *own_addresses}
        own = tuple(
            AddressRule(ipaddress.ip_network(a, strict=False), port)
            for port in own_ports
            for a in sorted(local)
        )
        return cls(allow=rules, allow_http=allow_http, own=own)

    def blocked_reason(self, address: IPAddress, port: int | None = None) -> str | None:
        """Why ``address`` (on ``port``, when known) may not be contacted, or None if it may."""
        address = _embedded_ipv4(address)
        if port is not None and any(rule.matches(address, port) for rule in self.own):
            return f"{address} port {port} is segue itself"
        if any(rule.matches(address, port) for rule in self.allow):
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
        reason = self.blocked_reason(literal, parsed.port)
        if reason:
            raise EgressBlockedError(f"{reason}; {_how_to_allow(literal, parsed.port)}")
        return parsed


def _how_to_allow(address: IPAddress, port: int | None) -> str:
    shown = f"[{address}]" if address.version == 6 else str(address)
    example = f"{shown}:{port}" if port else shown
    return f'allow it in [egress] allow (e.g. "{example}") to call it'


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
            address = ipaddress.ip_address(result["host"])
            reason = self.policy.blocked_reason(address, result["port"] or port or None)
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
