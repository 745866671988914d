"""Reading a request body under a size cap, inflating gzip safely."""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


MAX_GZIP_MEMBERS = 64
"""Concatenated gzip members accepted in one body (clients send one)."""
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS


class BodyTooLargeError(Exception):
    """The body (or what it inflates to) is over the cap."""


class BadEncodingError(Exception):
    """The body says it is compressed but is not valid gzip, or uses another coding."""


class ClientDisconnectedError(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes:
    """Read the whole body; raise BodyTooLargeError as soon as it passes ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLargeError
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_content(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding``; never inflate more than ``limit`` bytes (gzip bombs).

    A gzip body may hold several members (RFC 1952; ``cat a.gz b.gz``), inflated one
    after the other under the one limit. Anything else after the compressed data is
    refused: a client that appends garbage would have it silently ignored otherwise.
    """
    encoding = (encoding or "").strip().lower()  # codings are case-insensitive (RFC 9110)
    if not encoding or encoding == "identity":
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BadEncodingError(f"unsupported Content-Encoding {encoding[:40]!r}: use gzip")
    if encoding == "deflate":
        out, rest = _inflate(body, zlib.MAX_WBITS, limit, encoding)
        if rest:
            raise BadEncodingError(
                f"the deflate body has trailing data after its end ({len(rest)} bytes)"
            )
        return out
    parts: list[bytes] = []
    size = 0
    rest = body
    while True:
        out, rest = _inflate(rest, _GZIP_WBITS, limit - size, encoding)
        parts.append(out)
        size += len(out)
        if not rest:
            return parts[0] if len(parts) == 1 else b"".join(parts)
        if not rest.startswith(_GZIP_MAGIC):
            raise BadEncodingError(
                f"the {encoding} body has trailing data after its compressed data"
                f" ({len(rest)} bytes)"
            )
        if len(parts) == MAX_GZIP_MEMBERS:
            raise BadEncodingError(f"the {encoding} body has more than {MAX_GZIP_MEMBERS} members")


def _inflate(data: bytes, wbits: int, limit: int, encoding: str) -> tuple[bytes, bytes]:
    """One zlib/gzip stream: (what it inflates to, the bytes after its end)."""
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BadEncodingError(f"the body is not valid {encoding}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyTooLargeError
    if not inflater.eof:
        raise BadEncodingError(f"the {encoding} body is truncated")
    return out, inflater.unused_data
