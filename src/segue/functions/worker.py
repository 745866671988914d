"""A function worker: ``python -m segue.functions.worker``, started by ``pool.FunctionPool``.

It speaks frames (``framing``) on its stdin/stdout with segue's process:

    parent → worker  {"op": "call", "id", "runtime", "version", "filename", "handler",
                      "payload", "settings", "timeout_s", "source"?}
                     {"op": "handlers", "id", "runtime", "version", "filename", "source"?}
                     {"op": "fetch_result", "id", "reply"} | {"op": "fetch_result", "id", "error"}
    worker → parent  {"op": "ready", "pid"}
                     {"op": "result", "id", ...CallResult.as_json(), "recycle"}
                     {"op": "handlers", "id", "handlers": [...]} | {..., "error"}
                     {"op": "need_source", "id"}   (the source of that version was not sent)
                     {"op": "fetch", "id", "request": FetchRequest}

A worker serves one function scope (a destination, one Send Test Event…) and version
only: the parent never sends it another's calls, so nothing a function changes in
this process reaches anyone else. Sources are sent once per worker and version, then
cached here. The real stdout is
kept only for frames: fd 1 is pointed at stderr, and fd 0 at /dev/null, so nothing the
function (or a C library) writes or reads can corrupt the protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import resource
import sys
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from segue.functions import framing
from segue.functions.bridge import FetchFailed, FetchReply, FetchRequest, Runtime
from segue.functions.python_runtime import PythonRuntime
from segue.functions.result import CallError, CallResult

MAX_SOURCES = 256
# Shares of the call's timeout: the JS runtime stops V8 first, then the worker cancels an
# awaiting handler; only a handler that never yields is killed by the parent at 100 %.
JS_STOP_SHARE = 0.8
CANCEL_SHARE = 0.9


class Worker:
    """Serves frames until the parent closes stdin."""

    def __init__(self, in_fd: int, out_fd: int, *, memory_mb: int, cpu_s: int) -> None:
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.memory_mb = memory_mb
        self.cpu_s = cpu_s
        self.runtimes: dict[str, Runtime | str] = {}  # a runtime, or why it is unavailable
        self.sources: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.fetches: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.fetch_ids = itertools.count(1)
        self.tasks: set[asyncio.Task[None]] = set()

    def send(self, message: dict[str, Any]) -> None:
        framing.write_fd(self.out_fd, framing.encode(message))

    def runtime(self, name: str) -> Runtime | str:
        """The runtime for a language, made on first use; a str says why there is none."""
        if name not in self.runtimes:
            self.runtimes[name] = self._make_runtime(name)
        return self.runtimes[name]

    def _make_runtime(self, name: str) -> Runtime | str:
        if name == "python":
            return PythonRuntime()
        if name == "javascript":
            try:
                from segue.functions.js_runtime import JSRuntime
            except Exception as exc:  # mini-racer missing or broken on this machine
                return f"JavaScript functions are unavailable here ({type(exc).__name__}: {exc})"
            return JSRuntime(memory_limit=self.memory_mb * 1024 * 1024)
        return f"unknown function runtime {name!r}"

    # -- serving ---------------------------------------------------------------------
    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(self.in_fd, "rb", buffering=0)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        self.send({"op": "ready", "pid": os.getpid()})
        while True:
            message = await framing.read_frame(reader)
            if message is None:
                break
            op = message.get("op")
            if op == "fetch_result":
                future = self.fetches.get(message.get("id", 0))
                if future is not None and not future.done():
                    future.set_result(message)
            elif op in ("call", "handlers"):
                task = loop.create_task(self._serve_one(message))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        for task in list(self.tasks):
            task.cancel()

    def _source(self, message: dict[str, Any]) -> str | None:
        key = (str(message["runtime"]), str(message["version"]))
        source = message.get("source")
        if isinstance(source, str):
            self.sources[key] = source
            self.sources.move_to_end(key)
            while len(self.sources) > MAX_SOURCES:
                self.sources.popitem(last=False)
            return source
        cached = self.sources.get(key)
        if cached is not None:
            self.sources.move_to_end(key)
        return cached

    async def _serve_one(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        try:
            source = self._source(message)
            if source is None:
                self.send({"op": "need_source", "id": request_id})
                return
            if message["op"] == "handlers":
                self.send({"op": "handlers", "id": request_id, **self._handlers(message, source)})
                return
            result = await self._call(message, source)
        except Exception as exc:  # a malformed request or a runtime bug, not user code
            result = CallResult(ok=False, error=CallError.CRASH, message=f"worker error: {exc!r}")
        frame = {"op": "result", "id": request_id, **result.as_json()}
        # After a MemoryError a Python heap may be left fragmented or half-built: start
        # afresh. (JSRuntime discards the isolate itself.)
        frame["recycle"] = result.error == CallError.MEMORY and message.get("runtime") == "python"
        try:
            self.send(frame)
        except framing.FrameTooLarge:
            too_big = CallResult(
                ok=False,
                error=CallError.ERROR,
                message="the function's return value is too large",
                logs=result.logs,
                duration_ms=result.duration_ms,
            )
            self.send({"op": "result", "id": request_id, **too_big.as_json()})

    def _handlers(self, message: dict[str, Any], source: str) -> dict[str, Any]:
        runtime = self.runtime(str(message["runtime"]))
        if isinstance(runtime, str):
            return {"error": runtime}
        try:
            found = runtime.handlers(source, str(message["version"]), str(message["filename"]))
        except Exception as exc:
            return {"error": str(exc) or type(exc).__name__}
        return {"handlers": sorted(found)}

    async def _call(self, message: dict[str, Any], source: str) -> CallResult:
        runtime = self.runtime(str(message["runtime"]))
        if isinstance(runtime, str):
            return CallResult(ok=False, error=CallError.ERROR, message=runtime)
        timeout_s = float(message.get("timeout_s") or 5.0)
        soft = max(0.05, timeout_s * CANCEL_SHARE)
        if hasattr(runtime, "timeout"):  # JSRuntime stops V8 itself, keeping the isolate
            setattr(runtime, "timeout", max(0.05, timeout_s * JS_STOP_SHARE))  # noqa: B010
        self._renew_cpu_limit()
        call = runtime.call(
            source,
            str(message["version"]),
            str(message["filename"]),
            str(message["handler"]),
            message.get("payload"),
            message.get("settings") or {},
            self.fetch,
        )
        too_long = f"the function ran longer than {timeout_s:g} s"
        try:
            # An awaiting handler is cancelled here and the worker stays warm; a busy
            # one is killed by the parent at timeout_s.
            async with asyncio.timeout(soft):
                result = await call
        except TimeoutError:
            return CallResult(
                ok=False, error=CallError.TIMEOUT, message=too_long, duration_ms=soft * 1000
            )
        if result.error == CallError.TIMEOUT:  # one message whoever noticed it
            result = replace(result, message=too_long)
        return result

    def _renew_cpu_limit(self) -> None:
        """Give each call ``cpu_s`` seconds of CPU from now (RLIMIT_CPU counts a lifetime)."""
        if self.cpu_s <= 0:
            return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = int(usage.ru_utime + usage.ru_stime) + 1 + self.cpu_s
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))

    async def fetch(self, request: FetchRequest) -> FetchReply:
        """The FetchBridge of every call: the parent makes the request and answers."""
        fetch_id = next(self.fetch_ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.fetches[fetch_id] = future
        try:
            try:
                self.send({"op": "fetch", "id": fetch_id, "request": request})
            except framing.FrameTooLarge:
                raise FetchFailed(
                    f"request to {request['url']} failed, reason: too large"
                ) from None
            answer = await future
        finally:
            self.fetches.pop(fetch_id, None)
        if answer.get("error") is not None or not isinstance(answer.get("reply"), dict):
            raise FetchFailed(str(answer.get("error") or "no reply"))
        reply: FetchReply = answer["reply"]
        return reply


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m segue.functions.worker")
    parser.add_argument("--runtime", default="python", help="the runtime to load at start")
    parser.add_argument("--memory-mb", type=int, default=256)
    parser.add_argument("--cpu-s", type=int, default=30)
    args = parser.parse_args(argv)

    out_fd, in_fd = os.dup(1), os.dup(0)
    os.dup2(2, 1)  # stray writes to stdout (C code, os.write(1)) land in stderr
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.environ.pop("PWD", None)  # bubblewrap's own; the environment holds only what segue set
    logging.root.setLevel(logging.DEBUG)  # what a function logs is captured per call

    worker = Worker(in_fd, out_fd, memory_mb=args.memory_mb, cpu_s=args.cpu_s)
    worker.runtime(args.runtime)  # import it now: the first call should be fast
    try:
        _run(worker.serve())
    except (BrokenPipeError, framing.FrameError) as exc:
        print(f"segue function worker: {exc}", file=sys.stderr)
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown: V8's can hang, and there is nothing to save


def _run(main: Coroutine[Any, Any, None]) -> None:
    """uvloop when available: it halves the per-call cost of the pipe round trip."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


if __name__ == "__main__":
    main()
