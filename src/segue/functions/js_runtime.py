"""Segment-style JavaScript functions on an embedded V8 (mini-racer).

One warm isolate per function version (a small LRU), each with a hard heap limit, the
prelude (``prelude.js``: fetch, Headers, URL, …) and the user's code evaluated once.

The host drives every call as a small pump: ``__segue.start`` runs the handler, then
``__segue.poll`` reports the outcome, the console lines and the queued fetches and
timers, which are run here and fed back with ``__segue.settle``. JavaScript only runs
inside ``eval_cancelable`` under one deadline, so a runaway script is terminated
(mini-racer cancels the task) and one stuck in a microtask is stopped by closing its
isolate — never by blocking the worker's event loop. (mini-racer's ``wrap_py_function``
resolves its promise with a blocking call, which a busy isolate would stall.) Data goes
in through ``__segue.inbox`` so the evaluated sources stay constant: V8 keeps every
distinct script it compiles, and a source per call grows the heap towards the limit.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson
from py_mini_racer import (
    JSEvalException,
    JSMappedObject,
    JSOOMException,
    JSTimeoutException,
    MiniRacer,
)

from segue.functions.batch import batch_results
from segue.functions.bridge import (
    MAX_LOG_BYTES,
    FetchBridge,
    FetchFailed,
    FetchRequest,
    Runtime,
)
from segue.functions.result import CallError, CallResult

HANDLER_TYPES = ("identify", "track", "page", "screen", "group", "alias", "delete", "batch")
DEFAULT_TIMEOUT = 4.5  # seconds; keep it below the worker parent's wall clock (5 s)
DEFAULT_MEMORY_LIMIT = 128 * 1024 * 1024
DEFAULT_MAX_ISOLATES = 16

_KINDS = {e.value: e for e in CallError}
_PRELUDE: str | None = None


def prelude() -> str:
    global _PRELUDE
    if _PRELUDE is None:
        text = resources.files("segue.functions").joinpath("prelude.js").read_text("utf-8")
        _PRELUDE = f"{text}\n;__segue.maxLog = {MAX_LOG_BYTES};\n"
    return _PRELUDE


class JSSourceError(ValueError):
    """The function's code does not load (syntax error, top-level exception or timeout)."""


def _lit(value: Any) -> str:
    """A JavaScript literal for a JSON-able value (JSON text is valid JS)."""
    return orjson.dumps(value, default=str).decode()


def _load_code(source: str, filename: str) -> str:
    name = "".join(c for c in filename if c.isprintable() and not c.isspace()) or "function.js"
    return f"__segue.load({_lit(source)},{_lit(name)})"


def cap_logs(lines: list[str]) -> str:
    data = "\n".join(lines).encode("utf-8", "replace")
    if len(data) <= MAX_LOG_BYTES:
        return data.decode("utf-8")
    return data[:MAX_LOG_BYTES].decode("utf-8", "ignore") + "\n… (log truncated)"


@dataclass(slots=True)
class _Isolate:
    mr: MiniRacer
    loop: asyncio.AbstractEventLoop
    handlers: frozenset[str]
    inbox: JSMappedObject  # data goes in here: varying script sources would pile up in V8


class JSRuntime:
    """``bridge.Runtime`` for JavaScript. Calls must not overlap (one at a time per worker)."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        max_isolates: int = DEFAULT_MAX_ISOLATES,
    ) -> None:
        self.timeout = timeout
        self.memory_limit = memory_limit
        self.max_isolates = max_isolates
        self._isolates: OrderedDict[str, _Isolate] = OrderedDict()
        self._handlers: dict[str, frozenset[str]] = {}
        self._load_errors: dict[str, str] = {}

    # -- introspection -------------------------------------------------------------
    def handlers(self, source: str, version: str, filename: str) -> set[str]:
        """The handler types the code defines; raises JSSourceError if it does not load."""
        if version in self._load_errors:
            raise JSSourceError(self._load_errors[version])
        if version not in self._handlers:
            # A private isolate on a private thread: this may be called from inside the
            # worker's event loop, where mini-racer's synchronous timeouts can't work.
            with ThreadPoolExecutor(1, thread_name_prefix="segue-js") as pool:
                found = pool.submit(self._introspect, source, filename).result()
            if isinstance(found, str):
                self._load_errors[version] = found
                raise JSSourceError(found)
            self._handlers[version] = found
        return set(self._handlers[version])

    def _introspect(self, source: str, filename: str) -> frozenset[str] | str:
        with MiniRacer() as mr:
            mr.set_hard_memory_limit(self.memory_limit)
            try:
                mr.eval(prelude(), timeout_sec=self.timeout)
                loaded = mr.eval(_load_code(source, filename), timeout_sec=self.timeout)
            except JSTimeoutException:
                return f"the code's top level did not finish within {self.timeout:g} s"
            except JSEvalException as exc:
                return f"the code could not be loaded: {exc}"
            data = orjson.loads(str(loaded))
            if not data["ok"]:
                return str(data["message"])
            return frozenset(data["handlers"])

    # -- calls ---------------------------------------------------------------------
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
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        deadline = loop.time() + self.timeout
        logs: list[str] = []

        def result(
            ok: bool,
            error: CallError | None = None,
            message: str | None = None,
            value: Any = None,
            batch: list[dict[str, Any]] | None = None,
        ) -> CallResult:
            elapsed = (time.perf_counter() - started) * 1e3
            text = cap_logs(logs)
            return CallResult(ok, value, error, message, text, elapsed, batch)

        if handler not in HANDLER_TYPES:
            return result(False, CallError.EVENT_NOT_SUPPORTED, f"no handler for {handler!r}")
        if version in self._load_errors:
            return result(False, CallError.ERROR, self._load_errors[version])
        iso: _Isolate | None = None
        try:
            async with asyncio.timeout_at(deadline):
                iso = await self._isolate(source, version, filename, loop)
                if iso is None:
                    return result(False, CallError.ERROR, self._load_errors[version])
                outcome = await self._run(iso, handler, payload, settings, fetch, logs, deadline)
        except TimeoutError:
            self._discard(version)
            return result(False, CallError.TIMEOUT, f"timed out after {self.timeout:g} s")
        except asyncio.CancelledError:  # the worker gave up on this call mid-step
            self._discard(version)
            raise
        except JSEvalException as exc:
            memory = isinstance(exc, JSOOMException) or (
                iso is not None and iso.mr.was_hard_memory_limit_reached()
            )
            self._discard(version)
            if memory:
                return result(False, CallError.MEMORY, self._memory_message())
            return result(False, CallError.ERROR, f"JavaScript engine error: {exc}")
        assert iso is not None
        if iso.mr.was_hard_memory_limit_reached():
            self._discard(version)
            if not outcome.get("ok"):
                return result(False, CallError.MEMORY, self._memory_message())
        if outcome.get("ok"):
            value = outcome.get("value")
            return result(
                True, value=value, batch=batch_results(value) if handler == "batch" else None
            )
        kind = _KINDS.get(str(outcome.get("kind")), CallError.ERROR)
        return result(False, kind, str(outcome.get("message", "")))

    def _memory_message(self) -> str:
        return f"memory limit reached ({self.memory_limit // (1024 * 1024)} MB)"

    async def _isolate(
        self, source: str, version: str, filename: str, loop: asyncio.AbstractEventLoop
    ) -> _Isolate | None:
        iso = self._isolates.get(version)
        if iso is not None and iso.loop is loop:
            self._isolates.move_to_end(version)
            return iso
        if iso is not None:  # made under another event loop: mini-racer is bound to it
            self._discard(version)
        mr = MiniRacer()  # bound to the running loop
        try:
            mr.set_hard_memory_limit(self.memory_limit)
            await mr.eval_cancelable(prelude())
            inbox = mr.eval("__segue.inbox")
            assert isinstance(inbox, JSMappedObject)
            data = orjson.loads(str(await mr.eval_cancelable(_load_code(source, filename))))
            await mr.eval_cancelable("0")  # microtasks queued by the top level have run
        except BaseException:
            mr.close()
            raise
        if not data["ok"]:
            mr.close()
            self._load_errors[version] = str(data["message"])
            return None
        iso = _Isolate(mr, loop, frozenset(data["handlers"]), inbox)
        self._handlers[version] = iso.handlers
        self._isolates[version] = iso
        while len(self._isolates) > self.max_isolates:
            self._discard(next(iter(self._isolates)))
        return iso

    async def _run(
        self,
        iso: _Isolate,
        handler: str,
        payload: Any,
        settings: dict[str, Any],
        fetch: FetchBridge,
        logs: list[str],
        deadline: float,
    ) -> dict[str, Any]:
        # Between our evaluations the isolate is idle (its timers and fetches are ours, and
        # every step ends with a poll, after the step's microtasks), so the synchronous
        # inbox writes can't block on it; a stuck step is cut off by the deadline.
        async def step(code: str) -> dict[str, Any]:
            reply: dict[str, Any] = orjson.loads(str(await iso.mr.eval_cancelable(code)))
            return reply

        iso.inbox["a"] = orjson.dumps([handler, payload, settings], default=str).decode()
        state = await step("__segue.start()")
        tasks: dict[asyncio.Task[dict[str, Any] | None], int] = {}
        polled = False  # the state comes from a poll, so the last step's microtasks have run
        try:
            while True:
                logs.extend(state["l"])
                if state["o"] is not None and polled:
                    outcome: dict[str, Any] = state["o"]
                    return outcome
                if state["o"] is None:
                    for task, ident in tasks.items():
                        if ident in state["c"]:
                            task.cancel()
                    for item in state["r"]:
                        work: Coroutine[Any, Any, dict[str, Any] | None]
                        if item["k"] == "timer":
                            work = asyncio.sleep(item["ms"] / 1000, None)
                        else:
                            work = self._fetch(fetch, item["req"], deadline)
                        tasks[asyncio.ensure_future(work)] = int(item["id"])
                if tasks or not polled:
                    if tasks:
                        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                        replies = [
                            [tasks.pop(t), None if t.cancelled() else t.result()] for t in done
                        ]
                        if replies:
                            iso.inbox["a"] = orjson.dumps(replies).decode()
                            await iso.mr.eval_cancelable("__segue.settle()")
                    state, polled = await step("__segue.poll()"), True
                    continue
                if iso.mr.was_hard_memory_limit_reached():
                    raise JSOOMException("memory limit reached")
                return {
                    "ok": False,
                    "kind": "Error",
                    "message": "the handler's promise never settled",
                }
        finally:
            for task in tasks:
                task.cancel()

    @staticmethod
    async def _fetch(
        fetch: FetchBridge, req: dict[str, Any], deadline: float
    ) -> dict[str, Any] | None:
        remaining = max(0.001, deadline - asyncio.get_running_loop().time())
        timeout = req.get("timeout")
        request: FetchRequest = {
            "url": str(req["url"]),
            "method": str(req["method"]),
            "headers": [[str(n), str(v)] for n, v in req["headers"]],
            "body": None if req.get("body") is None else str(req["body"]),
            "timeout": min(float(timeout), remaining) if timeout else remaining,
        }
        try:
            reply = await fetch(request)
        except FetchFailed as exc:
            return {"error": str(exc)}
        except Exception as exc:  # a bridge bug must not escape into the pump
            return {"error": f"request to {request['url']} failed, reason: {exc}"}
        return {
            "url": reply.get("url") or request["url"],
            "status": reply["status"],
            "headers": reply.get("headers", []),
            "body": reply.get("body", ""),
        }

    # -- lifecycle -----------------------------------------------------------------
    def _discard(self, version: str) -> None:
        iso = self._isolates.pop(version, None)
        if iso is not None:
            iso.mr.close()  # also stops a script still running in it

    def close(self) -> None:
        for version in list(self._isolates):
            self._discard(version)

    def isolate_count(self) -> int:
        return len(self._isolates)


if TYPE_CHECKING:
    _runtime: Runtime = JSRuntime()
