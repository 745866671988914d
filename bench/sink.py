"""A minimal HTTP endpoint for bench/delivery.py: answers every POST with 200 at once.

    .venv/bin/python bench/sink.py --port 8099

A raw asyncio protocol on uvloop (no framework), so that it can take far more
requests a second than any client on one core sends: the delivery benchmark
measures the sender, not the sink. Keep-alive, HTTP/1.1, bodies with
Content-Length (what aiohttp sends for a bytes body); no chunked encoding.

For every request it records the arrival time (``time.monotonic_ns()``: CLOCK_MONOTONIC
is one clock for all processes of a machine, so bench/delivery.py can compare it with
its own) and the event's ``messageId`` (found in the body with a byte search, not
parsed). Control endpoints, under ``/_``:

- ``GET /_stats``: ``{"count", "unique", "first_ns", "last_ns", "bytes", "not_post"}``
- ``GET /_arrivals``: ``[[messageId, arrival_ns], ...]`` in arrival order
- ``GET /_sample``: the last request's head (request line + headers) and body
- ``POST /_reset``: forget everything

It listens on 127.0.0.1 only and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_MID = b'"messageId":'


class Recorder:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.arrivals: list[tuple[bytes, int]] = []
        self.seen: set[bytes] = set()
        self.first_ns = 0
        self.last_ns = 0
        self.bytes = 0
        self.not_post = 0
        self.sample: tuple[bytes, bytes] = (b"", b"")

    def record(self, head: bytes, body: bytes, now: int) -> None:
        if not self.arrivals:
            self.first_ns = now
        self.last_ns = now
        self.bytes += len(body)
        self.sample = (head, body)
        start = body.find(_MID)
        mid = b""
        if start >= 0:
            open_quote = body.find(b'"', start + len(_MID))
            close_quote = body.find(b'"', open_quote + 1)
            if open_quote >= 0 and close_quote > open_quote:
                mid = body[open_quote + 1 : close_quote]
        self.arrivals.append((mid, now))
        self.seen.add(mid)

    def control(self, method: bytes, path: bytes) -> bytes:
        if path == b"/_stats":
            return _json(
                {
                    "count": len(self.arrivals),
                    "unique": len(self.seen),
                    "first_ns": self.first_ns,
                    "last_ns": self.last_ns,
                    "bytes": self.bytes,
                    "not_post": self.not_post,
                }
            )
        if path == b"/_arrivals":
            return _json([[m.decode("ascii", "replace"), t] for m, t in self.arrivals])
        if path == b"/_sample":
            head, body = self.sample
            return _json({"head": head.decode("latin-1"), "body": body.decode("utf-8", "replace")})
        if path == b"/_reset" and method == b"POST":
            self.reset()
            return _json({"reset": True})
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def _json(value: object) -> bytes:
    body = json.dumps(value).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def _content_length(head: bytes) -> int:
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    end = lower.find(b"\r\n", at + 2)
    return int(lower[at + 17 : end if end >= 0 else len(lower)].strip())


class SinkProtocol(asyncio.Protocol):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end])
            try:
                total = end + 4 + _content_length(head)
            except ValueError:
                assert self.transport is not None
                self.transport.close()
                return
            if len(buffer) < total:
                return
            now = time.monotonic_ns()
            body = bytes(buffer[end + 4 : total])
            del buffer[:total]
            self._handle(head, body, now)

    def _handle(self, head: bytes, body: bytes, now: int) -> None:
        line_end = head.find(b"\r\n")
        method, _, rest = head[: line_end if line_end >= 0 else len(head)].partition(b" ")
        path = rest.partition(b" ")[0]
        assert self.transport is not None
        if path.startswith(b"/_"):
            self.transport.write(self.recorder.control(method, path))
            return
        if method == b"POST":
            self.recorder.record(head, body, now)
        else:
            self.recorder.not_post += 1
        self.transport.write(_OK)


async def serve(host: str, port: int) -> None:
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SinkProtocol(recorder), host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"sink listening on http://{host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
