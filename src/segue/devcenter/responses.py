"""Shared pieces of the admin API's handlers: JSON responses, bodies checked against the
OpenAPI document, cursors, limits and ids, and routes grouped by path (so that a 405
names every method the path has in ``Allow``)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Route

from segue.devcenter.openapi_requests import CURSOR_PATTERN, MAX_ID, MAX_PAGE, REQUEST_SCHEMAS
from segue.devcenter.validation import SchemaError, Validator

Handler = Callable[[Request], Awaitable[Response]]
ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]

_INTEGER = re.compile(r"-?[0-9]{1,30}")
_CURSOR = re.compile(CURSOR_PATTERN.strip("^$"))
_REQUESTS = Validator(REQUEST_SCHEMAS)

__all__ = ["MAX_ID", "MAX_PAGE", "JSONResponse", "checked_body", "error", "json_body"]


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, headers=headers)


async def json_body(request: Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The request's JSON object; ``empty_ok`` lets an empty body stand for ``{}``."""
    raw = await request.body()
    if empty_ok and not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise HTTPException(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return data


async def checked_body(request: Request, schema: str, *, empty_ok: bool = False) -> dict[str, Any]:
    """The body, checked against the document's ``schema``: anything else is a 400."""
    body = await json_body(request, empty_ok=empty_ok)
    try:
        _REQUESTS.check(body, REQUEST_SCHEMAS[schema])
    except SchemaError as exc:
        raise HTTPException(400, str(exc)) from None
    return body


def encode_cursor(row_id: int) -> str:
    """Opaque to clients: the id of the last row of a page, in hex."""
    return format(row_id, "x")


def decode_cursor(cursor: str | None) -> int | None:
    """A cursor this API returned → the id to continue below; empty or None: none."""
    if not cursor:
        return None
    if not _CURSOR.fullmatch(cursor):
        raise HTTPException(400, "`cursor` is not a cursor this API returned")
    return min(int(cursor, 16), MAX_ID)


def query_integer(request: Request, name: str, default: int, low: int, high: int) -> int:
    """A whole number from the query string, between ``low`` and ``high``."""
    text = request.query_params.get(name, str(default))
    if not _INTEGER.fullmatch(text):
        raise HTTPException(400, f"`{name}` must be a number")
    value = int(text)
    if not low <= value <= high:
        raise HTTPException(400, f"`{name}` must be between {low} and {high}")
    return value


def page_limit(request: Request, default: int = 100, maximum: int = MAX_PAGE) -> int:
    return query_integer(request, "limit", default, 1, maximum)


def path_id(request: Request, name: str = "id") -> int:
    """A stored row's id from the path (digits only: the route's ``int`` convertor)."""
    value: int = request.path_params[name]
    if not 1 <= value <= MAX_ID:
        raise HTTPException(400, f"`{name}` must be between 1 and {MAX_ID}")
    return value


def grouped_routes(handlers: Iterable[tuple[str, str, Handler]]) -> list[Route]:
    """One Route per path serving each of its methods: a request with another method is a
    405 whose ``Allow`` lists them all (one Route per method would name only its own)."""
    by_path: dict[str, dict[str, Handler]] = {}
    for path, method, handler in handlers:
        by_path.setdefault(path, {})[method] = handler
    return [
        Route(path, _dispatch(methods), methods=list(methods)) for path, methods in by_path.items()
    ]


def allow_every_method(routes: list[BaseRoute]) -> ExceptionHandler:
    """A 405 handler for apps that route one path through several Routes (one per
    method): ``Allow`` names the methods of all of them, not only of the first."""

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        allowed: set[str] = set()
        for route in routes:
            if isinstance(route, Route) and route.methods:
                match, _ = route.matches(request.scope)
                if match is not Match.NONE:
                    allowed |= route.methods
        allow = ", ".join(sorted(allowed)) or getattr(exc, "headers", {}).get("Allow", "")
        return PlainTextResponse("Method Not Allowed", 405, headers={"Allow": allow})

    return method_not_allowed


def _dispatch(methods: dict[str, Handler]) -> Handler:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await methods[method](request)

    return endpoint
