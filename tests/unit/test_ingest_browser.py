"""Where analytics.js is told to send events: the public origin of a settings request."""

from __future__ import annotations

from typing import Any

import pytest

from segue.ingest.browser import cdn_settings, is_browser_route, public_origin


def scope(headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return {"scheme": "http", "headers": raw, "server": ("127.0.0.1", 8088), **extra}


def test_the_host_header_names_the_origin() -> None:
    assert public_origin(scope({"Host": "track.shop.test:8443"}), False) == (
        "http",
        "track.shop.test:8443",
    )
    assert public_origin(scope({"Host": "[::1]:8088"}, scheme="https"), False) == (
        "https",
        "[::1]:8088",
    )


def test_without_a_host_header_the_server_address_is_used() -> None:
    assert public_origin(scope({}), False) == ("http", "127.0.0.1:8088")
    assert public_origin(scope({}, server=("::1", 80)), False) == ("http", "[::1]:80")
    assert public_origin(scope({}, server=None), False) is None


def test_forwarded_headers_count_only_behind_a_trusted_proxy() -> None:
    headers = {
        "Host": "10.0.0.5:8088",
        "X-Forwarded-Proto": "https, http",
        "X-Forwarded-Host": "track.shop.test, inner",
    }
    assert public_origin(scope(headers), True) == ("https", "track.shop.test")
    assert public_origin(scope(headers), False) == ("http", "10.0.0.5:8088")


@pytest.mark.parametrize(
    "host", ["evil.test/path", "a b", "x.test:port", "-bad.test", "", "ex\u00e4mple.test"]
)
def test_a_host_that_is_not_a_host_is_refused(host: str) -> None:
    assert public_origin(scope({"Host": host}), False) is None


def test_an_unknown_forwarded_scheme_is_refused() -> None:
    headers = {"Host": "a.test", "X-Forwarded-Proto": "gopher"}
    assert public_origin(scope(headers), True) is None


def test_settings_name_the_write_key_and_the_host() -> None:
    settings = cdn_settings("wk", "a.test/v1", "https")
    assert settings["integrations"]["Segment.io"]["apiKey"] == "wk"
    assert settings["integrations"]["Segment.io"]["apiHost"] == "a.test/v1"
    assert settings["integrations"]["Segment.io"]["protocol"] == "https"
    assert list(settings["integrations"]) == ["Segment.io"]  # no device-mode destinations


def test_routes() -> None:
    assert is_browser_route("m")
    assert is_browser_route("projects/wk/settings")
    assert not is_browser_route("t")
    assert not is_browser_route("mm")
