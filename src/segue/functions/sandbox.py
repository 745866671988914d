"""How a function worker process is started: environment, limits and (if possible) bubblewrap.

Trust model. A function is untrusted code running as segue's user. What stops it:

* always: a separate process (never ingest or delivery), a scrubbed environment (PATH,
  LANG, PYTHONPATH, HOME — none of segue's secrets), a fresh temp dir as cwd/HOME,
  rlimits (address space or data size, CPU seconds, open files, file size, no core
  dumps), and the parent's wall-clock timeout, which kills the whole process group.
* mode "bwrap" (bubblewrap, used by "auto" when it works): the whole file system
  read-only except the temp dir and a small private /tmp; segue's data dir (database,
  secret.key) and any other hidden path replaced by an empty tmpfs; new network, PID, IPC
  and UTS namespaces (no network at all: ``fetch`` is proxied through the parent and its
  egress guard); all capabilities dropped, so the mounts cannot be undone.
* mode "none": only the first list. The function can read (and, with the permissions of
  segue's user, write) any file segue can, and open sockets itself. Use it only for
  code you trust, or where bubblewrap cannot run.

Neither mode filters system calls (no seccomp), and a Python function can change
anything inside its own worker (including its rlimits' soft values and the protocol
pipes): the parent treats every worker as untrusted and validates what it says.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import segue
from segue.functions import framing
from segue.functions.result import CallError, CallResult

SandboxMode = Literal["auto", "bwrap", "none"]
MiB = 1024 * 1024
# V8 reserves ~512 MiB of writable code range up front: a JavaScript worker's data limit
# is the memory limit plus this (its heap is limited by V8 itself, see JSRuntime).
JS_DATA_OVERHEAD_MB = 1024
STDERR_TAIL_BYTES = 8192
MAX_STDERR_LINES = 200  # per worker, to segue's log: a chatty function cannot flood it
_MEMORY_HINTS = ("MemoryError", "out of memory", "Cannot allocate memory", "OOM")

log = logging.getLogger("segue.functions")


@dataclass(frozen=True, slots=True)
class Limits:
    memory_mb: int = 256  # Python: RLIMIT_AS; JavaScript: V8's heap limit
    cpu_s: int = 30  # RLIMIT_CPU, renewed by the worker for each call
    open_files: int = 256
    file_mb: int = 64  # RLIMIT_FSIZE: the largest file the function may write
    tmp_mb: int = 64  # the private /tmp under bubblewrap


@dataclass(frozen=True, slots=True)
class WorkerCommand:
    """Everything needed to start one worker; ``tempdir`` is removed after it exits."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    tempdir: Path
    preexec_fn: Callable[[], None]


@functools.cache
def _probe(*extra: str) -> bool:
    binary = shutil.which("bwrap")
    if binary is None:
        return False
    argv = [binary, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *extra]
    argv += ["--unshare-net", "--unshare-pid", "--cap-drop", "ALL", "--die-with-parent", "true"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=10, check=False, env={})
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def sandbox_available() -> bool:
    """True when bubblewrap is installed and can make namespaces on this machine."""
    return _probe()


def _tmpfs_size_supported() -> bool:
    return _probe("--size", str(MiB), "--tmpfs", "/tmp")


def source_root() -> Path:
    """The directory holding the ``segue`` package: the worker's PYTHONPATH."""
    return Path(segue.__file__).resolve().parent.parent


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


@dataclass(frozen=True, slots=True)
class Sandbox:
    """The isolation in use: ``mode`` is "bwrap" or "none" once chosen."""

    mode: Literal["bwrap", "none"]
    limits: Limits = field(default_factory=Limits)
    hidden_paths: tuple[Path, ...] = ()

    @classmethod
    def choose(
        cls,
        mode: SandboxMode = "auto",
        *,
        limits: Limits | None = None,
        hidden_paths: Iterable[str | os.PathLike[str]] = (),
    ) -> Sandbox:
        """Mode "auto" picks bubblewrap when it works; "bwrap" insists on it (RuntimeError)."""
        if mode not in ("auto", "bwrap", "none"):
            raise ValueError(f"unknown sandbox mode {mode!r}: use auto, bwrap or none")
        chosen: Literal["bwrap", "none"] = "none"
        if mode != "none":
            if sandbox_available():
                chosen = "bwrap"
            elif mode == "bwrap":
                raise RuntimeError("the bwrap sandbox was asked for, but bubblewrap cannot run")
        hidden = tuple(Path(p).resolve() for p in hidden_paths)
        return cls(mode=chosen, limits=limits or Limits(), hidden_paths=hidden)

    def command(self, runtime: str = "python") -> WorkerCommand:
        """A fresh temp dir and the command line, environment and limits of one worker."""
        tempdir = Path(tempfile.mkdtemp(prefix="segue-fn-")).resolve()
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(source_root()),
            "HOME": str(tempdir),
        }
        worker = [sys.executable, "-B", "-s", "-P", "-X", "utf8"]
        worker += ["-m", "segue.functions.worker", "--runtime", runtime]
        worker += ["--memory-mb", str(self.limits.memory_mb), "--cpu-s", str(self.limits.cpu_s)]
        argv = self._bwrap(tempdir, env) + worker if self.mode == "bwrap" else worker
        return WorkerCommand(
            argv=argv,
            env=env,
            cwd=tempdir,
            tempdir=tempdir,
            preexec_fn=_limiter(self.limits, runtime),
        )

    def _bwrap(self, tempdir: Path, env: dict[str, str]) -> list[str]:
        binary = shutil.which("bwrap") or "bwrap"
        args = [binary, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        if _tmpfs_size_supported():
            args += ["--size", str(self.limits.tmp_mb * MiB)]
        args += ["--tmpfs", "/tmp"]
        hidden = [p for p in self.hidden_paths if p != Path("/") and p.exists()]
        args += _hide(hidden)
        # What the worker itself needs, if a hidden path (or /tmp) happens to cover it;
        # then hide again whatever that brought back.
        needed = {
            source_root(),
            Path(sys.prefix).resolve(),
            Path(sys.base_prefix).resolve(),
            Path(sys.executable).resolve().parent,
        }
        covered = [Path("/tmp"), *hidden]
        exposed = [p for p in sorted(needed) if any(_inside(p, c) for c in covered)]
        for path in exposed:
            args += ["--ro-bind", str(path), str(path)]
        args += _hide([p for p in hidden if any(_inside(p, e) for e in exposed)])
        for path in hidden:  # read-only last: the binds above may need mount points in it
            if path.is_dir():
                args += ["--remount-ro", str(path)]
        args += ["--bind", str(tempdir), str(tempdir), "--chdir", str(tempdir)]
        args += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        args += ["--unshare-cgroup-try", "--cap-drop", "ALL", "--die-with-parent"]
        args += ["--new-session", "--clearenv"]
        for name, value in env.items():
            args += ["--setenv", name, value]
        return [*args, "--"]


def _hide(paths: Iterable[Path]) -> list[str]:
    """An empty tmpfs on each directory, an unreadable node on each file."""
    args: list[str] = []
    for path in paths:
        if path.is_dir():
            args += ["--tmpfs", str(path)]
        else:
            args += ["--ro-bind", "/dev/null", str(path)]
    return args


def _within(which: int, soft: int, hard: int) -> tuple[int, int]:
    """(soft, hard) lowered to the current hard limit, which a child cannot raise."""
    infinity = resource.RLIM_INFINITY
    current = resource.getrlimit(which)[1]
    if current != infinity:
        hard = current if hard == infinity else min(hard, current)
        soft = hard if soft == infinity else min(soft, hard)
    return soft, hard


def _limiter(limits: Limits, runtime: str) -> Callable[[], None]:
    """The preexec_fn: only setrlimit calls (nothing that imports or locks after fork)."""
    infinity = resource.RLIM_INFINITY
    memory = limits.memory_mb * MiB
    cpu = max(1, limits.cpu_s) if limits.cpu_s > 0 else infinity
    wanted = [
        (resource.RLIMIT_CPU, cpu, infinity),  # the worker renews the soft limit per call
        (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
        (resource.RLIMIT_FSIZE, limits.file_mb * MiB, limits.file_mb * MiB),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    if runtime == "javascript":  # V8 reserves terabytes of address space: limit data
        data = memory + JS_DATA_OVERHEAD_MB * MiB
        wanted.append((resource.RLIMIT_DATA, data, data))
    else:
        wanted.append((resource.RLIMIT_AS, memory, memory))
    settings = [(which, _within(which, soft, hard)) for which, soft, hard in wanted]
    setrlimit = resource.setrlimit

    def apply() -> None:
        for which, values in settings:
            setrlimit(which, values)

    return apply


# -- a running worker ----------------------------------------------------------------------
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
        self.alive, self.retired = True, False
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
            shutil.rmtree(command.tempdir, ignore_errors=True)
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
                    text = line.decode("utf-8", "replace")[:2000]
                    log.warning("function worker %s: %s", self.process.pid, text)
                elif lines == MAX_STDERR_LINES + 1:
                    log.warning("function worker %s: (more output dropped)", self.process.pid)

    def stderr_text(self) -> str:
        return b"".join(self.stderr_tail).decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL the process group: bwrap (whose namespace dies with it) or the worker.

        Not ``process.kill()``: Popen polls first, and reaping the child there races
        asyncio's watcher, which then reports an exit status of 255.
        """
        if self.process.returncode is not None:
            return
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(self.process.pid, signal.SIGKILL)

    async def end(self, grace_s: float = 2.0) -> None:
        """Kill it, wait for it (and its stderr), remove its temp dir."""
        self.kill()
        if self.process.stdin is not None:
            self.process.stdin.close()  # else asyncio warns when the transport is collected
        await self.finished(grace_s)
        shutil.rmtree(self.command.tempdir, ignore_errors=True)

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
        if any(hint in tail for hint in _MEMORY_HINTS):
            message = "the function went over its memory limit and its worker died"
            return CallResult(ok=False, error=CallError.MEMORY, message=message)
        if number == signal.SIGXCPU:
            message = f"the function used more than {self.sandbox.limits.cpu_s} s of CPU time"
        elif number is not None and number in signal.valid_signals():
            message = f"the function's worker was killed by {signal.Signals(number).name}"
        else:
            message = f"the function's worker exited (status {code})"
        return CallResult(ok=False, error=CallError.CRASH, message=message)
