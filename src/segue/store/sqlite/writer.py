"""Group commit: one thread owns SQLite's write connection.

Requests from the event loop submit small jobs; the thread drains everything that
is queued, runs it in one transaction and commits once. Jobs almost never fail, so
they run without savepoints; when one does fail, the transaction is rolled back and
the group is run again with a savepoint per job, so one bad job cannot spoil the
others (jobs are functions of the connection: running one again is safe).
Callers are answered only after the commit, so an acknowledged write is durable,
and many concurrent requests share the cost of one fsync.

When the store itself fails (a full disk, a read-only file, an I/O error: see
``errors``), no savepoint can help: the whole group fails with a
``StoreUnavailableError``, and exactly the jobs of that group are told so. The thread
and its connection carry on (the connection is reopened if it cannot even roll back),
so that writes succeed again as soon as the disk has room, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future as ThreadFuture
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from segue.store.availability import StoreUnavailableError
from segue.store.sqlite.errors import as_store_unavailable
from segue.timeutil import now_ms

log = logging.getLogger("segue.store")

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], T]
CommitObserver = Callable[[float, int], None]
"""Called from the writer thread with (seconds spent committing, jobs in the batch)."""


@dataclass(slots=True)
class _Pending(Generic[T]):
    fn: Job[T]
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[T] | ThreadFuture[T]


@dataclass(frozen=True, slots=True)
class WriteFailure:
    """The last group that failed because the store was unavailable."""

    error: StoreUnavailableError
    at: float  # the writer's clock()
    jobs: int


LOG_FAILURES_EVERY_S = 10.0
"""A full disk fails every group: say so at most this often (and when it is over)."""

Outcome = tuple[_Pending[Any], Any, BaseException | None]
"""A job, its result and its error (one of the two is None)."""

_STOP = object()


class GroupCommitWriter:
    """Runs write jobs on a dedicated thread, committing them in groups."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        max_jobs_per_commit: int = 2048,
        on_commit: CommitObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self.clock = clock  # for last_failure / last_success
        self._max_jobs = max_jobs_per_commit
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._conn: sqlite3.Connection | None = None
        # written by the writer thread only; read by the health probe
        self.last_failure: WriteFailure | None = None
        self.last_success: float | None = None  # clock() of the last commit
        self.failing_since_ms: int | None = None  # first failure since the last commit
        self._failed_groups = 0  # in a row, since the last commit
        self._failure_logged_at = -LOG_FAILURES_EVERY_S
        self._failure_logged = False  # and "writes again" not logged yet

    @property
    def running(self) -> bool:
        return self._thread is not None

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
            self._conn = self._connect()
        except BaseException as exc:  # reported to start()
            self._start_error = as_store_unavailable(exc) or exc
            self._ready.set()
            return
        self._ready.set()
        try:
            stopping = False
            while not stopping:
                batch, stopping = self._next_batch()
                if batch:
                    self._commit(batch)
        finally:
            if self._conn is not None:
                self._conn.close()

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

    def _commit(self, batch: list[_Pending[Any]]) -> None:
        started = time.perf_counter()
        outcomes: list[Outcome]
        try:
            outcomes = _run_group(self._connection(), batch)
        except BaseException as exc:  # the group as a whole failed: nobody's write landed
            self._abandon_transaction()
            unavailable = as_store_unavailable(exc)
            if unavailable is not None:
                self._failed(unavailable, len(batch))
            error = unavailable or exc
            outcomes = [(job, None, error) for job in batch]
        else:
            self._succeeded()
        if self._on_commit is not None:
            self._on_commit(time.perf_counter() - started, len(batch))
        _deliver(outcomes)

    def _connection(self) -> sqlite3.Connection:
        """The write connection, opened again if the last one had to be dropped."""
        if self._conn is None:
            self._conn = self._connect()
            log.info("the store's write connection was reopened")
        return self._conn

    def _abandon_transaction(self) -> None:
        """Roll back what is left of a failed group (SQLite may have done it already).

        A connection that cannot even roll back is closed; the next group opens a new one.
        """
        conn = self._conn
        if conn is None or not conn.in_transaction:
            return
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.warning("rolling back a failed group failed; reopening the connection")
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            self._conn = None

    def _failed(self, error: StoreUnavailableError, jobs: int) -> None:
        now = self.clock()
        if self._failed_groups == 0:
            self.failing_since_ms = now_ms()
        self._failed_groups += 1
        self.last_failure = WriteFailure(error, now, jobs)
        if now - self._failure_logged_at >= LOG_FAILURES_EVERY_S:
            self._failure_logged_at, self._failure_logged = now, True
            log.error("the store cannot write: %s; its writes fail until it can", error)

    def _succeeded(self) -> None:
        self.last_success = self.clock()
        if self._failed_groups:
            if self._failure_logged:
                self._failure_logged = False
                log.warning("the store writes again (%d failed commit(s))", self._failed_groups)
            self._failed_groups = 0
            self.failing_since_ms = None


def _run_group(conn: sqlite3.Connection, batch: list[_Pending[Any]]) -> list[Outcome]:
    """Run every job in one transaction and commit it; raises if the group fails."""
    outcomes: list[Outcome]
    conn.execute("BEGIN IMMEDIATE")
    try:
        outcomes = [(job, job.fn(conn), None) for job in batch]
    except Exception as exc:
        if as_store_unavailable(exc) is not None:
            raise  # the store failed, not the job: no savepoint can help
        # one job failed: isolate it, keep the others' writes
        if conn.in_transaction:  # (SQLite rolls back by itself after some errors)
            conn.execute("ROLLBACK")
        conn.execute("BEGIN IMMEDIATE")
        outcomes = [_run_in_savepoint(conn, job) for job in batch]
    conn.execute("COMMIT")
    return outcomes


def _run_in_savepoint(conn: sqlite3.Connection, job: _Pending[Any]) -> Outcome:
    conn.execute("SAVEPOINT job")
    try:
        result = job.fn(conn)
    except Exception as exc:
        if as_store_unavailable(exc) is not None:
            raise  # fails the whole group
        conn.execute("ROLLBACK TO job")
        conn.execute("RELEASE job")
        return job, None, exc
    conn.execute("RELEASE job")
    return job, result, None


def _deliver(outcomes: list[Outcome]) -> None:
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
