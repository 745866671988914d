"""HTTP's answer when the store cannot write: 503, a JSON body and ``Retry-After``.

This is the one place that turns :class:`~segue.store.StoreUnavailableError` into a
response. :class:`AnswerUnavailable` wraps an ASGI app (the Tracking API, the admin
API, the UI): routes just let the error rise. Starlette apps answer an exception with
a plain-text 500 before re-raising it, so a 500 is held back until the app has
finished: if the app raised a store error, the 503 is sent instead of it.

:func:`health_response` is ``/health``'s answer from the store's health.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from segue.asgi import ASGIApp, Headers, Message, Receive, Scope, Send, send_json
from segue.ingest.cors import CORS
from segue.store import StoreHealth, StoreUnavailableError

RETRY_AFTER_S = 5
"""What a client is told to wait before sending again (the operator must act first)."""

TRACKING_CODE = "store_unavailable"
_RETRY_AFTER: Headers = [(b"retry-after", str(RETRY_AFTER_S).encode())]

Body = Callable[[StoreUnavailableError], tuple[dict[str, Any], Headers]]


def tracking_body(error: StoreUnavailableError) -> tuple[dict[str, Any], Headers]:
    """The Tracking API's error shape. One request is one commit: nothing was stored."""
    message = (
        f"segue cannot store events right now: {error}."
        " Nothing from this request was stored; send it again later."
    )
    # the Tracking API's CORS headers: a browser SDK can read the answer and Retry-After
    return {"success": False, "code": TRACKING_CODE, "message": message}, CORS


def admin_body(error: StoreUnavailableError) -> tuple[dict[str, Any], Headers]:
    """The admin API's (and the UI's) error shape."""
    return {"message": f"segue cannot save changes right now: {error}. Try again later."}, []


def find_store_unavailable(exc: BaseException) -> StoreUnavailableError | None:
    """``exc`` itself, what it was raised from, or a member of an exception group."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, StoreUnavailableError):
            return current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        if current.__cause__ is not None:
            pending.append(current.__cause__)
    return None


class AnswerUnavailable:
    """ASGI wrapper: a StoreUnavailableError raised by ``app`` becomes a 503."""

    def __init__(self, app: ASGIApp, body: Body = admin_body) -> None:
        self.app = app
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []  # a 500 on its way out, until we know why
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if held or (message["type"] == "http.response.start" and message["status"] == 500):
                held.append(message)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception as exc:
            error = find_store_unavailable(exc)
            if error is None or started:
                await _flush(held, send)
                raise
            data, headers = self.body(error)
            await send_json(send, 503, data, [*_RETRY_AFTER, *headers])
            return
        await _flush(held, send)


async def _flush(held: list[Message], send: Send) -> None:
    for message in held:
        await send(message)


def health_response(health: StoreHealth, store: str) -> tuple[int, dict[str, Any], Headers]:
    """Status, body and headers of ``/health``: 200 while the store can write, else 503."""
    status = "ok" if health.ok else "unavailable"
    body = {"status": status, "store": store, "checks": {"store": health.as_json()}}
    return (200, body, []) if health.ok else (503, body, _RETRY_AFTER)
