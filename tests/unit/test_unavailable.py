"""segue.unavailable: a StoreUnavailableError becomes a 503 with JSON and Retry-After."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from segue.asgi import Receive, Scope, Send, send_json
from segue.store import StoreHealth, StoreUnavailableError, UnavailableReason
from segue.unavailable import (
    RETRY_AFTER_S,
    AnswerUnavailable,
    admin_body,
    find_store_unavailable,
    health_response,
    tracking_body,
)

FULL = StoreUnavailableError(UnavailableReason.DISK_FULL, "database or disk is full")


async def _raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A raw ASGI app: /full raises before answering, /late after, the rest is 200."""
    if scope["path"] == "/full":
        raise FULL
    if scope["path"] == "/late":
        await send_json(send, 200, {"ok": True})
        raise FULL
    if scope["path"] == "/wrapped":
        raise RuntimeError("the catalog could not save") from FULL
    if scope["path"] == "/group":
        raise ExceptionGroup("several", [ValueError("x"), FULL])
    await send_json(send, 200, {"ok": True})


async def _full(request: Request) -> Response:
    raise FULL


async def _bug(request: Request) -> Response:
    raise ValueError("a bug")


async def _teapot(request: Request) -> Response:
    return PlainTextResponse("deliberately 500", status_code=500)


STARLETTE = Starlette(
    routes=[
        Route("/full", _full, methods=["POST"]),
        Route("/bug", _bug),
        Route("/teapot", _teapot),
    ]
)


def _client(app: Any, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://segue.test")


def _assert_503(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)
    return dict(response.json())


async def test_tracking_shape_from_a_raw_app() -> None:
    async with _client(AnswerUnavailable(_raw_app, tracking_body)) as client:
        response = await client.post("/full")
        assert (await client.get("/fine")).status_code == 200
    body = _assert_503(response)
    assert body["success"] is False
    assert body["code"] == "store_unavailable"
    assert "the disk holding the database is full" in body["message"]
    assert "Nothing from this request was stored" in body["message"]
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-expose-headers"] == "retry-after"


async def test_admin_shape_from_a_starlette_app_replaces_its_500() -> None:
    async with _client(AnswerUnavailable(STARLETTE, admin_body)) as client:
        response = await client.post("/full")
    body = _assert_503(response)
    assert set(body) == {"message"}
    assert body["message"].startswith("segue cannot save changes right now: the disk")


async def test_other_errors_keep_their_500_and_are_raised() -> None:
    app = AnswerUnavailable(STARLETTE, admin_body)
    async with _client(app, raise_app_exceptions=False) as client:
        response = await client.get("/bug")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    async with _client(app) as client:
        with pytest.raises(ValueError, match="a bug"):
            await client.get("/bug")


async def test_a_500_the_app_meant_goes_out_unchanged() -> None:
    async with _client(AnswerUnavailable(STARLETTE)) as client:
        response = await client.get("/teapot")
    assert (response.status_code, response.text) == (500, "deliberately 500")


async def test_after_the_response_started_the_error_is_raised() -> None:
    async with _client(AnswerUnavailable(_raw_app)) as client:
        with pytest.raises(StoreUnavailableError):
            await client.get("/late")


@pytest.mark.parametrize("path", ["/wrapped", "/group"])
async def test_a_store_error_behind_another_one_is_found(path: str) -> None:
    async with _client(AnswerUnavailable(_raw_app)) as client:
        _assert_503(await client.get(path))


def test_find_store_unavailable() -> None:
    assert find_store_unavailable(FULL) is FULL
    assert find_store_unavailable(ValueError("no")) is None
    loop = ValueError("a cycle")
    loop.__cause__ = loop
    assert find_store_unavailable(loop) is None


async def test_lifespan_passes_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def nothing() -> dict[str, Any]:
        return {}

    async def ignore(message: Any) -> None:
        return None

    await AnswerUnavailable(app)({"type": "lifespan"}, nothing, ignore)
    assert seen == ["lifespan"]


def test_health_response() -> None:
    status, body, headers = health_response(StoreHealth(ok=True, free_bytes=10), "sqlite")
    assert (status, headers) == (200, [])
    assert body == {
        "status": "ok",
        "store": "sqlite",
        "checks": {"store": {"writable": True, "free_bytes": 10}},
    }
    health = StoreHealth.unavailable(UnavailableReason.READ_ONLY, since_ms=5)
    status, body, headers = health_response(health, "sqlite")
    assert status == 503
    assert (b"retry-after", str(RETRY_AFTER_S).encode()) in headers
    assert body["status"] == "unavailable"
    assert body["checks"]["store"] == {
        "writable": False,
        "reason": "read_only",
        "message": "the database is read-only",
        "failing_since_ms": 5,
    }
