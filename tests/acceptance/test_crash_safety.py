"""Acceptance: an acknowledged event is never lost, whatever happens to the server.

A sender posts single ``/v1/track`` events and batches of 50 to ``/v1/batch`` and
records which requests got a 200. The server is SIGKILLed (several times, on the same
data directory) or SIGTERMed while requests are in flight; after a restart every
event of every acknowledged request must be stored. Events that were committed but
whose 200 never reached the sender are allowed (and counted).
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from tests.support.server import WRITE_KEY, SegueProcess

BATCH_SIZE = 50
SENDER_THREADS = 4
ACKS_BEFORE_KILL = 400  # acknowledged requests per round before the signal
KILL_ROUNDS = 5
SEND_DEADLINE_S = 20.0


@dataclass
class Sender:
    """Threads posting events with unique messageIds, remembering what was acknowledged."""

    url: str
    tag: str
    threads: int = SENDER_THREADS
    acked: list[list[str]] = field(default_factory=list)  # messageIds per 200 response
    attempted: set[str] = field(default_factory=set)
    failures: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    @property
    def acked_requests(self) -> int:
        with self._lock:
            return len(self.acked)

    def acked_ids(self) -> set[str]:
        with self._lock:
            return {mid for ids in self.acked for mid in ids}

    def start(self) -> Sender:
        for worker in range(self.threads):
            thread = threading.Thread(target=self._run, args=(worker,), daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=15)
            assert not thread.is_alive(), "a sender thread is stuck"

    def wait_for_acks(self, count: int, timeout: float = SEND_DEADLINE_S) -> None:
        deadline = time.monotonic() + timeout
        while self.acked_requests < count:
            assert time.monotonic() < deadline, (
                f"only {self.acked_requests} of {count} requests acknowledged in {timeout}s;"
                f" failures {dict(self.failures)}, unexpected {self.unexpected[:3]}"
            )
            assert not self.unexpected, self.unexpected[:3]
            time.sleep(0.01)

    def _run(self, worker: int) -> None:
        auth = httpx.BasicAuth(WRITE_KEY, "")
        seq = 0
        with httpx.Client(base_url=self.url, auth=auth, timeout=10.0) as client:
            while not self._stop.is_set():
                seq += 1
                prefix = f"{self.tag}-w{worker}-r{seq}"
                if seq % 4 == 0:
                    ids = [f"{prefix}-e{k}" for k in range(BATCH_SIZE)]
                    path = "/v1/batch"
                    body: dict[str, object] = {
                        "batch": [
                            {
                                "type": "track",
                                "userId": f"{self.tag}-user-{worker}",
                                "event": "Crash Test Batched",
                                "messageId": mid,
                                "properties": {"seq": seq, "k": k},
                            }
                            for k, mid in enumerate(ids)
                        ]
                    }
                else:
                    ids = [f"{prefix}-e0"]
                    path = "/v1/track"
                    body = {
                        "userId": f"{self.tag}-user-{worker}",
                        "event": "Crash Test",
                        "messageId": ids[0],
                        "properties": {"seq": seq},
                    }
                with self._lock:
                    self.attempted.update(ids)
                try:
                    response = client.post(path, json=body)
                except httpx.TransportError as exc:  # the server is gone: not acknowledged
                    with self._lock:
                        self.failures[type(exc).__name__] += 1
                    time.sleep(0.01)
                    continue
                with self._lock:
                    if response.status_code == 200:
                        self.acked.append(ids)
                    else:
                        self.failures[f"HTTP {response.status_code}"] += 1
                        self.unexpected.append(f"{response.status_code} {response.text[:200]}")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def servers() -> Iterator[list[SegueProcess]]:
    """Every server a test starts; whatever is still running is stopped at the end."""
    started: list[SegueProcess] = []
    try:
        yield started
    finally:
        for server in started:
            if server.process is not None and server.process.poll() is None:
                server.kill()


def _start(data_dir: Path, servers: list[SegueProcess]) -> SegueProcess:
    server = SegueProcess(data_dir).start()
    servers.append(server)
    return server


def _check_stored(server: SegueProcess, acked: set[str], attempted: set[str]) -> set[str]:
    """Every acknowledged event is stored, nothing is stored twice.

    Returns the extras: events committed although their request was never acknowledged.
    """
    stored_ids = [e["message_id"] for e in server.all_events(source="test")]
    counts = Counter(stored_ids)
    doubled = [mid for mid, n in counts.items() if n > 1]
    assert doubled == [], f"{len(doubled)} events stored twice, e.g. {doubled[:3]}"
    stored = set(counts)
    lost = acked - stored
    assert not lost, f"{len(lost)} acknowledged events lost, e.g. {sorted(lost)[:5]}"
    foreign = stored - attempted
    assert not foreign, f"stored events nobody sent: {sorted(foreign)[:5]}"
    return stored - acked


@pytest.mark.slow
def test_sigkill_during_traffic_loses_no_acknowledged_event(
    data_dir: Path, servers: list[SegueProcess]
) -> None:
    acked: set[str] = set()
    attempted: set[str] = set()
    server = _start(data_dir, servers)
    extras: set[str] = set()
    extras_per_round: list[int] = []
    for round_ in range(KILL_ROUNDS):
        sender = Sender(server.url, tag=f"k{round_}-{uuid.uuid4().hex[:6]}").start()
        try:
            sender.wait_for_acks(ACKS_BEFORE_KILL)
            assert sender.failures.total() == 0, dict(sender.failures)
            server.kill()  # SIGKILL while the sender threads are mid-request
            assert server.process is not None
            assert server.process.returncode == -signal.SIGKILL
        finally:
            sender.stop()
        assert not sender.unexpected, sender.unexpected[:3]
        # the kill really hit in-flight traffic: some requests lost their connection
        assert sender.failures.total() >= 1
        acked |= sender.acked_ids()
        attempted |= sender.attempted

        server = _start(data_dir, servers)  # same data dir, new process
        now_extra = _check_stored(server, acked, attempted)
        new_extras = now_extra - extras
        extras = now_extra
        extras_per_round.append(len(new_extras))
        print(
            f"kill {round_ + 1}: {sender.acked_requests} requests acknowledged,"
            f" {len(acked)} acknowledged events in total; {len(new_extras)} stored but never"
            f" acknowledged {sorted(new_extras)[:3]}; failures after the kill:"
            f" {dict(sender.failures)}"
        )

    # the last restart also takes traffic: the recovered database is fully usable
    sender = Sender(server.url, tag=f"after-{uuid.uuid4().hex[:6]}").start()
    try:
        sender.wait_for_acks(50)
    finally:
        sender.stop()
    assert sender.failures.total() == 0, dict(sender.failures)
    acked |= sender.acked_ids()
    attempted |= sender.attempted
    assert _check_stored(server, acked, attempted) == extras
    print(
        f"{len(acked)} acknowledged events all stored; committed but not acknowledged"
        f" per kill: {extras_per_round} ({len(extras)} in total)"
    )
    assert server.stop() in (0, -signal.SIGTERM)


@pytest.mark.slow
def test_sigterm_during_traffic_loses_no_acknowledged_event(
    data_dir: Path, servers: list[SegueProcess]
) -> None:
    server = _start(data_dir, servers)
    sender = Sender(server.url, tag=f"t-{uuid.uuid4().hex[:6]}").start()
    try:
        sender.wait_for_acks(ACKS_BEFORE_KILL)
        assert sender.failures.total() == 0, dict(sender.failures)
        exit_code = server.stop(signal.SIGTERM)  # graceful: in-flight requests finish
    finally:
        sender.stop()
    assert not sender.unexpected, sender.unexpected[:3]
    assert exit_code == 0, server.log()[-2000:]
    assert "Traceback" not in server.log(), server.log()[-2000:]

    server = _start(data_dir, servers)
    extras = _check_stored(server, sender.acked_ids(), sender.attempted)
    print(
        f"SIGTERM: {sender.acked_requests} requests acknowledged, {len(extras)} events stored"
        f" but never acknowledged, failures after the signal: {dict(sender.failures)}"
    )


def test_sigterm_during_traffic_exits_with_code_0(
    data_dir: Path, servers: list[SegueProcess]
) -> None:
    server = _start(data_dir, servers)
    sender = Sender(server.url, tag=f"x-{uuid.uuid4().hex[:6]}", threads=2).start()
    try:
        sender.wait_for_acks(20)
        exit_code = server.stop(signal.SIGTERM)
    finally:
        sender.stop()
    assert exit_code == 0, f"exit code {exit_code}"
