"""A real partner endpoint for delivery tests: aiohttp on 127.0.0.1 in its own thread.

The server runs its own event loop in a background thread, so it works the same from
sync tests and from async ones. It records every request exactly as it arrived (method,
path, raw headers in their order, raw body) *before* answering, and answers with a
scriptable status, body, headers and delay. Tests wait for "N requests received" (or
any condition over the recorded requests) with a bound, never with a fixed sleep.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

DEFAULT_WAIT_S = 30.0


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request as it came over the wire."""

    index: int  # 0-based arrival order
    method: str
    path: str  # path and query string, as sent
    version: str  # "HTTP/1.1"
    raw_headers: tuple[tuple[bytes, bytes], ...]  # names and values as sent, in order
    body: bytes
    received_at: float  # time.monotonic() once the whole body was read

    def header_values(self, name: str) -> list[bytes]:
        """Every value of the header ``name`` (names compare case-insensitively)."""
        wanted = name.lower().encode("latin-1")
        return [value for key, value in self.raw_headers if key.lower() == wanted]

    def header(self, name: str) -> str:
        """The single value of ``name``; an AssertionError if it is absent or repeated."""
        values = self.header_values(name)
        assert len(values) == 1, f"header {name!r} sent {len(values)} times: {values}"
        return values[0].decode("latin-1")

    def header_names(self) -> list[str]:
        return [key.decode("latin-1") for key, _ in self.raw_headers]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class Reply:
    """What the endpoint answers: status, body, headers, after an optional delay."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0

    @classmethod
    def json(cls, status: int, data: Any, **kwargs: Any) -> Reply:
        return cls(
            status=status,
            body=json.dumps(data).encode(),
            headers=(("Content-Type", "application/json"),),
            **kwargs,
        )


Responder = Callable[[ReceivedRequest], Reply]


class Endpoint:
    """``with Endpoint() as sink: ...`` — a recording HTTP server at ``sink.url``."""

    def __init__(self, responder: Responder | None = None, *, delay_s: float = 0.0) -> None:
        self._responder: Responder = responder or (lambda _request: Reply(delay_s=delay_s))
        self._cond = threading.Condition()
        self._requests: list[ReceivedRequest] = []
        self._in_flight = 0
        self._errors: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle -----------------------------------------------------------
    def start(self, timeout: float = 10.0) -> Endpoint:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=serve, name="test-endpoint", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("the test endpoint did not start")
        if failure:
            raise failure[0]
        return self

    async def _open(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        if self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop)
            future.result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    def __enter__(self) -> Endpoint:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self.port, "the endpoint is not started"
        return f"http://127.0.0.1:{self.port}"

    # -- answering -----------------------------------------------------------
    def reply_with(self, responder: Responder) -> None:
        """Answer every following request with ``responder(request)``."""
        with self._cond:
            self._responder = responder

    def script(self, replies: Iterable[Reply], then: Reply | None = None) -> None:
        """Answer the next requests with ``replies`` in order, then always with ``then``."""
        queue = list(replies)
        rest = then or Reply()
        lock = threading.Lock()

        def next_reply(_request: ReceivedRequest) -> Reply:
            with lock:
                return queue.pop(0) if queue else rest

        self.reply_with(next_reply)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        with self._cond:
            received = ReceivedRequest(
                index=len(self._requests),
                method=request.method,
                path=request.path_qs,
                version=f"HTTP/{request.version.major}.{request.version.minor}",
                raw_headers=tuple(request.raw_headers),
                body=body,
                received_at=time.monotonic(),
            )
            self._requests.append(received)
            self._in_flight += 1
            responder = self._responder
            self._cond.notify_all()
        try:
            try:
                reply = responder(received)
            except Exception as exc:  # a broken script must show, not hang the test
                with self._cond:
                    self._errors.append(f"responder failed on request {received.index}: {exc!r}")
                reply = Reply(status=599)
            if reply.delay_s > 0:
                await asyncio.sleep(reply.delay_s)
            return web.Response(status=reply.status, body=reply.body, headers=list(reply.headers))
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    # -- observing -----------------------------------------------------------
    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._cond:
            return list(self._requests)

    @property
    def count(self) -> int:
        with self._cond:
            return len(self._requests)

    @property
    def in_flight(self) -> int:
        """Requests received whose answer has not been sent yet."""
        with self._cond:
            return self._in_flight

    @property
    def errors(self) -> list[str]:
        with self._cond:
            return list(self._errors)

    def wait_until(
        self,
        predicate: Callable[[list[ReceivedRequest]], bool],
        timeout: float = DEFAULT_WAIT_S,
        what: str = "the condition",
    ) -> list[ReceivedRequest]:
        """Block until ``predicate(requests)`` holds (re-checked on every arrival and answer).

        Raises AssertionError after ``timeout`` seconds, saying how many requests came.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self._requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{what} not reached within {timeout:g} s:"
                        f" {len(self._requests)} requests received, {self._in_flight} in flight"
                    )
                self._cond.wait(left)
            return list(self._requests)

    def wait_for_requests(
        self, count: int, timeout: float = DEFAULT_WAIT_S
    ) -> list[ReceivedRequest]:
        """Block until at least ``count`` requests arrived; returns all received so far."""
        return self.wait_until(
            lambda requests: len(requests) >= count, timeout, f"{count} requests"
        )

    def wait_in_flight(self, at_least: int = 1, timeout: float = DEFAULT_WAIT_S) -> None:
        """Block until at least ``at_least`` requests are being answered right now."""
        self.wait_until(
            lambda _requests: self._in_flight >= at_least,
            timeout,
            f"{at_least} requests in flight",
        )
