"""Acceptance: slow and greedy clients cannot starve the others (issue 10).

A real ``segue serve`` with an open-file limit of 1,024 faces 2,000 slow sockets
(half trickle a request head, half send their headers and stall the body; those the
server closes connect again) while a well-behaved client keeps posting ``/v1/track``:
every one of its requests must succeed, with a p99 under a second. Then the limits
one by one: a 1 MB header and 5,000 headers get ``431``, a stalled head or body gets
``408`` after the configured timeout, a connection that sends nothing is closed.
"""

from __future__ import annotations

import base64
import multiprocessing
import resource
import select
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from tests.support.server import WRITE_KEY, SegueProcess

SLOW_SOCKETS = 2_000
SERVER_FD_LIMIT = 1_024
CLIENT_RUN_S = 3.0
TRICKLE_EVERY_S = 0.2
HEAD = b"POST /v1/track HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
BODY_HEAD = (
    b"POST /v1/track HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 1000\r\n\r\n{"
)


class SlowSockets:
    """``count`` sockets that never finish a request, held by a process of their own
    (a separate client, as an attacker would be); those the server closes connect
    again."""

    def __init__(self, port: int, count: int) -> None:
        self.port, self.count = port, count
        self.opened = self.closed_by_server = 0
        context = multiprocessing.get_context("fork")
        self._ready, self._stop = context.Event(), context.Event()
        self._results: multiprocessing.Queue[tuple[int, int]] = context.Queue()
        self._process = context.Process(target=self._run, daemon=True)

    def start(self) -> SlowSockets:
        self._process.start()
        assert self._ready.wait(30), "could not open the slow sockets"
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._process.is_alive() or self._process.exitcode == 0:
            self.opened, self.closed_by_server = self._results.get(timeout=10)
        self._process.join(10)

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        socks: dict[int, tuple[socket.socket, int]] = {}
        opened = closed = 0

        def open_slot(slot: int) -> None:
            nonlocal opened
            sock = socket.socket()
            sock.settimeout(2.0)
            try:
                sock.connect(("127.0.0.1", self.port))
                sock.sendall(HEAD if slot % 2 else BODY_HEAD)
            except OSError:
                sock.close()
                return
            sock.setblocking(False)
            socks[sock.fileno()] = (sock, slot)
            selector.register(sock, selectors.EVENT_READ)
            opened += 1

        def cut(fd: int) -> None:
            nonlocal closed
            sock, _ = socks.pop(fd)
            selector.unregister(sock)
            sock.close()
            closed += 1

        for slot in range(self.count):
            open_slot(slot)
        self._ready.set()
        while not self._stop.is_set():
            deadline = time.monotonic() + TRICKLE_EVERY_S
            while (left := deadline - time.monotonic()) > 0:
                for key, _ in selector.select(left):
                    cut(key.fd)  # a slow socket only hears from the server when it is cut
            alive = {slot for _, slot in socks.values()}
            for sock, _ in list(socks.values()):
                try:
                    sock.send(b"a")
                except OSError:
                    cut(sock.fileno())
            for slot in range(self.count):
                if slot not in alive:
                    open_slot(slot)
        self._results.put((opened, closed))


def _raise_own_fd_limit(needed: int) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"this test needs {needed} open files; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _track(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    response = client.post(f"{url}/v1/track", json={"userId": "u1", "event": "Kept Going"})
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


def test_2000_slow_sockets_leave_room_for_a_well_behaved_client(tmp_path: Path) -> None:
    _raise_own_fd_limit(SLOW_SOCKETS + 1_000)
    server = SegueProcess(tmp_path / "data", fd_limit=SERVER_FD_LIMIT).start()
    slow = SlowSockets(server.port, SLOW_SOCKETS)
    latencies: list[float] = []
    failures: list[str] = []
    try:
        slow.start()
        auth = (WRITE_KEY, "")
        with httpx.Client(auth=auth, timeout=5.0) as kept_alive:
            deadline = time.monotonic() + CLIENT_RUN_S
            while time.monotonic() < deadline:
                # mostly one kept-alive connection (what SDKs do), every 5th a new one
                fresh = len(latencies) % 5 == 4
                try:
                    if fresh:
                        with httpx.Client(auth=auth, timeout=5.0) as client:
                            latencies.append(_track(client, server.url))
                    else:
                        latencies.append(_track(kept_alive, server.url))
                except (httpx.HTTPError, AssertionError) as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
        assert server.process is not None
        server_fds = len(list(Path(f"/proc/{server.process.pid}/fd").iterdir()))
    finally:
        slow.stop()
        server.stop()
    assert not failures, f"{len(failures)} failed: {failures[:5]}"
    assert len(latencies) >= 50
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(
        f"\n{len(latencies)} requests, p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms,"
        f" max {latencies[-1] * 1000:.1f} ms, failures {len(failures)};"
        f" slow sockets opened {slow.opened}, cut by the server {slow.closed_by_server};"
        f" server fds at the end {server_fds}"
    )
    assert p99 < 1.0
    assert slow.closed_by_server >= SLOW_SOCKETS - SERVER_FD_LIMIT  # the budget was used
    assert server_fds < SERVER_FD_LIMIT
    log = server.log()
    assert "Too many open files" not in log and "Traceback" not in log, log[-3000:]
    assert "connection budget full" in log


# -- the limits, one by one, on a server with short timeouts -----------------------

TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SegueProcess]:
    config = (
        f"[server]\nheader_timeout = {TIMEOUT_S}\nbody_timeout = {TIMEOUT_S}\n\n"
        f'[[sources]]\nname = "test"\nwrite_key = "{WRITE_KEY}"\n'
    )
    server = SegueProcess(tmp_path_factory.mktemp("slow") / "data", config_text=config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _refused(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["connection"] == "close"
    body = response.json()
    assert body["success"] is False and body["code"] == code
    return str(body["message"])


def test_a_1mb_header_is_answered_431(strict_server: SegueProcess) -> None:
    response = httpx.post(
        f"{strict_server.url}/v1/track",
        headers={"X-Big": "a" * 1_000_000},
        json={"userId": "u1", "event": "Big"},
        auth=(WRITE_KEY, ""),
    )
    assert "65536 bytes" in _refused(response, 431, "headers_too_large")


def test_5000_headers_are_answered_431(strict_server: SegueProcess) -> None:
    response = httpx.post(
        f"{strict_server.url}/v1/track",
        headers=[(f"x-h{i}", "v") for i in range(5_000)],
        json={"userId": "u1", "event": "Many"},
        auth=(WRITE_KEY, ""),
    )
    assert "more than 100 headers" in _refused(response, 431, "headers_too_large")


def test_a_normal_request_still_passes(strict_server: SegueProcess) -> None:
    headers = [(f"x-h{i}", "v" * 500) for i in range(90)]  # 90 headers, ~46 KB
    response = httpx.post(
        f"{strict_server.url}/v1/track",
        headers=headers,
        json={"userId": "u1", "event": "Fine"},
        auth=(WRITE_KEY, ""),
    )
    assert response.status_code == 200, response.text


def _answer_after(sock: socket.socket) -> tuple[float, bytes]:
    """Wait for what the server sends until it closes; how long that took."""
    started = time.monotonic()
    sock.settimeout(10.0)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return time.monotonic() - started, received


def _json_body(raw: bytes, status: int) -> dict[str, object]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), raw
    assert b"connection: close" in head.lower()
    parsed: dict[str, object] = orjson.loads(body)
    return parsed


def test_a_trickled_head_times_out_with_408(strict_server: SegueProcess) -> None:
    with socket.create_connection(("127.0.0.1", strict_server.port)) as sock:
        sock.sendall(b"POST /v1/track HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        # a header line every 0.1 s until the server answers: activity is no excuse
        while not select.select([sock], [], [], 0.1)[0] and time.monotonic() - started < 5:
            sock.sendall(b"X-Slow: a\r\n")
        elapsed = time.monotonic() - started
        _, raw = _answer_after(sock)
    assert TIMEOUT_S * 0.9 <= elapsed < TIMEOUT_S + 1.0, elapsed
    body = _json_body(raw, 408)
    assert body["code"] == "request_timeout" and body["success"] is False


def test_a_stalled_body_times_out_with_408(strict_server: SegueProcess) -> None:
    with socket.create_connection(("127.0.0.1", strict_server.port)) as sock:
        sock.sendall(
            b"POST /v1/track HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 500\r\n\r\n" + b'{"userId": "u1", '
        )
        waited, raw = _answer_after(sock)
    assert TIMEOUT_S * 0.9 <= waited < TIMEOUT_S + 1.0
    body = _json_body(raw, 408)
    assert body["code"] == "request_timeout"
    assert "body" in str(body["message"])


def test_a_connection_that_sends_nothing_is_closed(strict_server: SegueProcess) -> None:
    with socket.create_connection(("127.0.0.1", strict_server.port)) as sock:
        waited, raw = _answer_after(sock)
    assert raw == b""
    assert TIMEOUT_S * 0.9 <= waited < TIMEOUT_S + 1.0


def _request(body: bytes = b'{"userId": "u1", "event": "Again"}') -> bytes:
    auth = base64.b64encode(f"{WRITE_KEY}:".encode())
    return (
        b"POST /v1/track HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: Basic " + auth + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def test_a_kept_alive_connection_gets_a_fresh_head_deadline(strict_server: SegueProcess) -> None:
    with socket.create_connection(("127.0.0.1", strict_server.port)) as sock:
        sock.settimeout(5.0)
        for _ in range(3):  # pipelined requests are answered in order, all of them
            sock.sendall(_request() * 2)
            answers = b""
            while answers.count(b'{"success":true}') < 2:
                answers += sock.recv(65536)
            time.sleep(TIMEOUT_S * 0.6)  # idle between requests is the keep-alive's business
        sock.sendall(b"POST /v1/track HTTP/1.1\r\n")  # then a head that never ends
        waited, raw = _answer_after(sock)
    assert TIMEOUT_S * 0.9 <= waited < TIMEOUT_S + 1.0
    assert _json_body(raw, 408)["code"] == "request_timeout"
