"""Acceptance: a full disk is a 503 and an unhealthy /health, and segue recovers by itself.

A real ``segue serve`` runs with its data directory on a small tmpfs and delivers to a
local endpoint. Senders post events; a ballast file then takes nearly all the space
left, and the senders go on until the answers turn 503. While the disk is full:

- the Tracking API and an admin API write answer 503 with a JSON body and Retry-After;
- ``/health`` is not 200 and says why; reads (the admin API, the UI) still work.

The ballast is then deleted and, without restarting segue, ``/health`` turns 200 and
ingest answers 200 again. Every event that got a 200 is stored and delivered; no
event that got a 503 is stored.

Mounting needs root (or CAP_SYS_ADMIN): the test skips where it cannot mount, except
under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.endpoint import Endpoint
from tests.support.server import WRITE_KEY, SegueProcess

TMPFS_SIZE = "32m"  # the resume threshold after a full disk is 8 MiB free
MARGIN_BYTES = 256 * 1024  # what the ballast leaves for events to fill
BATCH_SIZE = 20
SENDERS = 3
WAIT_S = 20.0


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        reason = f"cannot mount a tmpfs at {path}: {result.stderr.strip() or result.returncode}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of TMPFS_SIZE at ``tmp_path/data``, unmounted at the end."""
    path = tmp_path / "data"
    _mount_tmpfs(path, TMPFS_SIZE)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(path)], capture_output=True)


@pytest.fixture
def sink() -> Iterator[Endpoint]:
    with Endpoint() as endpoint:
        yield endpoint


@pytest.fixture
def server(small_disk: Path, sink: Endpoint) -> Iterator[SegueProcess]:
    config = f"""
[[sources]]
name = "test"
write_key = "{WRITE_KEY}"

[egress]
allow = ["127.0.0.0/8"]
allow_http = true

[[destinations]]
name = "sink"
endpoint = "{sink.url}/hook"
sources = ["test"]
"""
    process = SegueProcess(small_disk, config_text=config).start()
    try:
        yield process
    finally:
        if process.process is not None and process.process.poll() is None:
            process.stop()


@dataclass
class Sender:
    """Threads posting batches and single tracks, remembering every answer."""

    url: str
    tag: str
    acked: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)  # events of requests answered 503
    attempted: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    first_503: httpx.Response | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Sender:
        for worker in range(SENDERS):
            thread = threading.Thread(target=self._run, args=(worker,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
            assert not thread.is_alive(), "a sender thread is stuck"

    def count(self, status: int) -> int:
        with self._lock:
            return self.statuses[status]

    def wait_for(self, status: int, count: int, timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while self.count(status) < count:
            assert time.monotonic() < deadline, (
                f"{count} answers {status} not seen in {timeout} s: {dict(self.statuses)}"
            )
            time.sleep(0.01)

    def _run(self, worker: int) -> None:
        seq = 0
        with httpx.Client(base_url=self.url, auth=(WRITE_KEY, ""), timeout=10.0) as client:
            while not self._stop.is_set():
                seq += 1
                ids = [f"{self.tag}-w{worker}-r{seq}-e{k}" for k in range(BATCH_SIZE)]
                if seq % 3 == 0:
                    ids = ids[:1]
                    path, body = "/v1/track", _track(ids[0], seq)
                else:
                    path, body = "/v1/batch", {"batch": [_track(mid, seq) for mid in ids]}
                with self._lock:
                    self.attempted.update(ids)
                response = client.post(path, json=body)
                with self._lock:
                    self.statuses[response.status_code] += 1
                    if response.status_code == 200:
                        self.acked.update(ids)
                    elif response.status_code == 503:
                        self.refused.update(ids)
                        self.first_503 = self.first_503 or response


def _track(message_id: str, seq: int) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": "full-disk-user",
        "event": "Disk Filled",
        "messageId": message_id,
        "properties": {"seq": seq, "padding": "x" * 200},
    }


def _free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def _fill(path: Path, leave: int) -> int:
    """Grow a file until ``path``'s file system has about ``leave`` bytes free.

    In steps of 1 MiB: one large fallocate that runs out of room is undone entirely,
    and segue keeps writing meanwhile. Returns the file's size.
    """
    step = 1024 * 1024
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while (room := _free_bytes(path.parent) - leave) > 0:
            try:
                os.posix_fallocate(fd, os.fstat(fd).st_size, min(step, room))
            except OSError:
                step //= 2  # segue took some of it meanwhile
                if step < 4096:
                    break
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def _top_up(path: Path) -> None:
    """Take what is left, block by block, until the file system has no room at all."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                os.write(fd, b"\0" * 4096)
            except OSError:
                return
    finally:
        os.close(fd)


def _health(server: SegueProcess) -> httpx.Response:
    return httpx.get(f"{server.url}/health", timeout=10.0)


def _assert_503_json(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert isinstance(body["message"], str) and "full" in body["message"], body
    return dict(body)


def _admin_write_until_refused(server: SegueProcess) -> httpx.Response:
    """An admin API write on the full disk (a tiny write may still fit: try a few)."""
    with server.admin() as admin:
        for attempt in range(50):
            response = admin.post("/sources", json={"name": f"full-{attempt}"})
            assert response.status_code in (201, 503), response.text
            if response.status_code == 503:
                return response
    raise AssertionError("50 admin writes all succeeded on a full disk")


def _track_until_refused(server: SegueProcess, sender: Sender) -> None:
    """Single tracks until one is refused (each one acknowledged is remembered)."""
    with httpx.Client(base_url=server.url, auth=(WRITE_KEY, ""), timeout=10.0) as client:
        for attempt in range(50):
            message_id = f"{sender.tag}-probe-{attempt}"
            sender.attempted.add(message_id)
            response = client.post("/v1/track", json=_track(message_id, attempt))
            assert response.status_code in (200, 503), response.text
            if response.status_code == 503:
                sender.refused.add(message_id)
                return
            sender.acked.add(message_id)
    raise AssertionError("50 tracks all succeeded on a full disk")


def test_full_disk_answers_503_and_recovers_without_restart(
    server: SegueProcess, small_disk: Path, sink: Endpoint
) -> None:
    assert server.process is not None
    pid = server.process.pid
    ballast = small_disk / "ballast"
    sender = Sender(server.url, tag=f"fd-{uuid.uuid4().hex[:6]}").start()
    try:
        sender.wait_for(200, 30)  # some traffic on a healthy disk
        ballast_size = _fill(ballast, leave=MARGIN_BYTES)
        with sender._lock:
            acked_before_ballast = len(sender.acked)
        sender.wait_for(503, 20)  # the events fill what was left
    finally:
        sender.stop()
    _top_up(ballast)  # no room at all: every write below must fail
    assert sender.first_503 is not None
    body = _assert_503_json(sender.first_503)
    assert body["success"] is False and body["code"] == "store_unavailable"
    assert sender.first_503.headers["access-control-allow-origin"] == "*"
    _track_until_refused(server, sender)

    # the admin API: a write is refused the same way, reads still work
    _assert_503_json(_admin_write_until_refused(server))
    with server.admin() as admin:
        assert admin.get("/sources/test").status_code == 200
    ui = httpx.get(f"{server.url}/ui/sign-in", timeout=10.0)
    assert ui.status_code == 200

    health = _health(server)
    assert health.status_code == 503, health.text
    assert health.headers["retry-after"]
    store = health.json()["checks"]["store"]
    assert health.json()["status"] == "unavailable"
    assert store["writable"] is False and store["reason"] == "disk_full", store
    print(f"/health on the full disk: {health.json()}")

    # free the space: segue recovers by itself, no restart
    freed_at = time.monotonic()
    ballast.unlink()
    first_ingest = _wait_for_ingest(server, sender)
    ingest_s = time.monotonic() - freed_at
    _wait_for_health(server)
    health_s = time.monotonic() - freed_at
    assert server.process.poll() is None and server.process.pid == pid

    after = Sender(server.url, tag=f"{sender.tag}-after").start()
    try:
        after.wait_for(200, 20)
    finally:
        after.stop()
    assert after.count(503) == 0, dict(after.statuses)

    acked = sender.acked | after.acked | {first_ingest}
    refused = sender.refused | after.refused
    stored = Counter(e["message_id"] for e in server.all_events(source="test"))
    assert [m for m, n in stored.items() if n > 1] == []
    lost = acked - set(stored)
    assert not lost, f"{len(lost)} acknowledged events lost, e.g. {sorted(lost)[:5]}"
    wrongly_stored = refused & set(stored)
    assert not wrongly_stored, f"answered 503 yet stored: {sorted(wrongly_stored)[:5]}"
    assert set(stored) <= sender.attempted | after.attempted | {first_ingest}

    delivered = _wait_delivered(sink, acked)
    print(
        f"{acked_before_ballast} events acknowledged before the ballast, {len(sender.acked)}"
        f" by the time the disk was full; {len(sender.refused)} refused with 503"
        f" (requests: {dict(sender.statuses)});"
        f" after recovery: {len(after.acked)} more acknowledged."
        f" All {len(acked)} acknowledged events stored and delivered"
        f" ({delivered} deliveries, duplicates allowed); none of the refused ones stored."
        f" Space freed -> first ingest 200 after {ingest_s:.2f} s, /health 200 after"
        f" {health_s:.2f} s; same process (pid {pid}); ballast {ballast_size >> 20} MiB."
    )
    log = server.log()
    assert "Traceback" not in log, log[-3000:]


def _wait_for_ingest(server: SegueProcess, sender: Sender) -> str:
    """Send single tracks until one is acknowledged; returns its messageId."""
    deadline = time.monotonic() + WAIT_S
    with httpx.Client(base_url=server.url, auth=(WRITE_KEY, ""), timeout=10.0) as client:
        attempt = 0
        while True:
            attempt += 1
            message_id = f"{sender.tag}-recovered-{attempt}"
            response = client.post("/v1/track", json=_track(message_id, attempt))
            if response.status_code == 200:
                return message_id
            assert response.status_code == 503, response.text
            sender.refused.add(message_id)
            sender.attempted.add(message_id)
            assert time.monotonic() < deadline, "ingest did not recover"
            time.sleep(0.05)


def _wait_for_health(server: SegueProcess) -> None:
    deadline = time.monotonic() + WAIT_S
    while (response := _health(server)).status_code != 200:
        assert response.status_code == 503, response.text
        assert time.monotonic() < deadline, f"/health did not recover: {response.text}"
        time.sleep(0.05)
    assert response.json()["checks"]["store"]["writable"] is True


def _wait_delivered(sink: Endpoint, acked: set[str]) -> int:
    def arrived(requests: list[Any]) -> bool:
        return acked <= {r.json()["messageId"] for r in requests}

    requests = sink.wait_until(arrived, timeout=WAIT_S, what="every acknowledged event")
    return len(requests)
