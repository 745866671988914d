"""uvicorn's httptools protocol, with limits for slow and greedy clients.

uvicorn bounds neither the time a client takes to send its request head or body nor
the size or number of its headers (``timeout_keep_alive`` only covers the wait
between two requests, and no byte of a new connection is awaited with a timeout).
This subclass adds, per connection:

- a head deadline: the request line and headers must arrive within
  ``header_timeout_s`` of the connection's opening (or of the first byte of the next
  request on a kept-alive connection);
- a body deadline: while a body is expected, no gap between two pieces of it may
  exceed ``body_timeout_s``;
- a head size and a header count limit, answered with ``431`` and a JSON body;
- a place in the process's ``ConnectionBudget``, which closes the longest
  unproductive connection when a new one would pass the budget.

A client that timed out mid-request gets ``408`` (one that sent nothing is just
closed). Refusals are followed by a lingering close: the answer is sent, the write
side is shut, and what the client still sends is read and dropped for a moment, so
that it reads the answer rather than a connection reset.
"""

from __future__ import annotations

import enum
import http
from asyncio import TimerHandle, Transport
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from segue.connection_budget import ConnectionBudget

LINGER_S = 2.0  # how long a refused client may go on sending before the connection closes
LINGER_BYTES = 1 << 20
_NEVER = float("inf")


@dataclass(frozen=True, slots=True)
class ClientLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024  # the request line and every header line
    max_headers: int = 100


class _Phase(enum.Enum):
    WAITING = "waiting"  # connected, or kept alive, no byte of a request yet
    HEAD = "head"
    BODY = "body"
    READ = "read"  # the request has been read in full: the app's turn
    REFUSED = "refused"  # answered 408/431, lingering before the close


class _HeadTooLargeError(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Bound to its limits and budget by ``protocol_class``."""

    limits: ClassVar[ClientLimits]
    budget: ClassVar[ConnectionBudget]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _Phase.WAITING
        self._deadline = 0.0
        self._timer: TimerHandle | None = None
        self._timer_at = 0.0  # when the pending timer fires
        self._head_raw = 0  # bytes fed while the head was incomplete (a bound)
        self._chunk = 0  # the size of the chunk being parsed
        self._refusal: tuple[int, str, str] | None = None
        self._lingered = 0
        self._first = True  # the first request's head deadline runs from the connection

    # -- connection ---------------------------------------------------------------

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout_s)
        self.budget.opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.budget.closed(self)
        self._cancel_timer()
        super().connection_lost(exc)

    def sheddable(self) -> bool:
        if self.pipeline:
            return False
        cycle: RequestResponseCycle | None = self.cycle
        return cycle is None or cycle.response_complete or cycle.more_body

    def shed(self) -> None:
        self._cancel_timer()
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._phase is _Phase.REFUSED:
            self._lingered += len(data)
            if self._lingered > LINGER_BYTES:
                self.transport.abort()
            return
        self._unset_keepalive_if_required()
        head_ongoing = self._phase is _Phase.HEAD
        self._chunk = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if self._refusal is None:  # what uvicorn does with a malformed request
                self._phase = _Phase.REFUSED
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
                return
        if self._refusal is None and self._phase is _Phase.HEAD:
            # all of this chunk is head if the head began before it, at most all of it
            self._head_raw = self._head_raw + len(data) if head_ongoing else len(data)
            if self._head_raw > self.limits.max_header_bytes:
                self._refusal = self._too_large()
            elif len(self.headers) > self.limits.max_headers:
                self._refusal = self._too_many()
        if self._refusal is not None:
            self._refuse(*self._refusal)

    # -- parser callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _Phase.HEAD
        self._head_raw = 0
        if not self._first:  # a kept-alive connection: the deadline starts now
            self._arm(self.limits.header_timeout_s)
        self.budget.touched(self)

    def on_headers_complete(self) -> None:
        if len(self.headers) > self.limits.max_headers:
            self._refusal = self._too_many()
            raise _HeadTooLargeError  # stops the parser: the app never sees the request
        # within the bound (the whole head arrived in chunks no bigger than the limit,
        # the usual case) there is nothing to count
        if self._head_raw + self._chunk > self.limits.max_header_bytes:
            size = len(self.url) + sum(len(k) + len(v) + 4 for k, v in self.headers)
            if size > self.limits.max_header_bytes:
                self._refusal = self._too_large()
                raise _HeadTooLargeError
        self._phase = _Phase.BODY
        self._arm(self.limits.body_timeout_s)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._arm(self.limits.body_timeout_s)
        self.budget.touched(self)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._phase = _Phase.READ
        self._first = False
        self._disarm()
        super().on_message_complete()
        cycle: RequestResponseCycle | None = self.cycle
        if cycle is not None and cycle.response_complete:  # answered before the body was in
            self._idle(float(self.timeout_keep_alive))  # uvicorn's keep-alive timer is off

    def on_response_complete(self) -> None:
        super().on_response_complete()  # arms the keep-alive timer
        if self._phase is _Phase.READ and self.cycle.response_complete:
            self._idle(None)

    def _idle(self, timeout: float | None) -> None:
        if not self.transport.is_closing():
            self._phase = _Phase.WAITING
            if timeout is not None:
                self._arm(timeout)
            self.budget.touched(self)

    # -- deadlines ----------------------------------------------------------------

    def _arm(self, timeout: float) -> None:
        """A deadline ``timeout`` from now; a timer that would fire later is replaced."""
        self._deadline = self.loop.time() + timeout
        if self._timer is None or self._timer_at > self._deadline:
            self._cancel_timer()
            self._timer_at = self._deadline
            self._timer = self.loop.call_at(self._deadline, self._on_timer)

    def _disarm(self) -> None:
        """No deadline for now; a pending timer stays (cheaper than a cancel and a new
        timer per request) and goes when it fires."""
        self._deadline = _NEVER

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._phase is _Phase.REFUSED:
            self.transport.abort()
            return
        if self._deadline == _NEVER:
            return
        remaining = self._deadline - self.loop.time()
        if remaining > 0 or self.flow.read_paused:  # a pause is the server's doing
            self._timer_at = self.loop.time() + max(remaining, 0.1)
            self._timer = self.loop.call_at(self._timer_at, self._on_timer)
            return
        if self._phase is _Phase.BODY:
            timeout = self.limits.body_timeout_s
            self._refuse(408, "request_timeout", f"no part of the body came for {timeout:g} s")
        elif self._phase is _Phase.HEAD:
            timeout = self.limits.header_timeout_s
            self._refuse(408, "request_timeout", f"the headers did not come within {timeout:g} s")
        else:  # nothing sent at all: just close, as after a keep-alive timeout
            self.transport.close()

    # -- refusals -----------------------------------------------------------------

    def _too_large(self) -> tuple[int, str, str]:
        limit = self.limits.max_header_bytes
        return 431, "headers_too_large", f"the request line and headers are over {limit} bytes"

    def _too_many(self) -> tuple[int, str, str]:
        limit = self.limits.max_headers
        return 431, "headers_too_large", f"the request has more than {limit} headers"

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer with ``status`` and linger, or just close when an answer on this
        connection has begun (a status now would be read as part of it)."""
        body_phase = self._phase is _Phase.BODY
        self._phase = _Phase.REFUSED
        self._refusal = (status, code, message)
        cycle: RequestResponseCycle | None = self.cycle
        if cycle is not None and (
            cycle.response_started if body_phase else not cycle.response_complete
        ):
            self.transport.close()
            return
        if body_phase and cycle is not None:  # the app waits for the body: it never comes
            cycle.disconnected = True
            cycle.message_event.set()
        body = orjson.dumps({"success": False, "code": code, "message": message})
        reason = http.HTTPStatus(status).phrase
        lines = [f"HTTP/1.1 {status} {reason}".encode()]
        lines += [name + b": " + value for name, value in self.server_state.default_headers]
        lines += [
            b"content-type: application/json",
            b"content-length: " + str(len(body)).encode(),
            b"connection: close",
        ]
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self._cancel_timer()
        self._timer_at = self.loop.time() + LINGER_S
        self._timer = self.loop.call_at(self._timer_at, self._on_timer)


def protocol_class(
    limits: ClientLimits, budget: ConnectionBudget
) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to hand to ``uvicorn.Config(http=...)``."""
    return type(
        "SegueHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"limits": limits, "budget": budget},
    )
