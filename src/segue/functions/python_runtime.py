"""Python functions: a module of ``on_<type>(event, settings)`` handlers, run in-process.

This is the ``bridge.Runtime`` a sandbox worker uses for Python code; it holds no
sandboxing itself (the worker process is the sandbox), which is also why it can run
in the test process. Each version's module is compiled and executed once and kept warm.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import linecache
import os
import sys
import time
import traceback
import types
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import orjson

from segue.functions.batch import batch_results
from segue.functions.bridge import FetchBridge
from segue.functions.errors import (
    EventNotSupported,
    InvalidEventPayload,
    RetryError,
    ValidationError,
)
from segue.functions.fetching import current_bridge
from segue.functions.logs import LogBuffer, capture
from segue.functions.result import CallError, CallResult

HANDLER_TYPES = ("identify", "track", "page", "screen", "group", "alias", "delete", "batch")
DEFAULT_MAX_MODULES = 64

_DECLARED: dict[type[BaseException], CallError] = {
    EventNotSupported: CallError.EVENT_NOT_SUPPORTED,
    InvalidEventPayload: CallError.INVALID_EVENT_PAYLOAD,
    ValidationError: CallError.VALIDATION_ERROR,
    RetryError: CallError.RETRY,
}
_INTERNAL_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_module_ids = itertools.count(1)


class PythonSourceError(ValueError):
    """The function's code does not load (syntax error or an exception at import)."""


@dataclass(slots=True)
class _Loaded:
    source: str
    module: types.ModuleType


class PythonRuntime:
    """``bridge.Runtime`` for Python: calls may overlap on one event loop (logs stay apart)."""

    def __init__(self, *, max_modules: int = DEFAULT_MAX_MODULES) -> None:
        self.max_modules = max_modules
        self._modules: OrderedDict[str, _Loaded] = OrderedDict()

    # -- loading ---------------------------------------------------------------------
    def _module(self, source: str, version: str, filename: str) -> types.ModuleType:
        """The module for ``version``, compiled and executed on first use (LRU cached)."""
        loaded = self._modules.get(version)
        if loaded is not None and (loaded.source is source or loaded.source == source):
            self._modules.move_to_end(version)
            return loaded.module
        name = f"segue_function_{next(_module_ids)}"
        module = types.ModuleType(name)
        module.__file__ = filename
        _remember_source(filename, source)
        code = compile(source, filename, "exec", dont_inherit=True)
        sys.modules[name] = module  # dataclasses, pickle… look their module up there
        try:
            exec(code, module.__dict__)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        if loaded is not None:
            sys.modules.pop(loaded.module.__name__, None)
        self._modules[version] = _Loaded(source, module)
        self._modules.move_to_end(version)
        while len(self._modules) > self.max_modules:
            _, evicted = self._modules.popitem(last=False)
            sys.modules.pop(evicted.module.__name__, None)
        return module

    def handlers(self, source: str, version: str, filename: str) -> set[str]:
        """The types the module handles; raises PythonSourceError if it does not load."""
        try:
            module = self._module(source, version, filename)
        except Exception as exc:
            raise PythonSourceError(_describe(exc)) from None
        return {kind for kind in HANDLER_TYPES if callable(getattr(module, f"on_{kind}", None))}

    # -- calling ---------------------------------------------------------------------
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
        """Run ``on_<handler>(payload, settings)``; user errors become the result's error."""
        started = time.perf_counter()
        buffer = LogBuffer()
        tail = ""
        token = current_bridge.set(fetch)
        try:
            with capture(buffer):
                try:
                    result = await self._run(source, version, filename, handler, payload, settings)
                except asyncio.CancelledError:
                    raise
                except BaseException as exc:  # SystemExit too: user code must not end the worker
                    result, tail = _failure(exc, source, filename)
        finally:
            current_bridge.reset(token)
        elapsed = (time.perf_counter() - started) * 1000
        return replace(result, logs=buffer.finish(tail), duration_ms=elapsed)

    async def _run(
        self,
        source: str,
        version: str,
        filename: str,
        handler: str,
        payload: Any,
        settings: dict[str, Any],
    ) -> CallResult:
        module = self._module(source, version, filename)
        function = getattr(module, f"on_{handler}", None) if handler in HANDLER_TYPES else None
        if not callable(function):
            raise EventNotSupported(f"no on_{handler} handler")
        value = function(payload, settings)
        if inspect.isawaitable(value):
            value = await value
        value = jsonable(value)
        if handler == "batch":
            count = len(payload) if isinstance(payload, list) else 0
            return CallResult(ok=True, value=value, batch_results=batch_results(value, count))
        return CallResult(ok=True, value=value)


# -- outcomes ---------------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (datetimes become ISO strings…), or its str()."""
    try:
        return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return str(value)


def _failure(exc: BaseException, source: str, filename: str) -> tuple[CallResult, str]:
    """The result for an exception, and the log tail (a traceback for unexpected errors)."""
    for cls, kind in _DECLARED.items():
        if isinstance(exc, cls):
            return CallResult(ok=False, error=kind, message=str(exc) or cls.__name__), ""
    _remember_source(filename, source)
    tail = user_traceback(exc, filename)
    if isinstance(exc, MemoryError):
        message = f"{_describe(exc)} (the function went over its memory limit)"
        return CallResult(ok=False, error=CallError.MEMORY, message=message), tail
    return CallResult(ok=False, error=CallError.ERROR, message=_describe(exc)), tail


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def user_traceback(exc: BaseException, filename: str) -> str:
    """The traceback from the first frame of the user's file on, without segue's frames."""
    frames = traceback.extract_tb(exc.__traceback__)
    start = next((i for i, frame in enumerate(frames) if frame.filename == filename), 0)
    kept = [frame for frame in frames[start:] if not frame.filename.startswith(_INTERNAL_DIR)]
    lines = traceback.format_list(kept)
    if lines:
        lines.insert(0, "Traceback (most recent call last):\n")
    lines.extend(traceback.format_exception_only(type(exc), exc))
    exc.__traceback__ = None  # free the frames (a MemoryError's may hold a lot)
    return "".join(lines)


def _remember_source(filename: str, source: str) -> None:
    """Let tracebacks quote lines of code that exists only as a string."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
