"""The tracking pixel's query: ``?data=<base64 of the JSON message>``, read defensively.

Emails and other image-only places paste the base64 as they please: standard or
URL-safe alphabet, with or without padding, a ``+`` that arrived as a space. The
message is held to the same 32 KB as a single-event POST.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qs

from segue.spec import wire

# A transparent 1x1 GIF, what Segment's pixel endpoint answers.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


class PixelDataError(ValueError):
    """The ``data`` parameter is missing, not base64, too large or not a JSON object."""


def pixel_message(query_string: bytes, max_bytes: int) -> dict[str, Any]:
    """The JSON object in ``data``; raises :class:`PixelDataError` saying what is wrong."""
    values = parse_qs(query_string.decode("latin-1")).get("data")
    if not values:
        raise PixelDataError("the pixel has no `data` parameter")
    # parse_qs reads a raw "+" as a space; email templates paste base64 unencoded
    text = values[0].replace(" ", "+").replace("-", "+").replace("_", "/")
    if len(text) > (max_bytes + 2) // 3 * 4 + 4:  # cheap: refuse before decoding
        raise PixelDataError(f"the pixel's event is larger than {max_bytes // 1024} KB")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise PixelDataError("the pixel's `data` is not base64") from None
    if len(raw) > max_bytes:
        raise PixelDataError(f"the pixel's event is larger than {max_bytes // 1024} KB")
    try:
        data = wire.decode(raw)
    except wire.JSONError as exc:
        raise PixelDataError(f"the pixel's `data` is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PixelDataError("the pixel's `data` must be a JSON object")
    return data
