"""Reading a request body under a cap and inflating gzip without trusting it."""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Iterable
from typing import Any

import pytest

from segue.ingest.body import (
    BadEncodingError,
    BodyTooLargeError,
    ClientDisconnectedError,
    decode_content,
    read_body,
)

LIMIT = 500 * 1024


class FakeReceive:
    """ASGI ``receive`` replaying the given messages; counts how many were read."""

    def __init__(self, messages: Iterable[dict[str, Any]]) -> None:
        self._messages = list(messages)
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return self._messages.pop(0)


def chunks(*parts: bytes) -> FakeReceive:
    messages = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    return FakeReceive(messages)


# -- read_body -------------------------------------------------------------


async def test_read_single_chunk() -> None:
    assert await read_body(chunks(b'{"a": 1}'), 100) == b'{"a": 1}'


async def test_read_many_chunks() -> None:
    assert await read_body(chunks(b"ab", b"", b"cd", b"e"), 100) == b"abcde"


async def test_read_empty_body() -> None:
    assert await read_body(FakeReceive([{"type": "http.request"}]), 100) == b""


async def test_body_exactly_at_the_cap_is_read() -> None:
    assert await read_body(chunks(b"x" * 60, b"y" * 40), 100) == b"x" * 60 + b"y" * 40


async def test_body_over_the_cap_is_refused() -> None:
    with pytest.raises(BodyTooLargeError):
        await read_body(chunks(b"x" * 101), 100)


async def test_refused_as_soon_as_the_cap_is_passed() -> None:
    receive = chunks(b"x" * 60, b"x" * 60, b"x" * 60, b"x" * 60)
    with pytest.raises(BodyTooLargeError):
        await read_body(receive, 100)
    assert receive.calls == 2  # the rest of the body is never buffered


async def test_client_disconnect() -> None:
    receive = FakeReceive(
        [{"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"}]
    )
    with pytest.raises(ClientDisconnectedError):
        await read_body(receive, 100)


# -- decode_content --------------------------------------------------------


@pytest.mark.parametrize("encoding", [None, "", "identity"])
def test_no_encoding_is_passed_through(encoding: str | None) -> None:
    assert decode_content(b'{"a":1}', encoding, LIMIT) == b'{"a":1}'


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip"])
def test_gzip_is_inflated(encoding: str) -> None:
    body = b'{"batch": []}' * 100
    assert decode_content(gzip.compress(body), encoding, LIMIT) == body


def test_deflate_is_inflated() -> None:
    body = b'{"userId": "u"}'
    assert decode_content(zlib.compress(body), "deflate", LIMIT) == body


def test_inflated_exactly_at_the_cap_is_accepted() -> None:
    body = b"x" * 1000
    assert decode_content(gzip.compress(body), "gzip", 1000) == body


def test_inflated_over_the_cap_is_refused() -> None:
    with pytest.raises(BodyTooLargeError):
        decode_content(gzip.compress(b"x" * 1001), "gzip", 1000)


def test_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip.compress(b"\0" * (100 * 1024 * 1024))
    assert len(bomb) < 200 * 1024
    started = time.perf_counter()
    with pytest.raises(BodyTooLargeError):
        decode_content(bomb, "gzip", LIMIT)
    assert time.perf_counter() - started < 0.5


def test_deflate_bomb_is_refused() -> None:
    with pytest.raises(BodyTooLargeError):
        decode_content(zlib.compress(b"\0" * (20 * 1024 * 1024)), "deflate", LIMIT)


@pytest.mark.parametrize(
    "body",
    [b"plain text, not gzip", b"\x1f\x8b\x08\x00garbage-after-magic", zlib.compress(b"{}")],
    ids=["text", "bad-stream", "zlib-not-gzip"],
)
def test_invalid_gzip_is_a_bad_encoding(body: bytes) -> None:
    with pytest.raises(BadEncodingError, match="gzip"):
        decode_content(body, "gzip", LIMIT)


def test_invalid_deflate_is_a_bad_encoding() -> None:
    with pytest.raises(BadEncodingError):
        decode_content(b"not deflate", "deflate", LIMIT)


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
def test_unsupported_encoding(encoding: str) -> None:
    with pytest.raises(BadEncodingError, match="unsupported Content-Encoding"):
        decode_content(b"{}", encoding, LIMIT)


def test_encoding_name_is_case_insensitive() -> None:
    assert decode_content(gzip.compress(b"{}"), "GZIP", LIMIT) == b"{}"


_WHOLE = gzip.compress(b'{"userId": "u", "event": "Cut"}')


@pytest.mark.parametrize(
    "cut",
    [
        _WHOLE[:-8],  # the CRC32 and size trailer are gone
        _WHOLE[:14],  # cut inside the deflate stream
        _WHOLE[:10],  # the header only
        b"",  # nothing at all
    ],
    ids=["no-trailer", "mid-stream", "header-only", "empty"],
)
def test_truncated_gzip_is_a_bad_encoding(cut: bytes) -> None:
    with pytest.raises(BadEncodingError):
        decode_content(cut, "gzip", LIMIT)
