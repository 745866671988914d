"""The parent side of function workers: a pool of sandboxed processes, one call each at a time.

Functions never run in segue's own process. ``FunctionPool.call`` takes an idle worker
of the function's language, sends it the call, serves the ``fetch`` requests it makes
(through the ``fetch`` callable: the egress-guarded proxy), and enforces the wall-clock
timeout itself: a worker that overruns is killed with its process group and replaced,
so a runaway function costs one worker restart and never blocks other calls.
Each language has its own workers (``size`` each, started on first use), because their
memory limits differ: RLIMIT_AS for Python, V8's heap limit for JavaScript.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from segue.functions import framing
from segue.functions.bridge import MAX_LOG_BYTES, FetchFailed, FetchReply, FetchRequest
from segue.functions.result import CallError, CallResult
from segue.functions.sandbox import Limits, Sandbox, SandboxMode, WorkerDied, WorkerProcess

Fetcher = Callable[[FetchRequest], Awaitable[FetchReply]]
RUNTIMES = ("python", "javascript")
MAX_FETCHES_PER_CALL = 16

log = logging.getLogger("segue.functions")


class FunctionCodeError(ValueError):
    """The function's code does not load (syntax error, exception or timeout at import)."""


@dataclass(eq=False)
class _Group:
    """The workers of one language; ``None`` in the idle queue wakes a waiter to re-check."""

    runtime: str
    idle: asyncio.Queue[WorkerProcess | None] = field(default_factory=asyncio.Queue)
    workers: set[WorkerProcess] = field(default_factory=set)
    spawning: set[asyncio.Task[None]] = field(default_factory=set)
    last_error: str | None = None


class FunctionPool:
    """Sandboxed workers for functions. Calls never raise for problems in user code.

    ``fetch`` makes the HTTP requests functions ask for — e.g. ``proxy.FetchProxy`` over
    the shared egress-guarded ``HTTPTransport`` — and raises ``FetchFailed`` when there
    is no answer; without it every fetch fails.
    """

    def __init__(
        self,
        size: int = 2,
        timeout_s: float = 5.0,
        memory_mb: int = 256,
        cpu_s: int = 30,
        sandbox: SandboxMode = "auto",
        hidden_paths: Iterable[str | os.PathLike[str]] = (),
        fetch: Fetcher | None = None,
        *,
        startup_timeout_s: float = 30.0,
    ) -> None:
        if size < 1:
            raise ValueError("a function pool needs at least one worker")
        self.size = size
        self.timeout_s = timeout_s
        self.limits = Limits(memory_mb=memory_mb, cpu_s=cpu_s)
        self.sandbox_mode: SandboxMode = sandbox
        self.hidden_paths = tuple(hidden_paths)
        self.fetcher = fetch
        self.startup_timeout_s = startup_timeout_s
        self.closed = False
        self._sandbox: Sandbox | None = None
        self._groups: dict[str, _Group] = {}
        self._lock = asyncio.Lock()
        self._chores: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()

    @property
    def sandbox(self) -> Sandbox:
        """The isolation in use (chosen on first use: probing bubblewrap runs it once)."""
        if self._sandbox is None:
            self._sandbox = Sandbox.choose(
                self.sandbox_mode, limits=self.limits, hidden_paths=self.hidden_paths
            )
            if self._sandbox.mode == "none":
                log.warning("function workers run without bubblewrap: weaker isolation")
        return self._sandbox

    async def start(self, runtimes: Iterable[str] = ("python",)) -> None:
        """Start the workers of ``runtimes`` now; RuntimeError if they cannot start."""
        for runtime in runtimes:
            await self._group(runtime, wait=True)

    async def close(self) -> None:
        """Kill every worker; calls waiting for one raise RuntimeError."""
        self.closed = True
        self._closing.set()
        workers: list[WorkerProcess] = []
        starting: list[asyncio.Task[None]] = []
        for group in self._groups.values():
            starting.extend(group.spawning)  # cancelling one could orphan its process
            workers.extend(group.workers)
            group.workers.clear()
            group.idle.put_nowait(None)
        for worker in workers:
            worker.retired = True
        await asyncio.gather(*(worker.end() for worker in workers))
        await asyncio.gather(*starting, *self._chores, return_exceptions=True)

    # -- workers ---------------------------------------------------------------------
    async def _group(self, runtime: str, *, wait: bool = False) -> _Group:
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown function runtime {runtime!r}")
        if self.closed:
            raise RuntimeError("the function pool is closed")
        group = self._groups.get(runtime)
        if group is not None:
            return group
        async with self._lock:
            if runtime in self._groups:
                return self._groups[runtime]
            group = _Group(runtime)
            if not wait:
                for _ in range(self.size):
                    self._replace(group)
            else:
                started = await asyncio.gather(
                    *(self._spawn(runtime) for _ in range(self.size)), return_exceptions=True
                )
                workers = [item for item in started if isinstance(item, WorkerProcess)]
                failures = [item for item in started if not isinstance(item, WorkerProcess)]
                if failures:
                    for worker in workers:
                        worker.retired = True
                        await worker.end()
                    raise RuntimeError(str(failures[0]))
                for worker in workers:
                    group.workers.add(worker)
                    group.idle.put_nowait(worker)
            self._groups[runtime] = group
            return group

    async def _spawn(self, runtime: str) -> WorkerProcess:
        return await WorkerProcess.start(
            self.sandbox, runtime, self._serve_fetch, self._retire, self.startup_timeout_s
        )

    def _replace(self, group: _Group) -> None:
        """Start a worker in the background; it joins the idle queue once ready."""

        async def spawn() -> None:
            delay = 0.2
            while not self.closed:
                try:
                    worker = await self._spawn(group.runtime)
                except Exception as exc:
                    group.last_error = str(exc)
                    log.error("%s", exc)
                    group.idle.put_nowait(None)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), delay)
                    delay = min(delay * 2, 10.0)
                    continue
                if self._closing.is_set():  # close() waits for this start, not cancels it
                    worker.retired = True
                    await worker.end()
                    return
                group.last_error = None
                group.workers.add(worker)
                group.idle.put_nowait(worker)
                return

        task = asyncio.create_task(spawn())
        group.spawning.add(task)
        task.add_done_callback(group.spawning.discard)

    def _retire(self, worker: WorkerProcess) -> None:
        """End a worker (once) and start its replacement."""
        if worker.retired:
            return
        worker.retired = True
        worker.kill()
        group = self._groups.get(worker.runtime)
        if group is not None and worker in group.workers:
            group.workers.discard(worker)
            if not self.closed:
                self._replace(group)
        task = asyncio.ensure_future(worker.end())
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _checkout(self, group: _Group) -> WorkerProcess:
        while True:
            if self.closed:
                raise RuntimeError("the function pool is closed")
            worker = await group.idle.get()
            if worker is None:
                if self.closed or (not group.workers and group.last_error):
                    group.idle.put_nowait(None)  # wake the next waiter too
                    raise RuntimeError(
                        "the function pool is closed"
                        if self.closed
                        else f"function workers cannot start: {group.last_error}"
                    )
                continue
            if worker.alive and not worker.retired:
                return worker

    # -- fetch -----------------------------------------------------------------------
    def _serve_fetch(self, worker: WorkerProcess, frame: dict[str, Any]) -> None:
        """Answer a worker's fetch frame in the background (cancelled when its call ends)."""
        fetch_id = frame.get("id")
        if worker.pending is None or len(worker.tasks) >= MAX_FETCHES_PER_CALL:
            why = "no call is running" if worker.pending is None else "too many at once"
            worker.send({"op": "fetch_result", "id": fetch_id, "error": f"fetch refused: {why}"})
            return
        task = asyncio.create_task(self._fetch(worker, fetch_id, frame.get("request")))
        worker.tasks.add(task)
        task.add_done_callback(worker.tasks.discard)

    async def _fetch(self, worker: WorkerProcess, fetch_id: Any, raw: Any) -> None:
        answer: dict[str, Any] = {"op": "fetch_result", "id": fetch_id}
        try:
            request = _fetch_request(raw, worker.fetch_timeout)
            if self.fetcher is None:
                raise FetchFailed(f"request to {request['url']} failed, reason: fetch is disabled")
            reply = await self.fetcher(request)
            answer["reply"] = {
                "url": str(reply["url"]),
                "status": int(reply["status"]),
                "headers": [[str(name), str(value)] for name, value in reply["headers"]],
                "body": str(reply["body"]),
            }
        except FetchFailed as exc:
            answer["error"] = str(exc)
        except Exception as exc:
            log.exception("a function's fetch failed unexpectedly")
            answer["error"] = f"fetch failed, reason: {type(exc).__name__}: {exc}"
        try:
            worker.send(answer)
        except framing.FrameTooLarge:
            worker.send(
                {"op": "fetch_result", "id": fetch_id, "error": "the response is too large"}
            )

    # -- calls -----------------------------------------------------------------------
    async def call(
        self,
        runtime: str,
        source: str,
        version: str,
        filename: str,
        handler: str,
        payload: Any,
        settings: dict[str, Any],
        timeout_s: float | None = None,
    ) -> CallResult:
        """Run ``handler`` ("track"…, or "batch" with a list of events) in a worker.

        ``version`` identifies ``source`` (workers cache code by it). Problems in user
        code come back as the result's error; RuntimeError only if the pool is closed
        or no worker can start, ValueError for an unknown runtime.
        """
        timeout = timeout_s or self.timeout_s
        message = {
            "op": "call",
            "runtime": runtime,
            "version": version,
            "filename": filename,
            "handler": handler,
            "payload": payload,
            "settings": settings,
            "timeout_s": timeout,
        }
        group = await self._group(runtime)
        worker = await self._checkout(group)
        worker.fetch_timeout = timeout
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                answer = await worker.exchange(message, source)
            result = CallResult.from_json(answer)
        except framing.FrameTooLarge:  # refused before sending: the worker is untouched
            group.idle.put_nowait(worker)
            limit = framing.MAX_FRAME_BYTES // (1024 * 1024)
            too_big = f"the event and code are over the {limit} MiB a function call may carry"
            return CallResult(ok=False, error=CallError.ERROR, message=too_big)
        except TimeoutError:
            self._retire(worker)
            return CallResult(
                ok=False,
                error=CallError.TIMEOUT,
                message=f"the function ran longer than {timeout:g} s",
                duration_ms=(time.monotonic() - started) * 1000,
            )
        except WorkerDied:
            await worker.finished()
            self._retire(worker)
            return worker.death()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("function worker %s sent a bad result: %r", worker.process.pid, exc)
            self._retire(worker)
            return CallResult(ok=False, error=CallError.CRASH, message="invalid worker result")
        except BaseException:
            self._retire(worker)  # cancelled mid-call: the worker may still be running it
            raise
        if answer.get("recycle") is True:
            self._retire(worker)
        else:
            group.idle.put_nowait(worker)
        if len(result.logs) > MAX_LOG_BYTES:  # the worker is not trusted to cap them
            result = replace(result, logs=result.logs[: MAX_LOG_BYTES // 2] + "\n…truncated")
        return result

    async def handlers(self, runtime: str, source: str, version: str, filename: str) -> set[str]:
        """The types the code handles ("track", …, "batch"); FunctionCodeError if it is broken."""
        message = {"op": "handlers", "runtime": runtime, "version": version, "filename": filename}
        group = await self._group(runtime)
        worker = await self._checkout(group)
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await worker.exchange(message, source)
        except framing.FrameTooLarge:
            group.idle.put_nowait(worker)
            raise FunctionCodeError("the code is too large") from None
        except TimeoutError:
            self._retire(worker)
            raise FunctionCodeError(
                f"the code's top level ran longer than {self.timeout_s:g} s"
            ) from None
        except WorkerDied:
            await worker.finished()
            self._retire(worker)
            raise FunctionCodeError(worker.death().message or "the worker died") from None
        except BaseException:
            self._retire(worker)
            raise
        group.idle.put_nowait(worker)
        if answer.get("error") is not None:
            raise FunctionCodeError(str(answer["error"]))
        found = answer.get("handlers")
        if not isinstance(found, list):
            raise FunctionCodeError("the worker sent no list of handlers")
        return {str(name) for name in found}


def _fetch_request(raw: Any, max_timeout: float) -> FetchRequest:
    """A worker's fetch request, checked field by field (the worker is untrusted)."""
    try:
        assert isinstance(raw, dict)
        url, method, body = raw["url"], raw["method"], raw.get("body")
        assert isinstance(url, str) and isinstance(method, str)
        assert body is None or isinstance(body, str)
        headers = [[str(name), str(value)] for name, value in raw.get("headers") or []]
        timeout = min(max(0.1, float(raw.get("timeout") or max_timeout)), max_timeout)
    except (AssertionError, KeyError, TypeError, ValueError):
        raise FetchFailed("fetch failed, reason: malformed request") from None
    return FetchRequest(url=url, method=method, headers=headers, body=body, timeout=timeout)
