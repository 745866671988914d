"""A started function worker: frames in and out, one request at a time, its stderr, its end.

The worker is untrusted: a frame it should not send ends it as a crash, and what it
says about itself is never believed (its death is read from its exit status, its
last words and its control group's OOM count). Ending it ends its whole sandbox
(``Confinement.kill``); ``sweep`` after a call ends everything it left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
from collections import deque
from collections.abc import Callable
from typing import Any

from segue.functions import framing
from segue.functions.result import CallError, CallResult
from segue.functions.sandbox import Sandbox, WorkerCommand

STDERR_TAIL_BYTES = 8192
MAX_STDERR_LINES = 200  # per worker, to segue's log: a chatty function cannot flood it
_MEMORY_HINTS = ("MemoryError", "out of memory", "Cannot allocate memory", "OOM")

log = logging.getLogger("segue.functions")


class WorkerDied(Exception):
    """The worker ended (or broke the protocol) before answering."""


class WorkerProcess:
    """A started worker: frames in and out, one request at a time, its stderr, its end.

    The worker is untrusted: a frame it should not send ends it as a crash.
    ``on_fetch(worker, frame)`` serves its fetch requests; ``on_exit(worker)`` hears of
    an end nobody asked for (``retired`` is set when the pool ends it on purpose).
    """

    def __init__(
        self,
        sandbox: Sandbox,
        runtime: str,
        command: WorkerCommand,
        process: asyncio.subprocess.Process,
        on_fetch: Callable[[WorkerProcess, dict[str, Any]], None],
        on_exit: Callable[[WorkerProcess], None],
    ) -> None:
        self.sandbox, self.runtime, self.command, self.process = sandbox, runtime, command, process
        self.on_fetch, self.on_exit = on_fetch, on_exit
        self.known: set[str] = set()  # versions whose source this worker has
        self.ids = itertools.count(1)
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending: tuple[int, asyncio.Future[dict[str, Any]]] | None = None
        self.tasks: set[asyncio.Task[None]] = set()  # the current call's fetches
        self.fetch_timeout = 5.0
        self.stderr_tail: deque[bytes] = deque()
        # masks the current caller's secrets in what the worker writes to segue's log
        self.redact: Callable[[str], str] = _unchanged
        self.alive, self.retired = True, False
        self.group: Any = None  # the pool's bookkeeping: the scope it serves
        self.idle_since = 0.0
        self.idle_timer: asyncio.TimerHandle | None = None
        self.reader = asyncio.create_task(self._read())
        self.stderr_reader = asyncio.create_task(self._read_stderr())

    @classmethod
    async def start(
        cls,
        sandbox: Sandbox,
        runtime: str,
        on_fetch: Callable[[WorkerProcess, dict[str, Any]], None],
        on_exit: Callable[[WorkerProcess], None],
        startup_timeout_s: float = 30.0,
    ) -> WorkerProcess:
        """Start a worker and wait for its "ready"; RuntimeError (with its stderr) if not."""
        command = sandbox.command(runtime)
        try:
            process = await asyncio.create_subprocess_exec(
                *command.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=command.cwd,
                env=command.env,
                preexec_fn=command.preexec_fn,
                start_new_session=True,  # its own process group, killed as one
            )
        except BaseException:
            command.confinement.discard()
            raise
        worker = cls(sandbox, runtime, command, process, on_fetch, on_exit)
        try:
            async with asyncio.timeout(startup_timeout_s):
                await worker.ready
        except (TimeoutError, WorkerDied, asyncio.CancelledError) as exc:
            worker.retired = True
            await worker.end()
            if isinstance(exc, asyncio.CancelledError):
                raise
            detail = worker.stderr_text().strip()[-1000:] or "no output"
            raise RuntimeError(f"a {runtime} function worker did not start: {detail}") from None
        command.confinement.seal()  # before any function code runs in it
        return worker

    def send(self, message: dict[str, Any]) -> None:
        stdin = self.process.stdin
        if self.alive and stdin is not None and not stdin.is_closing():
            stdin.write(framing.encode(message))

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and await its answer (WorkerDied if the worker ends first)."""
        if not self.alive:
            raise WorkerDied
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        request_id = next(self.ids)
        self.pending = (request_id, future)
        try:
            self.send({**message, "id": request_id})
            return await future
        finally:
            self.pending = None
            for task in list(self.tasks):
                task.cancel()

    async def exchange(self, message: dict[str, Any], source: str) -> dict[str, Any]:
        """A request carrying the source only if this worker lacks that version."""
        version = str(message["version"])
        sent = version not in self.known
        answer = await self.request({**message, "source": source} if sent else message)
        if answer.get("op") == "need_source":
            sent = True
            answer = await self.request({**message, "source": source})
        if sent:
            self.known.add(version)
        return answer

    async def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            while (message := await framing.read_frame(self.process.stdout)) is not None:
                op, pending = message.get("op"), self.pending
                if op == "ready" and not self.ready.done():
                    self.ready.set_result(None)
                elif op in ("result", "handlers", "need_source"):
                    if pending and message.get("id") == pending[0] and not pending[1].done():
                        pending[1].set_result(message)
                elif op == "fetch":
                    self.on_fetch(self, message)
                else:
                    raise framing.FrameError(f"unexpected frame {str(op)[:40]!r}")
        except (framing.FrameError, ConnectionError) as exc:
            log.warning("function worker %s broke the protocol: %s", self.process.pid, exc)
        finally:
            self.alive = False
            if not self.ready.done():
                self.ready.set_exception(WorkerDied())
                self.ready.exception()  # mark it retrieved: start() may have given up
            if self.pending and not self.pending[1].done():
                self.pending[1].set_exception(WorkerDied())
            if not self.retired:
                self.on_exit(self)

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        size, lines, partial = 0, 0, b""
        while chunk := await self.process.stderr.read(65536):
            self.stderr_tail.append(chunk)
            size += len(chunk)
            while size - len(self.stderr_tail[0]) >= STDERR_TAIL_BYTES:
                size -= len(self.stderr_tail.popleft())
            *complete, partial = (partial + chunk).split(b"\n")
            partial = partial[-4096:]
            for line in complete:
                lines += 1
                if lines <= MAX_STDERR_LINES:
                    text = self.redact(line.decode("utf-8", "replace"))[:2000]
                    log.warning("function worker %s: %s", self.process.pid, text)
                elif lines == MAX_STDERR_LINES + 1:
                    log.warning("function worker %s: (more output dropped)", self.process.pid)

    def stderr_text(self) -> str:
        return b"".join(self.stderr_tail).decode("utf-8", "replace")

    @property
    def usable(self) -> bool:
        return self.alive and not self.retired

    async def sweep(self) -> bool:
        """Kill what the call left running in the sandbox; False if it could not."""
        return await self.command.confinement.sweep()

    def kill(self) -> None:
        """SIGKILL the whole sandbox: its control group or uid, and the process group.

        Not ``process.kill()``: Popen polls first, and reaping the child there races
        asyncio's watcher, which then reports an exit status of 255.
        """
        self.command.confinement.kill()
        if self.process.returncode is not None:
            return
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(self.process.pid, signal.SIGKILL)

    async def end(self, grace_s: float = 2.0) -> None:
        """Kill it, wait for it (and its stderr), then give back its uid, groups and dir."""
        self.kill()
        if self.process.stdin is not None:
            self.process.stdin.close()  # else asyncio warns when the transport is collected
        await self.finished(grace_s)
        await self.command.confinement.release()

    async def finished(self, grace_s: float = 2.0) -> int | None:
        """The exit status once the process is gone and its stderr read (None if stuck)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await self.process.wait()
                await self.stderr_reader
        return self.process.returncode

    def death(self) -> CallResult:
        """Why the worker died under a call: MEMORY if its last words say so, else CRASH."""
        code, tail = self.process.returncode, self.stderr_text()
        number: int | None = None
        if code is not None and code < 0:
            number = -code
        elif code is not None and code > 128 and self.sandbox.mode == "bwrap":
            number = code - 128  # bwrap exits with 128 + the signal that killed the worker
        if self.command.confinement.oom_killed() or any(hint in tail for hint in _MEMORY_HINTS):
            message = "the function went over its memory limit and its worker died"
            return CallResult(ok=False, error=CallError.MEMORY, message=message)
        if number == signal.SIGXCPU:
            message = f"the function used more than {self.sandbox.limits.cpu_s} s of CPU time"
        elif number is not None and number in signal.valid_signals():
            message = f"the function's worker was killed by {signal.Signals(number).name}"
        else:
            message = f"the function's worker exited (status {code})"
        return CallResult(ok=False, error=CallError.CRASH, message=message)


def _unchanged(text: str) -> str:
    return text
