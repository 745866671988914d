"""Reading a request body under a size cap, inflating gzip safely."""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


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
    """Undo ``Content-Encoding``; never inflate more than ``limit`` bytes (gzip bombs)."""
    encoding = (encoding or "").strip().lower()  # codings are case-insensitive (RFC 9110)
    if not encoding or encoding == "identity":
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BadEncodingError(f"unsupported Content-Encoding {encoding!r}: use gzip")
    wbits = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadEncodingError(f"the body is not valid {encoding}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyTooLargeError
    if not inflater.eof:
        raise BadEncodingError(f"the {encoding} body is truncated")
    return out
