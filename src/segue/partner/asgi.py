"""The ASGI side of a ``Destination``: HTTP requests, lifespan, nothing else.

Pure ASGI so a partner can serve it with uvicorn alone or mount it in Starlette or
FastAPI (``app.mount("/segment", dest)``) without the SDK depending on either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from segue.asgi import Receive, Scope, Send, send_bytes
from segue.partner.wire import JSON_CONTENT_TYPE, Request

if TYPE_CHECKING:
    from segue.partner.destination import Destination


async def serve_asgi(destination: Destination, scope: Scope, receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        await _lifespan(receive, send)
    elif kind == "http":
        await _http(destination, scope, receive, send)
    elif kind == "websocket":
        # closing before accepting makes the server answer the handshake with 403
        await send({"type": "websocket.close", "code": 1008})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop: complete each phase so servers don't wait or warn."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _http(destination: Destination, scope: Scope, receive: Receive, send: Send) -> None:
    body = await _read_body(receive, destination.max_body_bytes)
    if body is None:
        return  # the client went away: nobody to answer
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    request = Request.build(scope["method"], headers, body)
    response = await destination.respond(request)
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    await send_bytes(send, response.status, response.body, JSON_CONTENT_TYPE.encode(), extra)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The body, or its first ``limit + 1`` bytes (enough to answer "too large"); None on
    disconnect."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit or not message.get("more_body", False):
            return b"".join(chunks)
