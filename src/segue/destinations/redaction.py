"""Masking a destination's secrets wherever they show up, whoever printed them.

Masking by key (``settings.masked``) hides a sensitive setting where segue itself puts
it. A function can also print its settings, return them, or throw them in an error, and
an endpoint can echo its Authorization header: a :class:`Redactor` replaces every
occurrence of a sensitive value in any text or JSON value before it is stored, answered
or logged — the value as it is, JSON-escaped, percent-encoded, and base64-encoded the
way Basic auth and ``btoa`` carry it.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import orjson

from segue.destinations.settings import MASK

T = TypeVar("T")
# Shorter values are masked only where they are a whole string (a JSON value), not inside
# text: a three-letter "secret" found in every log line would hide the log, not the secret.
MIN_TEXT_LENGTH = 4


def _forms(value: str) -> set[str]:
    """The ways a value is commonly written out: raw, JSON (UTF-8 or ASCII-escaped),
    Python's repr, percent-encoded, base64 (and base64 of "value:", as Basic auth)."""
    forms = {
        value,
        orjson.dumps(value).decode()[1:-1],
        json.dumps(value)[1:-1],
        repr(value)[1:-1],
        quote(value, safe=""),
    }
    for raw in (value, f"{value}:"):
        encoded = base64.b64encode(raw.encode()).decode()
        forms.update({encoded, encoded.rstrip("=")})
    return {form for form in forms if len(form) >= MIN_TEXT_LENGTH}


@dataclass(frozen=True, slots=True)
class Redactor:
    """Masks the given secret values; an empty one changes nothing (and costs nothing)."""

    secrets: frozenset[str] = frozenset()
    pattern: re.Pattern[str] | None = None

    @classmethod
    def of(cls, values: Iterable[object]) -> Redactor:
        return _redactor(frozenset(str(v) for v in values if v not in (None, "") and str(v)))

    @classmethod
    def for_settings(cls, settings: Mapping[str, Any], sensitive: Iterable[str]) -> Redactor:
        keys = set(sensitive)
        return cls.of(v for k, v in settings.items() if k in keys and isinstance(v, str | int))

    def text(self, text: str) -> str:
        if text in self.secrets:
            return MASK
        return text if self.pattern is None else self.pattern.sub(MASK, text)

    def value(self, data: T) -> T:
        """``data`` with every string in it (keys too) redacted; other values as they are."""
        if not self.secrets:
            return data
        return self._walk(data)  # type: ignore[no-any-return]

    def _walk(self, data: Any) -> Any:
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, dict):
            return {self._walk(k): self._walk(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self._walk(item) for item in data]
        return data


@functools.lru_cache(maxsize=256)
def _redactor(secrets: frozenset[str]) -> Redactor:
    """One compiled pattern per set of secrets (a destination's, until they change)."""
    needles = sorted({form for s in secrets for form in _forms(s)}, key=len, reverse=True)
    pattern = re.compile("|".join(map(re.escape, needles))) if needles else None
    return Redactor(secrets, pattern)
