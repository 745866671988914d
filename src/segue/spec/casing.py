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
    """Key lookup that ignores casing: ``userId``, ``user_id`` and ``UserId`` all work.

    The seeds ask partners to "be ready to accept any casing"; this makes it free.
    Nested objects (also inside lists) are converted once, when the outer one is made,
    so that changing a nested value sticks.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__({key: _wrap(value) for key, value in data.items()})
        self._folded = {_fold(k): k for k in self}

    def _actual(self, key: str) -> str | None:
        if dict.__contains__(self, key):
            return key
        return self._folded.get(_fold(key))

    def __getitem__(self, key: str) -> Any:
        actual = self._actual(key)
        if actual is None:
            raise KeyError(key)
        return dict.__getitem__(self, actual)

    def __setitem__(self, key: str, value: Any) -> None:
        actual = self._actual(key) or key  # writing userId where user_id is: same field
        dict.__setitem__(self, actual, _wrap(value))
        self._folded.setdefault(_fold(actual), actual)

    def __delitem__(self, key: str) -> None:
        actual = self._actual(key)
        if actual is None:
            raise KeyError(key)
        dict.__delitem__(self, actual)
        self._folded.pop(_fold(actual), None)

    def get(self, key: str, default: Any = None) -> Any:
        actual = self._actual(key)
        return default if actual is None else dict.__getitem__(self, actual)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._actual(key) is not None


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
