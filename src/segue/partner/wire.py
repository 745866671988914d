"""A request and a response as plain data, so the rules live apart from ASGI and WSGI.

Both adapters translate to and from these; the logic in ``Destination.respond`` never
sees a server, which is also what makes it testable without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from segue.spec.casing import CaseInsensitiveDict

JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class Request:
    """What arrived: method, headers (any casing of the names) and the raw body."""

    method: str
    headers: Mapping[str, str]
    body: bytes

    @classmethod
    def build(cls, method: str, headers: list[tuple[str, str]], body: bytes) -> Request:
        """Headers as sent (repeated names keep their first value) → a case-insensitive map."""
        first: dict[str, str] = {}
        for name, value in headers:
            first.setdefault(name.lower(), value)
        return cls(method.upper(), CaseInsensitiveDict(first), body)


@dataclass(frozen=True, slots=True)
class Response:
    """What to answer. The body is always JSON, as the seeds ask for."""

    status: int
    body: bytes = b"{}"
    headers: tuple[tuple[str, str], ...] = field(default=())

    @property
    def all_headers(self) -> list[tuple[str, str]]:
        """Content-Type and Content-Length first, then the extras (Allow, Retry-After)."""
        return [
            ("Content-Type", JSON_CONTENT_TYPE),
            ("Content-Length", str(len(self.body))),
            *self.headers,
        ]


def json_response(status: int, data: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """``data`` as JSON; ``None`` becomes ``{}`` so every body parses as a JSON object."""
    return Response(status, orjson.dumps({} if data is None else data), headers)


def error_response(
    status: int, message: str, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    """The seeds' error shape, ``{"message": ...}``: segue's debugger shows the message."""
    return Response(status, orjson.dumps({"message": message}), headers)
