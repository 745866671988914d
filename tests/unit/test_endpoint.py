"""Endpoint URLs: what is refused on save (and before a send), and what is converted."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from segue.delivery.endpoint import EndpointError, normalized_endpoint


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.example.com/segment", "https://api.example.com/segment"),
        ("  https://api.example.com/x  ", "https://api.example.com/x"),
        ("https://API.Example.com/x", "https://api.example.com/x"),
        ("https://b\u00fccher.example/hook", "https://xn--bcher-kva.example/hook"),
        ("https://xn--bcher-kva.example/hook", "https://xn--bcher-kva.example/hook"),
        ("http://127.0.0.1:9000/a?b=c", "http://127.0.0.1:9000/a?b=c"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("https://h.example/p\u00e4th?q=\u00fc", "https://h.example/p%C3%A4th?q=%C3%BC"),
        ("https://my_host.example/x", "https://my_host.example/x"),
    ],
)
def test_usable_urls_are_kept_or_converted(url: str, expected: str) -> None:
    assert normalized_endpoint(url) == expected


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://user:pass@127.0.0.1/x", "must not carry credentials"),
        ("https://token@hooks.example/x", "must not carry credentials"),
        ("https://:secret@hooks.example/x", "must not carry credentials"),
        ("ftp://hooks.example/x", "http(s) URL"),
        ("not a url", "http(s) URL"),
        ("", "http(s) URL"),
        ("https://", "has no host"),
        ("http:///path", "has no host"),
        ("https://a b.example/", "space"),
        ("https://h.example/\x00", "control character"),
        ("http://127.0.0.1:99999/x", "not a valid URL"),
        ("http://[::1/x", "not a valid URL"),
        ("http://ex\u00e4..test/x", "not a valid URL"),
        ("http://ex\u200bample.com/", "not a valid URL"),
        ("https://-bad-.example/", "not a valid host name"),
        ("https://a..b/", "not a valid host name"),
        ("https://%41.example/", "not a valid host name"),
        ("https://" + "a" * 64 + ".example/", "not a valid host name"),
        ("https://h.example/" + "x" * 3000, "longer than"),
    ],
)
def test_unusable_urls_are_refused_with_the_reason(url: str, words: str) -> None:
    with pytest.raises(EndpointError, match=None) as info:
        normalized_endpoint(url)
    assert words in str(info.value)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80).map(lambda tail: "https://" + tail))
def test_any_input_is_either_usable_or_refused_cleanly(url: str) -> None:
    """Never another exception; what is accepted is ASCII, http(s), without credentials."""
    try:
        result = normalized_endpoint(url)
    except EndpointError:
        return
    assert result.isascii()
    parsed = URL(result, encoded=True)
    assert parsed.scheme in ("http", "https")
    assert parsed.host and parsed.user is None and parsed.password is None
    assert normalized_endpoint(result) == result  # stable: stored == sent
