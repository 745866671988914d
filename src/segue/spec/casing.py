"""Key casing: the legacy direct-integration form sends every key in snake_case."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=4096)
def snake_case(key: str) -> str:
    """``userId`` → ``user_id``, ``receivedAt`` → ``received_at``, ``URLPath`` → ``url_path``.

    Already snake_case keys are kept; spaces and dashes become underscores.
    """
    out: list[str] = []
    length = len(key)
    for i, char in enumerate(key):
        if char in " -":
            out.append("_")
        elif char.isupper():
            prev_lower = i > 0 and (key[i - 1].islower() or key[i - 1].isdigit())
            next_lower = i + 1 < length and key[i + 1].islower()
            prev_upper = i > 0 and key[i - 1].isupper()
            if out and out[-1] != "_" and (prev_lower or (prev_upper and next_lower)):
                out.append("_")
            out.append(char.lower())
        else:
            out.append(char)
    return "".join(out)


def snake_case_keys(value: Any) -> Any:
    """A copy of ``value`` with every object key, at every depth, in snake_case."""
    if isinstance(value, dict):
        return {
            snake_case(k) if isinstance(k, str) else k: snake_case_keys(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [snake_case_keys(item) for item in value]
    return value


class CaseInsensitiveDict(dict[str, Any]):
    """Read access that ignores key casing: ``userId``, ``user_id`` and ``UserId`` all work.

    The seeds ask partners to "be ready to accept any casing"; this makes it free.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self._folded = {_fold(k): k for k in data}

    def __getitem__(self, key: str) -> Any:
        if dict.__contains__(self, key):
            return _wrap(dict.__getitem__(self, key))
        actual = self._folded.get(_fold(key))
        if actual is None:
            raise KeyError(key)
        return _wrap(dict.__getitem__(self, actual))

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (dict.__contains__(self, key) or _fold(key) in self._folded)


def _fold(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def _wrap(value: Any) -> Any:
    if isinstance(value, CaseInsensitiveDict):
        return value
    if isinstance(value, dict):
        return CaseInsensitiveDict(value)
    if isinstance(value, list):
        return [_wrap(item) for item in value]
    return value
