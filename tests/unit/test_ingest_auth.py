"""Finding the write key: Basic auth username, body ``writeKey``, Bearer + body."""

from __future__ import annotations

import base64

import pytest

from segue.ingest.auth import is_bearer, resolve_write_key, write_key_from_basic


def basic(credentials: str | bytes) -> str:
    raw = credentials.encode() if isinstance(credentials, str) else credentials
    return "Basic " + base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic("wk_live:"), "wk_live"),  # what every Segment SDK sends
        (basic("wk_live"), "wk_live"),  # no colon at all
        (basic("wk_live:ignored-password"), "wk_live"),
        (basic("wk:with:colons"), "wk"),
        ("basic " + base64.b64encode(b"wk_lower:").decode(), "wk_lower"),  # scheme any case
        ("BASIC " + base64.b64encode(b"wk_upper:").decode(), "wk_upper"),
        ("Basic  " + base64.b64encode(b"wk_spaces:").decode() + " ", "wk_spaces"),
    ],
)
def test_basic_header_gives_the_username(header: str, expected: str) -> None:
    assert write_key_from_basic(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "Basic",  # no credentials
        "Basic ",
        "Basic !!!not-base64!!!",
        "Basic d2s",  # truncated base64 (bad padding)
        "Basic " + base64.b64encode(b"\xff\xfe:").decode(),  # not UTF-8
        basic(":password-only"),  # empty username
        basic(":"),
        basic(""),
        "Bearer d2s6",
        "Digest username=wk",
        "d2s6",  # no scheme
        "",
    ],
)
def test_bad_basic_header_gives_none(header: str) -> None:
    assert write_key_from_basic(header) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [("Bearer abc", True), ("bearer abc", True), ("BEARER abc", True), ("Basic abc", False)],
)
def test_is_bearer(header: str, expected: bool) -> None:
    assert is_bearer(header) is expected


def test_basic_wins_over_body_key() -> None:
    assert resolve_write_key(basic("wk_header:"), "wk_body") == "wk_header"


def test_body_key_without_authorization() -> None:
    assert resolve_write_key(None, "wk_body") == "wk_body"
    assert resolve_write_key("", "wk_body") == "wk_body"


def test_bearer_token_is_ignored_and_body_key_used() -> None:
    assert resolve_write_key("Bearer oauth-access-token", "wk_body") == "wk_body"


def test_bearer_token_alone_is_not_a_write_key() -> None:
    assert resolve_write_key("Bearer wk_live", None) is None
    # even a token that happens to be valid base64 of "wk:"
    assert resolve_write_key("Bearer " + base64.b64encode(b"wk:").decode(), None) is None


def test_bad_basic_falls_back_to_body_key() -> None:
    assert resolve_write_key("Basic !!!", "wk_body") == "wk_body"
    assert resolve_write_key(basic(":"), "wk_body") == "wk_body"


@pytest.mark.parametrize("body_key", [None, "", 123, ["wk"], {"key": "wk"}, True])
def test_body_key_must_be_a_non_empty_string(body_key: object) -> None:
    assert resolve_write_key(None, body_key) is None


def test_no_key_anywhere() -> None:
    assert resolve_write_key(None, None) is None
    assert resolve_write_key("Basic !!!", None) is None
