"""Shared pieces of the admin API's handlers: JSON responses, bodies, cursors, limits."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

MAX_PAGE = 1000


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


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


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(str(row_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except ValueError:
        raise HTTPException(400, "`cursor` is not a cursor this API returned") from None


def page_limit(request: Request, default: int = 100, maximum: int = MAX_PAGE) -> int:
    try:
        limit = int(request.query_params.get("limit", str(default)))
    except ValueError:
        raise HTTPException(400, "`limit` must be a number") from None
    if not 1 <= limit <= maximum:
        raise HTTPException(400, f"`limit` must be between 1 and {maximum}")
    return limit
