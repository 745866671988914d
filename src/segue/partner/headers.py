"""Decoding the two headers Segment sends besides the body: Authorization and X-Segment-Settings.

Pure functions, so a partner can reuse them in any framework, and each failure says
precisely what was wrong: the usual hand-written ``b64decode(...).split(":")[0]``
accepts garbage and turns a typo into a confusing 500.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson


class AuthorizationError(ValueError):
    """The Authorization header is missing or is not ``Basic base64("<apiKey>:")``."""


class SettingsError(ValueError):
    """X-Segment-Settings is not the base64 encoding of a JSON object."""


def decode_authorization(header: str | None) -> str:
    """The API key from ``Authorization: Basic base64("<apiKey>:")``.

    Segment sends the key as the username with an empty password, and the colon is
    always present; a password, if some other client sends one, is ignored.
    """
    if header is None or not header.strip():
        raise AuthorizationError("missing Authorization header")
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise AuthorizationError("Authorization must use the Basic scheme")
    credentials = credentials.strip()
    if not credentials:
        raise AuthorizationError("Authorization: Basic has no credentials")
    try:
        raw = _b64decode(credentials)
    except (binascii.Error, ValueError):
        raise AuthorizationError("Authorization: Basic credentials are not valid base64") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthorizationError("Authorization: Basic credentials are not UTF-8") from None
    api_key, colon, _password = text.partition(":")
    if not colon:
        raise AuthorizationError("Authorization: Basic credentials have no colon (apiKey:)")
    if not api_key:
        raise AuthorizationError("Authorization: Basic credentials have an empty API key")
    return api_key


def decode_settings(header: str | None) -> dict[str, Any]:
    """The custom settings from ``X-Segment-Settings``; ``{}`` when it is absent or empty."""
    if header is None or not header.strip():
        return {}
    try:
        raw = _b64decode(header.strip())
    except (binascii.Error, ValueError):
        raise SettingsError("X-Segment-Settings is not valid base64") from None
    try:
        settings = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise SettingsError("X-Segment-Settings is not base64-encoded JSON") from None
    if not isinstance(settings, dict):
        raise SettingsError("X-Segment-Settings must encode a JSON object")
    return settings


def _b64decode(text: str) -> bytes:
    """Strict base64 (no stray characters), tolerant of missing ``=`` padding."""
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
