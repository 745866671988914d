"""The baseline for the ingest benchmark: the least an ingest endpoint can do.

A raw ASGI app (no framework, no auth, no storage): it reads the whole request
body, parses it with orjson and answers ``{"success":true}``. bench/ingest.py runs
it on the same server stack as ``segue serve`` (uvicorn + httptools + uvloop, one
worker, access log off) and divides segue's req/s by this app's.

Run it by hand with::

    .venv/bin/python -m uvicorn --app-dir bench bare_app:app --http httptools \\
        --loop uvloop --workers 1 --no-access-log --lifespan off --port 8099
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Message = MutableMapping[str, Any]

_OK = b'{"success":true}'
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_OK)).encode()),
    ],
}
_BODY = {"type": "http.response.body", "body": _OK}


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if body:
        orjson.loads(body)
    await send(_START)
    await send(_BODY)
