"""Finding the write key: Basic auth username, or ``writeKey`` in the body."""

from __future__ import annotations

import binascii
from base64 import b64decode
from functools import lru_cache


@lru_cache(maxsize=4096)
def write_key_from_basic(header_value: str) -> str | None:
    """``Basic base64("wk:")`` → ``"wk"``; None for any other scheme or bad base64.

    Cached: clients send the same header on every request.
    """
    scheme, _, credentials = header_value.partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return None
    try:
        decoded = b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username = decoded.partition(":")[0]
    return username or None


def is_bearer(header_value: str) -> bool:
    """OAuth clients send ``Bearer <token>`` and the write key in the body."""
    return header_value[:7].lower() == "bearer "


def resolve_write_key(authorization: str | None, body_write_key: object) -> str | None:
    """Basic auth wins; otherwise the body's ``writeKey`` (also with a Bearer token)."""
    if authorization and not is_bearer(authorization):
        key = write_key_from_basic(authorization)
        if key:
            return key
    if isinstance(body_write_key, str) and body_write_key:
        return body_write_key
    return None
