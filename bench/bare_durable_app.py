"""A second baseline: the bare app, plus a durable write before the answer.

Like bench/bare_app.py it reads the body, parses it with orjson and answers
{"success":true}, but only after the raw body is committed to SQLite (WAL,
synchronous=FULL) through segue's own group-commit writer thread: one row per
request, no per-event rows, no indexes, no dedup. It is the floor for any design
that acknowledges only what is durable on this stack; bench/ingest.py reports it
as a reference row, not against a target.

    BENCH_DB=/tmp/b.db .venv/bin/python -m uvicorn --app-dir bench \\
        bare_durable_app:app --http httptools --loop uvloop --no-access-log
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from segue.store.sqlite.connection import connect
from segue.store.sqlite.writer import GroupCommitWriter

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


def _connect() -> sqlite3.Connection:
    path = os.environ.get("BENCH_DB") or os.path.join(tempfile.mkdtemp(), "bare.db")
    conn = connect(path, synchronous="full")
    conn.execute("CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, body BLOB)")
    return conn


_writer = GroupCommitWriter(_connect)


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
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
    await _writer.submit(
        lambda conn: conn.execute("INSERT INTO requests (body) VALUES (?)", (body,))
    )
    await send(_START)
    await send(_BODY)


async def _lifespan(
    receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _writer.start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            _writer.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return
