"""Per-call log capture for Python functions: print, sys.stdout/stderr and ``logging``.

Everything a call writes goes to that call's ``LogBuffer``, found through a context
variable rather than by swapping ``sys.stdout`` per call: tasks the function starts
inherit the context, and two calls running in one process (the in-process runtime, as
in unit tests and benchmarks) never see each other's output.
"""

from __future__ import annotations

import contextvars
import io
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from segue.functions.bridge import MAX_LOG_BYTES

TRUNCATED = "\n…truncated"
_current: contextvars.ContextVar[LogBuffer | None] = contextvars.ContextVar(
    "segue_function_logs", default=None
)


class LogBuffer:
    """Text capped at ``limit`` UTF-8 bytes (marker included); the excess is dropped."""

    def __init__(self, limit: int = MAX_LOG_BYTES) -> None:
        self.limit = limit
        self._parts: list[str] = []
        self._size = 0
        self.truncated = False

    def write(self, text: str) -> int:
        if self.truncated or not text:
            return len(text)
        data = text.encode("utf-8", "replace")
        room = self.limit - self._size
        if len(data) <= room:
            self._parts.append(text)
            self._size += len(data)
        else:
            self._parts.append(data[:room].decode("utf-8", "ignore"))
            self._size = self.limit
            self.truncated = True
        return len(text)

    def finish(self, tail: str = "") -> str:
        """The captured text, then ``tail`` (a traceback), together within the cap."""
        text = "".join(self._parts)
        marker = TRUNCATED if self.truncated else ""
        if tail and text and not text.endswith("\n"):
            tail = "\n" + tail
        total = len(text.encode("utf-8")) + len(marker.encode()) + len(tail.encode("utf-8"))
        if total <= self.limit:
            return text + marker + tail
        marker = TRUNCATED + ("\n" if tail else "")
        tail_bytes = tail.lstrip("\n").encode("utf-8")[-(self.limit // 2) :]
        keep = self.limit - len(marker.encode()) - len(tail_bytes)
        head = text.encode("utf-8")[: max(0, keep)].decode("utf-8", "ignore")
        return head + marker + tail_bytes.decode("utf-8", "ignore")


class _Router(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr: writes go to the current call's buffer."""

    def __init__(self, original: TextIO) -> None:
        self.original = original

    def write(self, text: str) -> int:
        buffer = _current.get()
        if buffer is None:
            return self.original.write(text)
        return buffer.write(text)

    def flush(self) -> None:
        if _current.get() is None:
            self.original.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


class _CaptureHandler(logging.Handler):
    """A root-logger handler that writes records only while a call is capturing."""

    def emit(self, record: logging.LogRecord) -> None:
        buffer = _current.get()
        if buffer is None:
            return
        try:
            buffer.write(self.format(record) + "\n")
        except Exception:  # a record that cannot be formatted must not fail the call
            self.handleError(record)


_lock = threading.Lock()
_active = 0
_handler = _CaptureHandler()
_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))


def _install() -> None:
    global _active
    with _lock:
        _active += 1
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout)
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr)
        if _handler not in logging.root.handlers:
            logging.root.addHandler(_handler)


def _uninstall() -> None:
    global _active
    with _lock:
        _active -= 1
        if _active:
            return
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if isinstance(stream, _Router):
                setattr(sys, name, stream.original)


@contextmanager
def capture(buffer: LogBuffer) -> Iterator[LogBuffer]:
    """Send this context's prints and log records to ``buffer`` until the block ends."""
    _install()
    token = _current.set(buffer)
    try:
        yield buffer
    finally:
        _current.reset(token)
        _uninstall()
