"""Group commit: one thread owns SQLite's write connection.

Requests from the event loop submit small jobs; the thread drains everything that
is queued, runs it in one transaction and commits once. Jobs almost never fail, so
they run without savepoints; when one does fail, the transaction is rolled back and
the group is run again with a savepoint per job, so one bad job cannot spoil the
others (jobs are functions of the connection: running one again is safe).
Callers are answered only after the commit, so an acknowledged write is durable,
and many concurrent requests share the cost of one fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future as ThreadFuture
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], T]
CommitObserver = Callable[[float, int], None]
"""Called from the writer thread with (seconds spent committing, jobs in the batch)."""


@dataclass(slots=True)
class _Pending(Generic[T]):
    fn: Job[T]
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[T] | ThreadFuture[T]


_STOP = object()


class GroupCommitWriter:
    """Runs write jobs on a dedicated thread, committing them in groups."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        max_jobs_per_commit: int = 2048,
        on_commit: CommitObserver | None = None,
    ) -> None:
        self._connect = connect
        self._max_jobs = max_jobs_per_commit
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="segue-sqlite-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            raise self._start_error

    def stop(self) -> None:
        """Finish every job already submitted, then close the connection."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None

    def submit(self, fn: Job[T]) -> asyncio.Future[T]:
        """Queue ``fn`` from an event loop; the future resolves after the commit."""
        if self._thread is None:
            raise RuntimeError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Pending(fn, loop, future))
        return future

    def call(self, fn: Job[T]) -> T:
        """Run ``fn`` from a plain thread and wait for its commit."""
        if self._thread is None:
            raise RuntimeError("the store is closed")
        future: ThreadFuture[T] = ThreadFuture()
        self._queue.put(_Pending(fn, None, future))
        return future.result()

    # -- the thread --------------------------------------------------------
    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # reported to start()
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            stopping = False
            while not stopping:
                batch, stopping = self._next_batch()
                if batch:
                    self._commit(conn, batch)
        finally:
            conn.close()

    def _next_batch(self) -> tuple[list[_Pending[Any]], bool]:
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch = [first]
        while len(batch) < self._max_jobs:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _commit(self, conn: sqlite3.Connection, batch: list[_Pending[Any]]) -> None:
        started = time.perf_counter()
        outcomes: list[tuple[_Pending[Any], Any, BaseException | None]]
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                outcomes = [(job, job.fn(conn), None) for job in batch]
            except Exception:  # one job failed: isolate it, keep the others' writes
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                outcomes = [_run_in_savepoint(conn, job) for job in batch]
            conn.execute("COMMIT")
        except BaseException as exc:  # the commit itself failed: nobody's write landed
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(job, None, exc) for job in batch]
        if self._on_commit is not None:
            self._on_commit(time.perf_counter() - started, len(batch))
        _deliver(outcomes)


def _run_in_savepoint(
    conn: sqlite3.Connection, job: _Pending[Any]
) -> tuple[_Pending[Any], Any, BaseException | None]:
    conn.execute("SAVEPOINT job")
    try:
        result = job.fn(conn)
    except Exception as exc:
        conn.execute("ROLLBACK TO job")
        conn.execute("RELEASE job")
        return job, None, exc
    conn.execute("RELEASE job")
    return job, result, None


def _deliver(outcomes: list[tuple[_Pending[Any], Any, BaseException | None]]) -> None:
    """Resolve futures: one wake-up per event loop, not one per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, BaseException | None]]] = {}
    for job, result, error in outcomes:
        if job.loop is None:
            thread_future: ThreadFuture[Any] = job.future  # type: ignore[assignment]
            if error is None:
                thread_future.set_result(result)
            else:
                thread_future.set_exception(error)
        else:
            by_loop.setdefault(job.loop, []).append((job.future, result, error))
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_resolve_all, items)


def _resolve_all(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in items:
        if future.done():  # the caller went away (cancelled)
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
