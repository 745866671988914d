"""The egress guard's decisions, without sockets: addresses, URLs, resolved names."""

from __future__ import annotations

import ipaddress
import re
import socket

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from segue.delivery.egress import (
    AddressRule,
    EgressBlockedError,
    EgressPolicy,
    GuardedResolver,
    blocked_cause,
)

DEFAULT = EgressPolicy()


def reason(address: str, policy: EgressPolicy = DEFAULT) -> str | None:
    return policy.blocked_reason(ipaddress.ip_address(address))


# -- addresses ----------------------------------------------------------------
@pytest.mark.parametrize("address", ["127.0.0.1", "127.255.255.254", "::1"])
def test_loopback_is_blocked(address: str) -> None:
    why = reason(address)
    assert why is not None and "loopback" in why and address in why


@pytest.mark.parametrize(
    "address",
    ["10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.1", "192.168.1.1", "fc00::1"],
)
def test_private_is_blocked(address: str) -> None:
    why = reason(address)
    assert why is not None and "private" in why


@pytest.mark.parametrize("address", ["169.254.0.1", "169.254.1.1", "fe80::1"])
def test_link_local_is_blocked(address: str) -> None:
    why = reason(address)
    assert why is not None and "link-local" in why


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254"])
def test_cloud_metadata_is_blocked_and_named(address: str) -> None:
    why = reason(address)
    assert why is not None and "metadata" in why


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::ffff:192.168.0.10", "private"),
    ],
)
def test_ipv4_mapped_ipv6_is_judged_as_the_ipv4_address(address: str, kind: str) -> None:
    why = reason(address)
    assert why is not None and kind in why


@pytest.mark.parametrize("address", ["100.64.0.1", "100.100.100.200", "100.127.255.254"])
def test_cgnat_shared_space_is_blocked(address: str) -> None:
    assert reason(address) is not None


@pytest.mark.parametrize(
    "address",
    ["0.0.0.0", "::", "224.0.0.1", "255.255.255.255", "240.0.0.1", "198.18.0.1", "192.0.0.1"],
)
def test_unspecified_multicast_reserved_and_special_are_blocked(address: str) -> None:
    assert reason(address) is not None


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "100.63.255.255",
        "100.128.0.1",
        "2606:4700:4700::1111",
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert reason(address) is None


def test_allow_list_opens_exactly_the_listed_networks() -> None:
    policy = EgressPolicy.from_config(["127.0.0.0/8", "10.1.0.0/16"])
    assert reason("127.0.0.1", policy) is None
    assert reason("127.8.9.10", policy) is None
    assert reason("10.1.2.3", policy) is None
    assert reason("::ffff:127.0.0.1", policy) is None  # mapped: same address
    assert reason("10.2.0.1", policy) is not None
    assert reason("::1", policy) is not None  # the IPv6 loopback was not allowed
    assert reason("169.254.169.254", policy) is not None
    assert reason("192.168.0.1", policy) is not None


def test_allow_list_can_open_the_metadata_address_only_explicitly() -> None:
    policy = EgressPolicy.from_config(["169.254.169.254/32"])
    assert reason("169.254.169.254", policy) is None
    assert reason("169.254.169.253", policy) is not None


def test_from_config_accepts_host_bits_and_single_addresses() -> None:
    policy = EgressPolicy.from_config(["10.0.0.5/8", "192.168.1.7"], allow_http=True)
    assert policy.allow_http is True
    assert reason("10.9.9.9", policy) is None
    assert reason("192.168.1.7", policy) is None
    assert reason("192.168.1.8", policy) is not None
    with pytest.raises(ValueError, match="not-a-network"):
        EgressPolicy.from_config(["not-a-network"])


# -- URLs -----------------------------------------------------------------
@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://127.0.0.1/", "ws://a.b/"]
)
def test_only_http_and_https_can_be_called(url: str) -> None:
    with pytest.raises(EgressBlockedError, match=r"http\(s\)"):
        DEFAULT.check_url(url)


def test_plain_http_needs_allow_http() -> None:
    with pytest.raises(EgressBlockedError, match="plain http"):
        DEFAULT.check_url("http://example.com/hook")
    assert str(DEFAULT.check_url("http://example.com/hook", allow_http=True)) == (
        "http://example.com/hook"
    )
    assert EgressPolicy(allow_http=True).check_url("http://example.com/").host == "example.com"


def test_https_to_a_name_passes_the_url_check() -> None:
    # names are judged after DNS, at connect time (GuardedResolver), not here
    assert DEFAULT.check_url("https://localhost/hook").host == "localhost"
    assert DEFAULT.check_url("https://hooks.example.com/x?y=1").path == "/x"


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://127.0.0.1/hook", "loopback"),
        ("https://10.0.0.1/", "private"),
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://[::1]:8080/", "loopback"),
        ("https://[::ffff:127.0.0.1]/", "loopback"),
        ("https://[fe80::1]/", "link-local"),
        ("https://100.64.0.1/", "public"),
    ],
)
def test_literal_addresses_are_refused_before_connecting(url: str, kind: str) -> None:
    with pytest.raises(EgressBlockedError, match=kind) as info:
        DEFAULT.check_url(url)
    assert "[egress] allow" in str(info.value)  # says how to allow it


def test_literal_address_in_the_allow_list_passes() -> None:
    policy = EgressPolicy.from_config(["127.0.0.0/8"])
    assert policy.check_url("https://127.0.0.1:9999/hook").port == 9999


def test_scheme_is_checked_before_http_and_address() -> None:
    with pytest.raises(EgressBlockedError, match=r"http\(s\)"):
        EgressPolicy(allow_http=True).check_url("ftp://127.0.0.1/")


def test_a_url_without_host_is_refused() -> None:
    with pytest.raises(EgressBlockedError):
        DEFAULT.check_url("https:///path")


# -- names, after DNS ---------------------------------------------------------
class ScriptedResolver(AbstractResolver):
    """Answers every name with the given addresses (no DNS traffic)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for address in self.addresses
        ]

    async def close(self) -> None:
        self.closed = True


async def test_a_name_resolving_only_to_blocked_addresses_is_refused() -> None:
    resolver = GuardedResolver(DEFAULT, ScriptedResolver("127.0.0.1", "::1"))
    with pytest.raises(EgressBlockedError) as info:
        await resolver.resolve("evil.example", 443)
    message = str(info.value)
    assert "evil.example" in message and "loopback" in message


async def test_a_name_resolving_to_the_metadata_address_is_refused() -> None:
    resolver = GuardedResolver(DEFAULT, ScriptedResolver("169.254.169.254"))
    with pytest.raises(EgressBlockedError, match="metadata"):
        await resolver.resolve("metadata.example", 80)


async def test_blocked_answers_are_dropped_and_public_ones_kept() -> None:
    resolver = GuardedResolver(DEFAULT, ScriptedResolver("10.0.0.1", "93.184.215.14", "::1"))
    results = await resolver.resolve("mixed.example", 443)
    assert [r["host"] for r in results] == ["93.184.215.14"]


async def test_the_allow_list_applies_to_resolved_addresses() -> None:
    policy = EgressPolicy.from_config(["127.0.0.0/8"])
    resolver = GuardedResolver(policy, ScriptedResolver("127.0.0.1", "::1"))
    results = await resolver.resolve("localhost", 80)
    assert [r["host"] for r in results] == ["127.0.0.1"]


async def test_close_closes_the_inner_resolver() -> None:
    inner = ScriptedResolver("8.8.8.8")
    await GuardedResolver(DEFAULT, inner).close()
    assert inner.closed


def test_blocked_cause_finds_the_guard_behind_aiohttp_errors() -> None:
    blocked = EgressBlockedError("10.0.0.1 is a private address")
    outer = RuntimeError("wrapped")
    outer.__cause__ = blocked
    assert blocked_cause(outer) is blocked

    class Key:
        ssl = None
        host = "x"
        port = 1

    wrapped = aiohttp.ClientConnectorError(Key(), blocked)  # type: ignore[arg-type]
    assert blocked_cause(wrapped) is blocked
    assert blocked_cause(ConnectionRefusedError()) is None
    assert blocked_cause(aiohttp.ClientConnectorError(Key(), ConnectionRefusedError())) is None  # type: ignore[arg-type]


# -- allow rules with ports, and segue's own port ------------------------------------------
@pytest.mark.parametrize(
    ("text", "network", "port"),
    [
        ("127.0.0.1:9000", "127.0.0.1/32", 9000),
        ("127.0.0.0/8", "127.0.0.0/8", None),
        ("10.1.0.0/16:443", "10.1.0.0/16", 443),
        ("::1", "::1/128", None),
        ("[::1]:8080", "::1/128", 8080),
        ("[fd00::/8]:443", "fd00::/8", 443),
        ("[::1]", "::1/128", None),
        (" 127.0.0.1 ", "127.0.0.1/32", None),
    ],
)
def test_allow_rules_name_a_network_and_maybe_a_port(
    text: str, network: str, port: int | None
) -> None:
    rule = AddressRule.parse(text)
    assert rule.network == ipaddress.ip_network(network)
    assert rule.port == port


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("127.0.0.1:0", "1 to 65535"),
        ("127.0.0.1:70000", "1 to 65535"),
        ("127.0.0.1:http", "1 to 65535"),
        ("[::1:8080", "[::1]:8080"),
        ("[::1]8080", "[::1]:8080"),
        ("::1:8080:x", "not an address"),
        ("localhost", "not an address"),
        ("", "not an address"),
    ],
)
def test_bad_allow_rules_say_which_forms_work(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        AddressRule.parse(text)


def test_an_allowed_port_opens_that_port_only() -> None:
    policy = EgressPolicy.from_config(["127.0.0.1:9000", "[::1]:8080"])
    loopback, v6 = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")
    assert policy.blocked_reason(loopback, 9000) is None
    assert policy.blocked_reason(v6, 8080) is None
    assert "loopback" in (policy.blocked_reason(loopback, 9001) or "")
    assert "loopback" in (policy.blocked_reason(v6, 9000) or "")
    assert policy.check_url("http://127.0.0.1:9000/x", allow_http=True).port == 9000
    with pytest.raises(EgressBlockedError, match=r'"127\.0\.0\.1:8088"'):
        policy.check_url("http://127.0.0.1:8088/metrics", allow_http=True)


def test_segues_own_port_is_never_reachable() -> None:
    policy = EgressPolicy.from_config(
        ["127.0.0.0/8", "::1", "192.0.2.7"], own_ports=[8088], own_addresses=["192.0.2.7"]
    )
    for address in ("127.0.0.1", "127.9.9.9", "::1", "0.0.0.0", "::ffff:127.0.0.1", "192.0.2.7"):
        reason = policy.blocked_reason(ipaddress.ip_address(address), 8088)
        assert reason is not None and "segue itself" in reason, address
    assert policy.blocked_reason(ipaddress.ip_address("127.0.0.1"), 8089) is None
    with pytest.raises(EgressBlockedError, match="segue itself"):
        policy.check_url("http://127.0.0.1:8088/metrics", allow_http=True)


async def test_a_name_for_segue_itself_is_refused_after_resolving() -> None:
    policy = EgressPolicy.from_config(["127.0.0.0/8", "::1"], own_ports=[8088])
    resolver = GuardedResolver(policy, ScriptedResolver("127.0.0.1", "::1"))
    with pytest.raises(EgressBlockedError, match="segue itself"):
        await resolver.resolve("localhost", 8088)
    assert [r["host"] for r in await resolver.resolve("localhost", 8089)] == ["127.0.0.1", "::1"]
