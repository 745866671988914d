"""The contract between a function runtime (inside a sandbox worker) and the worker.

A runtime runs user code; when that code calls ``fetch``, the runtime awaits the
worker's ``FetchBridge``, which asks segue's parent process to make the request
through the egress guard. Requests and replies are plain JSON-able dicts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypedDict

from segue.functions.result import CallResult


class FetchRequest(TypedDict):
    url: str
    method: str
    headers: list[list[str]]  # [[name, value], ...]
    body: str | None  # text (bytes are not supported by the bridge)
    timeout: float  # seconds


class FetchReply(TypedDict):
    url: str
    status: int
    headers: list[list[str]]
    body: str


class FetchFailed(Exception):
    """No response: blocked by the egress guard, refused, timed out… (the message says)."""


FetchBridge = Callable[[FetchRequest], Awaitable[FetchReply]]

MAX_LOG_BYTES = 64 * 1024


class Runtime(Protocol):
    """A language runtime, living inside one sandbox worker process."""

    def handlers(self, source: str, version: str, filename: str) -> set[str]:
        """The event types the code handles: "track", …, "delete", and "batch"."""

    async def call(
        self,
        source: str,
        version: str,
        filename: str,
        handler: str,
        payload: Any,
        settings: dict[str, Any],
        fetch: FetchBridge,
    ) -> CallResult:
        """Run one handler ("track"… or "batch", whose payload is a list of events).

        Never raises for errors in user code: they become the CallResult's error.
        """
