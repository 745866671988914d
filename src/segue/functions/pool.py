"""The parent side of function workers: sandboxed processes, each for one function scope.

Functions never run in segue's own process, and no two scopes ever share a worker.
A *scope* is who a call is for — the destination's id for deliveries, a fresh
``test_…`` id for each Send Test Event, "cli" for ``segue fn test`` — and a worker
serves exactly one (runtime, scope, function version): whatever a function does
inside its worker (patch the runtime, walk the heap, read /proc) it can only see and
change its own scope's calls.

Workers start on demand, up to ``size`` per scope, stay warm for the next call, and
end after ``idle_timeout_s`` unused; at ``max_workers`` processes, the least recently
used idle one makes room. ``FunctionPool.call`` sends the call, serves the ``fetch``
requests it makes (through ``fetch``: the egress-guarded proxy) and enforces the
wall-clock timeout itself: a worker that overruns is killed with its whole sandbox
and replaced on demand, so a runaway function holds only its own scope's workers.
After every call the parent kills whatever the call left running in the sandbox.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from segue.functions import framing
from segue.functions.bridge import MAX_LOG_BYTES, FetchFailed, FetchReply, FetchRequest
from segue.functions.identity import DEFAULT_UID_BASE, DEFAULT_UID_COUNT
from segue.functions.process import WorkerDied, WorkerProcess
from segue.functions.result import CallError, CallResult
from segue.functions.sandbox import Limits, Sandbox, SandboxMode

Fetcher = Callable[[FetchRequest], Awaitable[FetchReply]]
RUNTIMES = ("python", "javascript")
MAX_FETCHES_PER_CALL = 16

log = logging.getLogger("segue.functions")

GroupKey = tuple[str, str, str]  # (runtime, scope, version)


class FunctionCodeError(ValueError):
    """The function's code does not load (syntax error, exception or timeout at import)."""


@dataclass(eq=False)
class _Group:
    """The workers of one (runtime, scope, version); waiters wait for one to be free."""

    key: GroupKey
    idle: list[WorkerProcess] = field(default_factory=list)  # most recently used last
    busy: set[WorkerProcess] = field(default_factory=set)
    starting: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)

    @property
    def size(self) -> int:
        return len(self.idle) + len(self.busy) + self.starting

    @property
    def unused(self) -> bool:
        return not self.size and not any(not w.done() for w in self.waiters)


def _wake(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        future = waiters.popleft()
        if not future.done():
            future.set_result(None)
            return


class FunctionPool:
    """Sandboxed workers for functions. Calls never raise for problems in user code.

    ``fetch`` makes the HTTP requests functions ask for — e.g. ``proxy.FetchProxy`` over
    the shared egress-guarded ``HTTPTransport`` — and raises ``FetchFailed`` when there
    is no answer; without it every fetch fails. ``size`` is the most workers one scope
    may have; ``max_workers`` the most worker processes in all.
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
        max_workers: int = 32,
        idle_timeout_s: float = 60.0,
        max_processes: int = 64,
        cpu_cores: float = 1.0,
        uid_base: int = DEFAULT_UID_BASE,
        uid_count: int = DEFAULT_UID_COUNT,
        use_cgroups: bool = True,
    ) -> None:
        if size < 1:
            raise ValueError("a function pool needs at least one worker per scope")
        if max_workers < size:
            raise ValueError("max_workers must be at least the workers of one scope")
        self.size = size
        self.max_workers = max_workers
        self.timeout_s = timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.limits = Limits(
            memory_mb=memory_mb, cpu_s=cpu_s, processes=max_processes, cpu_cores=cpu_cores
        )
        self.sandbox_mode: SandboxMode = sandbox
        self.hidden_paths = tuple(hidden_paths)
        self.uid_range = (uid_base, uid_count)
        self.use_cgroups = use_cgroups
        self.fetcher = fetch
        self.startup_timeout_s = startup_timeout_s
        self.closed = False
        self._sandbox: Sandbox | None = None
        self._groups: dict[GroupKey, _Group] = {}
        self._spares: dict[str, WorkerProcess] = {}  # started by start(), no scope yet
        self._spawns: set[asyncio.Task[WorkerProcess]] = set()
        self._capacity: deque[asyncio.Future[None]] = deque()
        self._chores: set[asyncio.Task[None]] = set()

    @property
    def sandbox(self) -> Sandbox:
        """The isolation in use (chosen on first use: probing runs a worker once)."""
        if self._sandbox is None:
            self._sandbox = Sandbox.choose(
                self.sandbox_mode,
                limits=self.limits,
                hidden_paths=self.hidden_paths,
                uid_range=self.uid_range,
                use_cgroups=self.use_cgroups,
            )
            if self._sandbox.mode == "none":
                log.warning("function workers run without bubblewrap: weaker isolation")
        return self._sandbox

    async def start(self, runtimes: Iterable[str] = ("python",)) -> None:
        """Start a worker of each of ``runtimes`` now (RuntimeError if one cannot start).

        Each is kept, unused, for the first scope that needs one.
        """
        for runtime in runtimes:
            _check_runtime(runtime)
            self._check_open()
            if runtime not in self._spares:
                self._spares[runtime] = await self._spawn(runtime)

    async def close(self) -> None:
        """Kill every worker; calls waiting for one raise RuntimeError."""
        self.closed = True
        for group in self._groups.values():
            while group.waiters:
                _wake(group.waiters)
        while self._capacity:
            _wake(self._capacity)
        started = await asyncio.gather(*self._spawns, return_exceptions=True)
        workers = [*self._spares.values(), *(w for w in started if isinstance(w, WorkerProcess))]
        for group in self._groups.values():
            workers += [*group.idle, *group.busy]
        self._spares.clear()
        for worker in workers:
            self._retire(worker)
        await asyncio.gather(*self._chores, return_exceptions=True)

    def workers(self, scope: str | None = None) -> list[WorkerProcess]:
        """The running workers (of one scope), for inspection."""
        found = []
        for (_, group_scope, _), group in self._groups.items():
            if scope is None or scope == group_scope:
                found += [*group.idle, *group.busy]
        return found

    # -- workers ---------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("the function pool is closed")

    def _count(self) -> int:
        running = sum(len(g.idle) + len(g.busy) for g in self._groups.values())
        return running + len(self._spares) + len(self._spawns)

    async def _spawn(self, runtime: str) -> WorkerProcess:
        """A new worker, counted from the start; close() waits for it and ends it."""
        if self._sandbox is None:  # the first choice probes: a process start, off the loop
            await asyncio.to_thread(lambda: self.sandbox)
        task = asyncio.ensure_future(
            WorkerProcess.start(
                self.sandbox, runtime, self._serve_fetch, self._retire, self.startup_timeout_s
            )
        )
        self._spawns.add(task)
        task.add_done_callback(self._spawns.discard)
        try:
            worker = await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._end_unwanted)
            raise
        if self.closed:
            self._retire(worker)
            raise RuntimeError("the function pool is closed")
        return worker

    def _end_unwanted(self, task: asyncio.Task[WorkerProcess]) -> None:
        if not task.cancelled() and task.exception() is None:
            self._retire(task.result())

    async def _checkout(self, key: GroupKey) -> WorkerProcess:
        """An idle worker of the scope, a new one (up to ``size``), or the next one free."""
        while True:
            self._check_open()
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group(key)
            while group.idle:
                worker = group.idle.pop()
                if worker.idle_timer is not None:
                    worker.idle_timer.cancel()
                if worker.usable:
                    group.busy.add(worker)
                    return worker
                self._retire(worker)
            if self._groups.get(key) is not group:
                continue  # retiring a dead one emptied the group: look again
            if group.size < self.size:
                return await self._grow(group)
            future = asyncio.get_running_loop().create_future()
            group.waiters.append(future)
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    _wake(group.waiters)  # woken, then cancelled: pass it on
                raise

    async def _grow(self, group: _Group) -> WorkerProcess:
        group.starting += 1
        try:
            worker = await self._obtain(group.key[0])
        except BaseException:
            group.starting -= 1
            _wake(group.waiters)  # one of them may succeed where this failed
            self._forget(group)
            raise
        group.starting -= 1
        worker.group = group
        group.busy.add(worker)
        return worker

    async def _obtain(self, runtime: str) -> WorkerProcess:
        """A fresh worker: a spare, or a new one within ``max_workers`` (evicting if full)."""
        while True:
            self._check_open()
            spare = self._spares.pop(runtime, None)
            if spare is not None:
                if spare.usable:
                    return spare
                self._retire(spare)
                continue
            if self._count() < self.max_workers:
                return await self._spawn(runtime)
            if not self._evict():
                future = asyncio.get_running_loop().create_future()
                self._capacity.append(future)
                await future

    def _evict(self) -> bool:
        """End a spare or the least recently used idle worker; False if all are busy."""
        if self._spares:
            self._retire(next(iter(self._spares.values())))
            return True
        idle = [w for g in self._groups.values() for w in g.idle]
        if not idle:
            return False
        self._retire(min(idle, key=lambda w: w.idle_since))
        return True

    def _release(self, worker: WorkerProcess) -> None:
        """A call ended: the worker goes back to its scope (or is retired if it must)."""
        group: _Group = worker.group
        group.busy.discard(worker)
        if not worker.usable:
            self._retire(worker)
            return
        loop = asyncio.get_running_loop()
        worker.idle_since = loop.time()
        worker.idle_timer = loop.call_later(self.idle_timeout_s, self._reap, worker)
        group.idle.append(worker)
        if any(not w.done() for w in group.waiters):
            _wake(group.waiters)
        else:
            _wake(self._capacity)

    def _reap(self, worker: WorkerProcess) -> None:
        group: _Group | None = worker.group
        if group is not None and worker in group.idle:
            self._retire(worker)

    def _retire(self, worker: WorkerProcess) -> None:
        """End a worker (once) with its sandbox; its scope may start another."""
        if worker.retired:
            return
        worker.retired = True
        if worker.idle_timer is not None:
            worker.idle_timer.cancel()
        worker.kill()
        if self._spares.get(worker.runtime) is worker:
            del self._spares[worker.runtime]
        group: _Group | None = worker.group
        if group is not None:
            if worker in group.idle:
                group.idle.remove(worker)
            group.busy.discard(worker)
            _wake(group.waiters)
            self._forget(group)
        _wake(self._capacity)
        task = asyncio.ensure_future(worker.end())
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    def _forget(self, group: _Group) -> None:
        if group.unused and self._groups.get(group.key) is group:
            del self._groups[group.key]

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
        *,
        scope: str,
        redact: Callable[[str], str] | None = None,
    ) -> CallResult:
        """Run ``handler`` ("track"…, or "batch" with a list of events) in a worker of ``scope``.

        ``version`` identifies ``source``. ``redact`` masks the caller's secrets in what
        the worker writes to segue's log. Problems in user code come back as the
        result's error; RuntimeError only if the pool is closed or no worker can
        start, ValueError for an unknown runtime.
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
        _check_runtime(runtime)
        worker = await self._checkout((runtime, scope, version))
        if redact is not None:
            worker.redact = redact
        result = await self._run(worker, message, source, timeout)
        if len(result.logs) > MAX_LOG_BYTES:  # the worker is not trusted to cap them
            result = replace(result, logs=result.logs[: MAX_LOG_BYTES // 2] + "\n…truncated")
        return result

    async def _run(
        self, worker: WorkerProcess, message: dict[str, Any], source: str, limit_s: float
    ) -> CallResult:
        """One call in a checked-out worker, which is then freed, swept or retired."""
        worker.fetch_timeout = limit_s
        started = time.monotonic()
        try:
            async with asyncio.timeout(limit_s):
                answer = await worker.exchange(message, source)
            result = CallResult.from_json(answer)
        except framing.FrameTooLarge:  # refused before sending: the worker is untouched
            self._release(worker)
            limit = framing.MAX_FRAME_BYTES // (1024 * 1024)
            too_big = f"the event and code are over the {limit} MiB a function call may carry"
            return CallResult(ok=False, error=CallError.ERROR, message=too_big)
        except TimeoutError:
            self._retire(worker)
            return CallResult(
                ok=False,
                error=CallError.TIMEOUT,
                message=f"the function ran longer than {limit_s:g} s",
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
        await self._finish(worker, recycle=answer.get("recycle") is True)
        return result

    async def _finish(self, worker: WorkerProcess, *, recycle: bool = False) -> None:
        """After a call: kill what it left running, then free (or retire) the worker."""
        try:
            swept = not recycle and await worker.sweep()
        except BaseException:
            self._retire(worker)
            raise
        if swept:
            self._release(worker)
        else:
            self._retire(worker)

    async def handlers(
        self, runtime: str, source: str, version: str, filename: str, *, scope: str
    ) -> set[str]:
        """The types the code handles ("track", …, "batch"); FunctionCodeError if it is broken."""
        message = {"op": "handlers", "runtime": runtime, "version": version, "filename": filename}
        _check_runtime(runtime)
        worker = await self._checkout((runtime, scope, version))
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await worker.exchange(message, source)
        except framing.FrameTooLarge:
            self._release(worker)
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
        await self._finish(worker)
        if answer.get("error") is not None:
            raise FunctionCodeError(str(answer["error"]))
        found = answer.get("handlers")
        if not isinstance(found, list):
            raise FunctionCodeError("the worker sent no list of handlers")
        return {str(name) for name in found}


def _check_runtime(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown function runtime {runtime!r}")


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
