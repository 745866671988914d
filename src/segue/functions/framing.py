"""Length-prefixed JSON frames over the pipes between segue and its function workers.

Each frame is a 4-byte big-endian length then that many bytes of orjson. A length
prefix (not newline-delimited JSON) lets a frame carry anything and lets the reader
refuse an oversized frame before allocating it: a worker is untrusted and must not be
able to make the parent read gigabytes.
"""

from __future__ import annotations

import asyncio
import os
import struct
from typing import Any

import orjson

MAX_FRAME_BYTES = 16 * 1024 * 1024
_HEADER = struct.Struct(">I")


class FrameError(Exception):
    """The stream does not carry a valid frame (garbage, truncation, not an object)."""


class FrameTooLarge(FrameError):
    """A frame is over the size limit."""


def encode(message: dict[str, Any], max_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """One frame; values orjson cannot encode are sent as their str()."""
    body = orjson.dumps(message, default=str, option=orjson.OPT_NON_STR_KEYS)
    if len(body) > max_bytes:
        raise FrameTooLarge(f"a frame of {len(body)} bytes is over the {max_bytes} byte limit")
    return _HEADER.pack(len(body)) + body


def decode(body: bytes) -> dict[str, Any]:
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"a frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise FrameError("a frame is not a JSON object")
    return message


async def read_frame(
    reader: asyncio.StreamReader, max_bytes: int = MAX_FRAME_BYTES
) -> dict[str, Any] | None:
    """The next frame, or None at a clean end of stream (between frames)."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise FrameError("the stream ended inside a frame header") from None
    (length,) = _HEADER.unpack(header)
    if length > max_bytes:
        raise FrameTooLarge(f"a frame of {length} bytes is over the {max_bytes} byte limit")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise FrameError("the stream ended inside a frame") from None
    return decode(body)


def write_fd(fd: int, frame: bytes) -> None:
    """Write a whole frame to a blocking pipe fd (the worker's side: one writer)."""
    view = memoryview(frame)
    while view:
        written = os.write(fd, view)
        view = view[written:]
