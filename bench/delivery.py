"""Delivery benchmark: segue's delivery engine against a bare aiohttp POST loop, in one run.

    .venv/bin/python bench/delivery.py                 # the budget check (~1.5 min)
    .venv/bin/python bench/delivery.py --rounds 3      # the same, three times over
    .venv/bin/python bench/delivery.py --json          # machine-readable

It starts a local HTTP endpoint, bench/sink.py (raw asyncio on uvloop, answers 200 at
once, records each messageId's arrival time), pinned to one core, and measures:

- throughput, bare: bench/bare_poster.py, one aiohttp ClientSession (keep-alive) with
  --concurrency coroutines POSTing --events events to the sink, with the headers
  segue's own build_request makes and the body segue delivered (one of them, each
  with a fresh messageId), pinned to the other core;
- throughput, segue: `segue serve` (fresh temp data dir, default durable SQLite) with
  one source, one [[apps]] + [[destinations]] at the sink (concurrency = --concurrency,
  egress allowed to 127.0.0.0/8 over http), pinned like the bare loop. A backlog of
  --events events is ingested through /v1/batch while the server runs with
  --role ingest (deliveries queued, none sent); the server is then restarted with
  --role all and delivers the backlog. Rate = events / (last arrival - first
  arrival) at the sink, for both. Target: segue >= 80 % of the bare loop. Checked:
  the sink got every event exactly once, and /metrics
  segue_deliveries_total{state="succeeded"} equals the backlog;
- end-to-end latency: a fresh `segue serve --role all`; this process (pinned to the
  sink's core) sends single /v1/track events at --rate a second for --latency-duration
  seconds on a schedule (a request is started when it is due, not after the previous
  answer), over aiohttp with keep-alive; latency = the sink's arrival time - the time
  the 200 came back to the sender (CLOCK_MONOTONIC in both processes: one clock per
  machine). Targets: p50 <= 5 ms, p99 <= 25 ms. The sender's lag behind its schedule
  is reported, so a slow sender shows, and a short calibration (--calibrate s) sends
  the same load straight to the sink: what the harness itself adds. With
  --latency-history it runs on the throughput phase's database instead (the backlog
  delivered: that much history in the tables).

Everything runs on 127.0.0.1, every wait has a time limit, and every process started
here is stopped on exit, also on Ctrl-C. Before each measured phase it waits (up to
--wait-quiet s) for other processes to leave the two cores alone, and flags a phase in
which they took more than 10 % of either.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from base64 import b64encode
from dataclasses import asdict, astuple, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from benchkit import (
    BENCH,
    HOST,
    BenchError,
    Server,
    free_port,
    http,
    machine,
    metric_value,
    parse_metrics,
    pinned,
    server_env,
)
from ingest import NOISY, CpuWatch, segue_command, wait_for_quiet
from rich.console import Console
from rich.table import Table

PROGRESS = Console(stderr=True)  # progress and warnings; the results go to stdout
THROUGHPUT_TARGET = 0.80  # segue's delivered events/s as a share of the bare loop's
P50_TARGET_MS = 5.0
P99_TARGET_MS = 25.0
SATURATED = 0.90  # a sink using more of its core than this may be what limits a run
SETTLE_TIMEOUT_S = 30.0
LAG_LIMIT_MS = 5.0  # a sender later than this (p99) behind its schedule is a suspect load
DESTINATION = "sink"
SETTINGS = {"apiKey": "bench-api-key", "region": "eu"}  # apiKey + one custom setting


# -- the events: what analytics-python sends (the same event as bench/ingest.lua) -----
def track_event(message_id: str, **properties: Any) -> dict[str, Any]:
    return {
        "integrations": {},
        "anonymousId": None,
        "properties": {
            "order_id": "ord_50312",
            "revenue": 52.49,
            "shipping": 3.0,
            "tax": 4.2,
            "discount": 2.5,
            "coupon": "SPRING25",
            "currency": "USD",
            "products": [
                {
                    "product_id": "60a3c9e1f1d2b34a5c6e7f80",
                    "sku": "P-104",
                    "name": "Wingspan",
                    "price": 54.99,
                    "quantity": 1,
                }
            ],
            **properties,
        },
        "timestamp": "2025-05-14T09:31:07.412817+00:00",
        "context": {
            "ip": "203.0.113.215",
            "library": {"name": "analytics-python", "version": "2.3.4"},
        },
        "userId": "user_8f14e45fceea167a",
        "type": "track",
        "event": "Order Completed",
        "messageId": message_id,
    }


SENT_AT = "2025-05-14T09:31:07.498321+00:00"
CLIENT_HEADERS = {"Content-Type": "application/json", "User-Agent": "analytics-python/2.3.4"}


def message_id(run: str, n: int) -> str:
    """uuid4-shaped and random (as analytics-python's), the run and a counter at the end."""
    head = uuid.uuid4().hex
    return f"{head[:8]}-{head[8:12]}-4{head[13:16]}-a{head[17:20]}-{run}{n:07d}"


# -- the sink ---------------------------------------------------------------------
@dataclass
class Sink:
    server: Server
    base: str

    @property
    def url(self) -> str:
        return f"{self.base}/hook"

    def _get(self, path: str) -> Any:
        status, body = http("GET", f"{self.base}/_{path}")
        if status != 200:
            raise BenchError(f"the sink answered {status} to /_{path}")
        return json.loads(body)

    def stats(self) -> dict[str, int]:
        return dict(self._get("stats"))

    def arrivals(self) -> list[tuple[str, int]]:
        return [(m, t) for m, t in self._get("arrivals")]

    def sample_body(self) -> str:
        return str(self._get("sample")["body"])

    def reset(self) -> None:
        status, _ = http("POST", f"{self.base}/_reset", b"")
        if status != 200:
            raise BenchError(f"the sink answered {status} to /_reset")

    def wait_for(self, count: int, timeout: float, poll: float = 0.1) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["count"] >= count or time.monotonic() >= deadline:
                return stats
            time.sleep(poll)


def start_sink(args: argparse.Namespace, work: Path) -> Sink:
    port = free_port()
    argv = [sys.executable, str(BENCH / "sink.py"), "--host", HOST, "--port", str(port)]
    server = Server("sink", pinned(args.client_cpu, argv), work / "sink.log", server_env())
    base = f"http://{HOST}:{port}"
    server.wait_ready(lambda: http("GET", f"{base}/_stats")[0] == 200)
    return Sink(server, base)


# -- segue --------------------------------------------------------------------------
@dataclass
class Segue:
    base: str
    token: str
    auth: str  # the Authorization header for the Tracking API
    server: Server

    def metrics(self) -> str:
        status, body = http("GET", f"{self.base}/metrics")
        if status != 200:
            raise BenchError(f"GET /metrics answered {status}")
        return body.decode()

    def deliveries(self, state: str) -> int:
        return int(metric_value(self.metrics(), "segue_deliveries_total", state=state))

    def received(self) -> int:
        return int(metric_value(self.metrics(), "segue_events_received_total"))

    def deliveries_by_state(self) -> dict[str, int]:
        text, out = self.metrics(), {}
        for state in ("succeeded", "discarded", "awaiting_retry", "expired"):
            if n := int(metric_value(text, "segue_deliveries_total", state=state)):
                out[state] = n
        return out

    async def paced(self, rate: float, seconds: float, run: str) -> list[Sent]:
        url, health = f"{self.base}/v1/track", f"{self.base}/health"
        return await paced_send(url, self.auth, rate, seconds, run, health)

    def wait_ready(self) -> None:
        self.server.wait_ready(lambda: http("GET", f"{self.base}/health")[0] == 200)

    def wait_delivered(self, count: int, timeout: float = SETTLE_TIMEOUT_S) -> int:
        """Settlements trail the sink's receipts: wait until /metrics counts them all."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.deliveries("succeeded")
            if done >= count or time.monotonic() >= deadline:
                return done
            time.sleep(0.2)


@dataclass
class SegueSetup:
    data: Path
    config: Path
    write_key: str
    token: str


def segue_setup(args: argparse.Namespace, work: Path, sink: Sink) -> SegueSetup:
    data = work / f"segue-{secrets.token_hex(3)}"
    data.mkdir()
    write_key, token = secrets.token_hex(16), "sga_bench_" + secrets.token_hex(16)
    config = data / "segue.toml"
    config.write_text(
        f"""[[sources]]
name = "bench"
write_key = "{write_key}"

[egress]
allow = ["127.0.0.0/8"]
allow_http = true

[[apps]]
name = "sink"
endpoint = "{sink.url}"
settings = [
  {{ label = "API Key", key = "apiKey", required = true, sensitive = true }},
  {{ label = "Region", description = "EU or US" }},
]

[[destinations]]
name = "{DESTINATION}"
app = "sink"
sources = ["bench"]
settings = {{ apiKey = "{SETTINGS["apiKey"]}", region = "{SETTINGS["region"]}" }}
enabled = true
concurrency = {args.concurrency}
allow_http = true
""",
        "utf-8",
    )
    return SegueSetup(data, config, write_key, token)


def start_segue(args: argparse.Namespace, setup: SegueSetup, role: str, wait: bool = True) -> Segue:
    """`segue serve --role ROLE` on the setup's data dir; ``wait``: until /health answers."""
    port = free_port()
    argv = [*segue_command(args), "serve", "--config", str(setup.config), "--data", str(setup.data)]
    argv += ["--host", HOST, "--port", str(port), "--role", role]
    env = server_env() | {"SEGUE_ADMIN_TOKEN": setup.token}
    log = setup.data / f"serve-{role}-{secrets.token_hex(2)}.log"
    server = Server(f"segue serve --role {role}", pinned(args.server_cpu, argv), log, env)
    auth = "Basic " + b64encode(f"{setup.write_key}:".encode()).decode()
    segue = Segue(f"http://{HOST}:{port}", setup.token, auth, server)
    if wait:
        segue.wait_ready()
    return segue


# -- load from this process (pinned to the sink's core) --------------------------------
def run_async(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def preload(segue: Segue, events: int, batch_size: int, run: str) -> int:
    """Ingest ``events`` events through /v1/batch; returns how many were acknowledged."""
    bodies = []
    for start in range(0, events, batch_size):
        items = [
            track_event(message_id(run, n)) for n in range(start, min(events, start + batch_size))
        ]
        bodies.append((len(items), json.dumps({"batch": items, "sentAt": SENT_AT}).encode()))
    headers = {**CLIENT_HEADERS, "Authorization": segue.auth}
    acked = 0
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def worker() -> None:
            nonlocal acked
            while bodies:
                count, body = bodies.pop()
                async with session.post(f"{segue.base}/v1/batch", data=body, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise BenchError(f"/v1/batch answered {r.status} while preloading")
                    acked += count

        await asyncio.gather(*(worker() for _ in range(8)))
    return acked


@dataclass
class Sent:
    message_id: str
    due_ns: int
    send_ns: int = 0
    ack_ns: int = 0
    status: int = 0


async def paced_send(
    url: str, auth: str, rate: float, seconds: float, run: str, warm_url: str
) -> list[Sent]:
    """Single events POSTed to ``url`` at ``rate`` a second, each started when it is due
    (not after the previous answer: a slow answer does not slow the schedule down).

    Each event carries its due time (properties.bench_due_ns); the bodies are built
    before the first is due, so that the schedule only pays for the requests."""
    count = int(rate * seconds)
    interval = 1e9 / rate
    headers = {**CLIENT_HEADERS, "Authorization": auth}
    timeout = aiohttp.ClientTimeout(total=10)
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(item: Sent, body: bytes) -> None:
            item.send_ns = time.monotonic_ns()
            try:
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    item.ack_ns = time.monotonic_ns()
                    item.status = r.status
            except (aiohttp.ClientError, TimeoutError):
                item.status = -1

        async def warm() -> None:  # keep-alive connections ready before the first is due
            async with session.get(warm_url) as r:
                await r.read()

        await asyncio.gather(*(warm() for _ in range(8)))
        start = time.monotonic_ns() + 200_000_000 + count * 20_000
        sent, bodies = [], []
        for n in range(count):
            item = Sent(message_id(run, n), start + int(n * interval))
            event = track_event(item.message_id, bench_due_ns=item.due_ns)
            event["sentAt"] = SENT_AT
            sent.append(item)
            bodies.append(json.dumps(event).encode())
        tasks = []
        n = 0
        while n < count:
            now = time.monotonic_ns()
            if sent[n].due_ns > now:
                # uvloop's timers have 1 ms steps: a shorter sleep would spin the loop
                await asyncio.sleep(max(sent[n].due_ns - now, 1_000_000) / 1e9)
                continue
            while n < count and sent[n].due_ns <= now:  # all that are due, if late
                tasks.append(asyncio.create_task(one(sent[n], bodies[n])))
                n += 1
        await asyncio.gather(*tasks)
    return sent


# -- CPU accounting and profiling -------------------------------------------------------
class Window:
    """CPU use during a phase: the measured process, the sink, this process, the others."""

    def __init__(self, args: argparse.Namespace, measured: Server, sink: Sink) -> None:
        self.args, self.measured, self.sink = args, measured, sink
        self.watch = CpuWatch(args, measured)
        self.started = time.monotonic()
        self.sink_cpu = sink.server.cpu_seconds()
        self.own_cpu = _own_cpu()

    def others(self) -> tuple[float, float, float]:
        """(others on the measured core, others on the sink's core, sink's share of its core)."""
        seconds = time.monotonic() - self.started
        sink_s = self.sink.server.cpu_seconds() - self.sink_cpu
        own_s = _own_cpu() - self.own_cpu
        on_server, on_client = self.watch.others(seconds, sink_s + own_s)
        return on_server, on_client, sink_s / seconds


def main_thread_cpu(pid: int) -> float:
    """CPU seconds of a process's main thread (its event loop); the rest of the process's
    time is its other threads' (for segue: the SQLite writer and readers)."""
    with open(f"/proc/{pid}/task/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


class Profiler:
    """py-spy record on a server until stopped (SIGINT: py-spy then writes its file)."""

    live: list[Profiler] = []  # for the cleanup on exit

    def __init__(self, args: argparse.Namespace, server: Server, name: str) -> None:
        self.out = Path(args.profile) / f"{name}.txt"
        self.out.parent.mkdir(parents=True, exist_ok=True)
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        argv = [py_spy, "record", "--pid", str(server.pid), "--rate", "200", "--threads"]
        argv += ["--format", "raw", "--output", str(self.out), "--nonblocking"]
        argv += args.profile_arg
        self.proc = subprocess.Popen(
            pinned(args.client_cpu, argv),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        Profiler.live.append(self)

    def stop(self) -> str:
        if self in Profiler.live:
            Profiler.live.remove(self)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return f"profiled with py-spy (figures perturbed): {self.out}"


def maybe_profile(args: argparse.Namespace, server: Server, name: str) -> Profiler | None:
    return Profiler(args, server, name) if args.profile else None


def quiet(args: argparse.Namespace, server: Server) -> None:
    if args.wait_quiet > 0:
        wait_for_quiet(args, server)


# -- results ----------------------------------------------------------------------------
@dataclass
class StoreFigures:
    """segue's own view from /metrics over a phase: group commits, attempt durations."""

    commits: float = 0.0
    jobs: float = 0.0  # write jobs (requests, claims, settlements) in those commits
    commit_seconds: float = 0.0
    attempts: float = 0.0
    attempt_seconds: float = 0.0

    @classmethod
    def read(cls, segue: Segue) -> StoreFigures:
        m = parse_metrics(segue.metrics())
        return cls(
            m.get("segue_store_commit_jobs_count", 0.0),
            m.get("segue_store_commit_jobs_sum", 0.0),
            m.get("segue_store_commit_seconds_sum", 0.0),
            m.get("segue_delivery_attempt_seconds_count", 0.0),
            m.get("segue_delivery_attempt_seconds_sum", 0.0),
        )

    def since(self, before: StoreFigures) -> StoreFigures:
        return StoreFigures(*(a - b for a, b in zip(astuple(self), astuple(before), strict=True)))

    def describe(self, seconds: float, events: int) -> str:
        if not self.commits:
            return "no commits"
        return (
            f"{self.commits / seconds:,.0f} commits/s ({self.commits / max(events, 1):.2f} per"
            f" delivered event, {self.jobs / self.commits:.1f} jobs each,"
            f" {self.commit_seconds / self.commits * 1000:.2f} ms each); an attempt (request to"
            f" response, inside segue) {self.attempt_seconds / max(self.attempts, 1) * 1000:.2f} ms"
            " on average"
        )


@dataclass
class Throughput:
    scenario: str  # "bare" | "segue"
    events: int = 0
    seconds: float = 0.0  # first to last arrival at the sink
    events_s: float = 0.0
    cpu: float = 0.0  # cores the measured process (segue or the bare loop) kept busy
    main_thread_cpu: float | None = None  # segue: of which its event loop's thread
    sink_cpu: float = 0.0
    other_cpu: float = 0.0  # others on the measured process's core (noise)
    other_client_cpu: float = 0.0  # others on the sink's core
    received: int = 0
    unique: int = 0
    succeeded: int | None = None  # segue: /metrics deliveries succeeded
    other_states: dict[str, int] = field(default_factory=dict)
    acked: int | None = None  # segue: events acknowledged while preloading
    body_bytes: float = 0.0
    store: StoreFigures | None = None  # segue: from its start to the end of the backlog
    data_ok: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class Latency:
    rate: float = 0.0  # requested events/s
    history: int = 0  # events (and deliveries) already in the database: --latency-history
    achieved_rate: float = 0.0
    events: int = 0
    acked: int = 0
    received: int = 0
    unique: int = 0
    succeeded: int | None = None
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    min_ms: float = 0.0
    send_to_sink_p50_ms: float = 0.0
    send_to_sink_p99_ms: float = 0.0
    ack_p50_ms: float = 0.0  # the Tracking API's answer time, as the sender saw it
    ack_p99_ms: float = 0.0
    lag_p99_ms: float = 0.0  # how late the sender started requests against its schedule
    lag_max_ms: float = 0.0
    harness_rtt_p50_ms: float = 0.0  # sender -> sink -> sender without segue, same rate
    harness_rtt_p99_ms: float = 0.0
    harness_rtt_max_ms: float = 0.0
    store: StoreFigures | None = None
    cpu: float = 0.0
    main_thread_cpu: float = 0.0
    sink_cpu: float = 0.0
    sender_cpu: float = 0.0
    other_cpu: float = 0.0
    other_client_cpu: float = 0.0
    data_ok: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class Round:
    bare: Throughput | None = None
    segue: Throughput | None = None
    latency: Latency | None = None


def percentile(values: list[float], q: float) -> float:
    """Nearest rank on sorted values."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def note_noise(notes: list[str], other: float, other_client: float, sink_cpu: float) -> None:
    if max(other, other_client) > NOISY:
        notes.append(
            f"other processes took {other:.0%} of the measured core and {other_client:.0%} of"
            " the sink's during the run: noisy figures"
        )
    if sink_cpu > SATURATED:
        notes.append(f"the sink used {sink_cpu:.0%} of its core: it may have been the limit")


# -- phases -------------------------------------------------------------------------------
def measure_segue_throughput(args: argparse.Namespace, sink: Sink, setup: SegueSetup) -> Throughput:
    row = Throughput("segue")
    run = secrets.token_hex(3)[:5]
    PROGRESS.print(
        f"[dim]  segue: ingesting a backlog of {args.events:,} events (--role ingest)...[/]"
    )
    ingest = start_segue(args, setup, "ingest")
    try:
        row.acked = run_async(preload(ingest, args.events, args.batch_size, run))
        stored = ingest.received()
    finally:
        ingest.server.stop()
    if row.acked != args.events or stored != args.events:
        raise BenchError(f"preloading: {row.acked} acknowledged, {stored} stored of {args.events}")
    os.sync()  # the backlog's pages are written back now, not during the measured phase
    sink.reset()
    quiet(args, sink.server)
    PROGRESS.print(
        f"[dim]  segue: delivering the backlog (--role all, concurrency {args.concurrency})...[/]"
    )
    # it delivers from its start-up on, before it answers on its port: no waiting here
    segue = start_segue(args, setup, "all", wait=False)
    server = segue.server
    try:
        window = Window(args, server, sink)
        profiler = maybe_profile(args, server, f"{run}-delivery")
        # segue's share of its core while it delivers: from its first delivery to its last
        first: tuple[float, ...] | None = None
        last: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
        deadline = time.monotonic() + args.timeout
        while True:
            if server.proc.poll() is not None:
                raise BenchError(f"segue exited ({server.proc.returncode}):\n{server.tail()}")
            stats = sink.stats()
            sample = (
                time.monotonic(),
                server.cpu_seconds(),
                sink.server.cpu_seconds(),
                main_thread_cpu(server.pid),
            )
            if stats["count"] and first is None:
                first = sample
            if stats["count"] >= args.events:
                last = sample
                break
            if time.monotonic() > deadline:
                raise BenchError(
                    f"segue delivered {stats['count']} of {args.events} in {args.timeout:g} s"
                )
            time.sleep(0.05)
        row.other_cpu, row.other_client_cpu, _ = window.others()
        if profiler:
            row.notes.append(profiler.stop())
        segue.wait_ready()
        row.succeeded = segue.wait_delivered(args.events)
        row.store = StoreFigures.read(segue)
        row.other_states = {
            k: v for k, v in segue.deliveries_by_state().items() if k != "succeeded"
        }
    finally:
        server.stop()
        os.sync()  # nor during the next phase
    if first is not None and last[0] > first[0]:  # shares while it delivered
        row.cpu = (last[1] - first[1]) / (last[0] - first[0])
        row.sink_cpu = (last[2] - first[2]) / (last[0] - first[0])
        row.main_thread_cpu = (last[3] - first[3]) / (last[0] - first[0])
    fill_throughput(row, sink, args.events)
    return row


def measure_bare_throughput(
    args: argparse.Namespace, work: Path, sink: Sink, body: str
) -> Throughput:
    row = Throughput("bare")
    body_file = work / "event.json"
    body_file.write_text(body, "utf-8")
    sink.reset()
    PROGRESS.print(
        f"[dim]  bare aiohttp loop: {args.events:,} events, concurrency {args.concurrency}...[/]"
    )
    argv = [sys.executable, str(BENCH / "bare_poster.py"), "--url", sink.url]
    argv += ["--count", str(args.events), "--concurrency", str(args.concurrency)]
    argv += ["--body-file", str(body_file), "--settings", json.dumps(SETTINGS)]
    argv += ["--wait-go", "--linger"]
    log = work / f"bare-{secrets.token_hex(2)}.log"
    server = Server("bare_poster", pinned(args.server_cpu, argv), log, server_env())
    try:
        wait_line(server, "READY", args.timeout)  # its requests are built
        quiet(args, sink.server)
        window = Window(args, server, sink)
        os.kill(server.pid, signal.SIGUSR1)
        line = wait_line(server, "BARE_JSON ", args.timeout)
        row.other_cpu, row.other_client_cpu, row.sink_cpu = window.others()
    finally:
        server.stop()
    result = json.loads(line.removeprefix("BARE_JSON "))
    row.cpu = result["cpu_s"] / result["elapsed_s"]
    errors = {k: v for k, v in result["statuses"].items() if k != "200"} | result["errors"]
    if errors:
        row.notes.append(f"not 200: {errors}")
    fill_throughput(row, sink, args.events)
    return row


def wait_line(server: Server, prefix: str, timeout: float) -> str:
    """The first line of the server's output that starts with ``prefix``."""
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise BenchError(f"{server.name} exited ({server.proc.returncode}):\n{server.tail()}")
        line = next((x for x in server.tail(5).splitlines() if x.startswith(prefix)), None)
        if line is not None:
            return line
        if time.monotonic() > deadline:
            raise BenchError(f"{server.name} did not print {prefix.strip()} in {timeout:g} s")
        time.sleep(0.02)


def fill_throughput(row: Throughput, sink: Sink, expected: int) -> None:
    stats = sink.stats()
    row.events, row.received, row.unique = expected, stats["count"], stats["unique"]
    row.seconds = (stats["last_ns"] - stats["first_ns"]) / 1e9
    row.events_s = (row.received - 1) / row.seconds if row.seconds > 0 else 0.0
    row.body_bytes = stats["bytes"] / max(1, stats["count"])
    row.data_ok = row.received == row.unique == expected and (
        row.succeeded is None or (row.succeeded == expected and not row.other_states)
    )
    if row.received != row.unique:
        row.notes.append(f"{row.received - row.unique} events arrived more than once")
    if not row.data_ok:
        row.notes.append(
            f"DATA CHECK FAILED: sink received {row.received} ({row.unique} unique) of"
            f" {expected}; /metrics succeeded {row.succeeded}, other states {row.other_states}"
        )
    note_noise(row.notes, row.other_cpu, row.other_client_cpu, row.sink_cpu)


def measure_latency(
    args: argparse.Namespace, work: Path, sink: Sink, history: SegueSetup | None
) -> Latency:
    """On a fresh data dir, or with ``history`` on the throughput phase's (its backlog
    delivered: that many events, deliveries and attempts already in the database)."""
    row = Latency(rate=args.rate, history=args.events if history else 0)
    setup = history or segue_setup(args, work, sink)
    if args.calibrate > 0:
        # the harness alone: this sender straight to the sink, at the same rate
        PROGRESS.print(f"[dim]  latency: calibrating, sender -> sink for {args.calibrate:g}s...[/]")
        sink.reset()
        direct = run_async(
            paced_send(sink.url, "Basic eDo=", args.rate, args.calibrate, "ccccc", sink.url)
        )
        rtt = sorted((s.ack_ns - s.send_ns) / 1e6 for s in direct if s.status == 200)
        row.harness_rtt_p50_ms, row.harness_rtt_p99_ms = percentile(rtt, 0.5), percentile(rtt, 0.99)
        row.harness_rtt_max_ms = rtt[-1] if rtt else 0.0
    segue = start_segue(args, setup, "all")
    try:
        sink.reset()
        if args.latency_warmup > 0:
            PROGRESS.print(
                f"[dim]  latency: warm-up, {args.latency_warmup:g}s at {args.rate:g}/s...[/]"
            )
            warm = run_async(segue.paced(args.rate, args.latency_warmup, "00000"))
            acked = sum(1 for s in warm if s.status == 200)
            sink.wait_for(acked, SETTLE_TIMEOUT_S)
            segue.wait_delivered(acked)
        sink.reset()
        base_succeeded = segue.deliveries("succeeded")
        store_before = StoreFigures.read(segue)
        quiet(args, segue.server)
        PROGRESS.print(
            f"[dim]  latency: {args.latency_duration:g}s at {args.rate:g} events/s,"
            " single /v1/track...[/]"
        )
        run = secrets.token_hex(3)[:5]
        window = Window(args, segue.server, sink)
        cpu_before, started = segue.server.cpu_seconds(), time.monotonic()
        main_before = main_thread_cpu(segue.server.pid)
        own_before = _own_cpu()
        profiler = maybe_profile(args, segue.server, f"{run}-latency")
        sent = run_async(segue.paced(args.rate, args.latency_duration, run))
        elapsed = time.monotonic() - started
        row.cpu = (segue.server.cpu_seconds() - cpu_before) / elapsed
        row.main_thread_cpu = (main_thread_cpu(segue.server.pid) - main_before) / elapsed
        row.sender_cpu = (_own_cpu() - own_before) / elapsed
        row.other_cpu, row.other_client_cpu, row.sink_cpu = window.others()
        if profiler:
            row.notes.append(profiler.stop())
        ok = [s for s in sent if s.status == 200]
        row.events, row.acked = len(sent), len(ok)
        stats = sink.wait_for(row.acked, SETTLE_TIMEOUT_S)
        row.succeeded = segue.wait_delivered(base_succeeded + row.acked) - base_succeeded
        row.store = StoreFigures.read(segue).since(store_before)
        arrivals = dict(sink.arrivals())
    finally:
        segue.server.stop()
        os.sync()
    row.received, row.unique = stats["count"], stats["unique"]
    latencies = sorted(
        (arrivals[s.message_id] - s.ack_ns) / 1e6 for s in ok if s.message_id in arrivals
    )
    whole = sorted(
        (arrivals[s.message_id] - s.send_ns) / 1e6 for s in ok if s.message_id in arrivals
    )
    acks = sorted((s.ack_ns - s.send_ns) / 1e6 for s in ok)
    lags = sorted((s.send_ns - s.due_ns) / 1e6 for s in sent)
    row.p50_ms, row.p90_ms, row.p99_ms = (percentile(latencies, q) for q in (0.5, 0.9, 0.99))
    row.max_ms, row.min_ms = (latencies[-1], latencies[0]) if latencies else (0.0, 0.0)
    row.send_to_sink_p50_ms, row.send_to_sink_p99_ms = (
        percentile(whole, 0.5),
        percentile(whole, 0.99),
    )
    row.ack_p50_ms, row.ack_p99_ms = percentile(acks, 0.5), percentile(acks, 0.99)
    row.lag_p99_ms, row.lag_max_ms = percentile(lags, 0.99), lags[-1] if lags else 0.0
    span = (sent[-1].send_ns - sent[0].send_ns) / 1e9 if len(sent) > 1 else 0.0
    row.achieved_rate = (len(sent) - 1) / span if span else 0.0
    row.data_ok = (
        row.acked == row.events == row.received == row.unique == len(latencies)
        and row.succeeded == row.acked
    )
    if not row.data_ok:
        row.notes.append(
            f"DATA CHECK FAILED: sent {row.events}, acknowledged {row.acked}, sink received"
            f" {row.received} ({row.unique} unique, {len(latencies)} of the acknowledged),"
            f" /metrics succeeded {row.succeeded}"
        )
    if row.min_ms < 0:
        below = sum(1 for x in latencies if x < 0)
        row.notes.append(
            f"{below} events reached the sink before their 200 reached the sender"
            f" (by up to {-row.min_ms:.2f} ms): the sender's core was busy"
        )
    if row.lag_p99_ms > LAG_LIMIT_MS or row.achieved_rate < 0.98 * row.rate:
        row.notes.append(
            f"the sender fell behind its schedule (p99 {row.lag_p99_ms:.2f} ms,"
            f" {row.achieved_rate:,.0f}/s of {row.rate:,.0f}/s): the load, not segue, may be"
            " the limit"
        )
    note_noise(row.notes, row.other_cpu, row.other_client_cpu, row.sink_cpu)
    return row


def run_round(args: argparse.Namespace, work: Path, index: int) -> Round:
    wanted = {s.strip() for s in args.only.split(",")}
    result = Round()
    sink = start_sink(args, work)
    try:
        setup = segue_setup(args, work, sink)  # the throughput phase's data dir
        body = json.dumps(track_event(message_id("fffff", 0)))  # if segue does not run
        if "throughput" in wanted:
            PROGRESS.print(f"[dim]round {index + 1}: throughput[/]")
            result.segue = measure_segue_throughput(args, sink, setup)
            body = sink.sample_body()  # the bare loop sends what segue delivered
            result.bare = measure_bare_throughput(args, work, sink, body)
        if "latency" in wanted:
            PROGRESS.print(f"[dim]round {index + 1}: latency[/]")
            history = setup if args.latency_history else None
            result.latency = measure_latency(args, work, sink, history)
    finally:
        sink.server.stop()
    return result


# -- verdicts and output ------------------------------------------------------------------
def verdicts(result: Round) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if result.bare and result.segue and result.bare.events_s:
        share = result.segue.events_s / result.bare.events_s
        out["throughput_share_of_bare"] = {
            "value": share,
            "target": THROUGHPUT_TARGET,
            "pass": share >= THROUGHPUT_TARGET,
            "shortfall": max(0.0, 1 - share / THROUGHPUT_TARGET),
        }
    if result.latency and result.latency.acked:
        for name, value, target in (
            ("latency_p50_ms", result.latency.p50_ms, P50_TARGET_MS),
            ("latency_p99_ms", result.latency.p99_ms, P99_TARGET_MS),
        ):
            out[name] = {
                "value": value,
                "target": target,
                "pass": value <= target,
                "excess": max(0.0, value / target - 1),
            }
    return out


def all_passed(rounds: list[Round]) -> bool:
    return all(v["pass"] for r in rounds for v in verdicts(r).values())


def data_ok(rounds: list[Round]) -> bool:
    rows: list[Throughput | Latency | None] = []
    for r in rounds:
        rows += [r.bare, r.segue, r.latency]
    return all(row.data_ok for row in rows if row is not None)


def _mark(verdict: dict[str, Any] | None) -> str:
    if verdict is None:
        return ""
    return "[green]PASS[/]" if verdict["pass"] else "[red]MISS[/]"


def _rows(result: Round, args: argparse.Namespace) -> list[tuple[str, ...]]:
    marks = verdicts(result)
    rows: list[tuple[str, ...]] = []
    if result.bare:
        b = result.bare
        rows.append(
            (
                f"bare aiohttp POST loop (c={args.concurrency})",
                f"{b.events_s:,.0f} events/s",
                "baseline",
                "",
                "",
                f"{b.cpu:.0%} / {b.sink_cpu:.0%}",
                f"{b.other_cpu:.0%} / {b.other_client_cpu:.0%}",
                _data(b.data_ok, f"{b.received:,} / {b.events:,} at the sink"),
            )
        )
    if result.segue:
        s, v = result.segue, marks.get("throughput_share_of_bare")
        rows.append(
            (
                f"segue delivery, backlog of {s.events:,} (c={args.concurrency})",
                f"{s.events_s:,.0f} events/s",
                f">= {THROUGHPUT_TARGET:.0%} of bare",
                "" if v is None else f"{v['value']:.0%} of bare",
                _mark(v),
                f"{s.cpu:.0%} / {s.sink_cpu:.0%}",
                f"{s.other_cpu:.0%} / {s.other_client_cpu:.0%}",
                _data(
                    s.data_ok,
                    f"{s.received:,} / {s.events:,} at the sink, {s.succeeded:,} succeeded",
                ),
            )
        )
    if result.latency:
        lat = result.latency
        cpu = f"{lat.cpu:.0%} / {lat.sink_cpu:.0%}"
        others = f"{lat.other_cpu:.0%} / {lat.other_client_cpu:.0%}"
        history = f", {lat.history:,} events of history" if lat.history else ""
        check = _data(
            lat.data_ok, f"{lat.received:,} / {lat.acked:,} acked, {lat.succeeded:,} succeeded"
        )
        for name, label, value, target in (
            ("latency_p50_ms", "p50", lat.p50_ms, P50_TARGET_MS),
            ("latency_p99_ms", "p99", lat.p99_ms, P99_TARGET_MS),
            ("", "max", lat.max_ms, None),
        ):
            v = marks.get(name)
            rows.append(
                (
                    f"segue ack -> sink latency {label} @ {lat.rate:,.0f}/s{history}",
                    f"{value:.2f} ms",
                    "" if target is None else f"<= {target:g} ms",
                    "" if v is None else f"{v['value'] / v['target']:.2f}x target",
                    _mark(v),
                    cpu if label == "p50" else "",
                    others if label == "p50" else "",
                    check if label == "p50" else "",
                )
            )
    return rows


def cpu_us(cores: float, per_second: float) -> str:
    return f"{cores / per_second * 1e6:,.0f}" if per_second else "-"


def _data(ok: bool, text: str) -> str:
    return f"[green]ok[/] {text}" if ok else f"[red]FAILED[/] {text}"


COLUMNS = (
    ("scenario", "left"),
    ("figure", "right"),
    ("target", "left"),
    ("ratio", "right"),
    ("result", "center"),
    ("CPU: measured / sink", "right"),
    ("others' CPU", "right"),
    ("data check", "left"),
)


def render(console: Console, rounds: list[Round], args: argparse.Namespace) -> None:
    info = machine()
    table = Table(
        title=f"segue delivery benchmark: {info['nproc']} CPUs ({info['cpu']}),"
        f" Python {info['python']}, aiohttp {aiohttp.__version__}",
        title_justify="left",
    )
    for name, justify in COLUMNS:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for index, result in enumerate(rounds):
        if len(rounds) > 1:
            table.add_section()
            table.add_row(f"[dim]round {index + 1}[/]")
        for row in _rows(result, args):
            table.add_row(*row)
    if len(rounds) > 1:
        summarise(table, rounds)
    console.print(table)
    console.print(
        f"measured process (segue or the bare loop) on CPU {args.server_cpu}; sink, load and"
        f" this script on CPU {args.client_cpu}. CPU: share of a core used by the measured"
        " process / by the sink; others' CPU: shares of the measured core / the sink's core"
        " that other processes took (noise on a shared machine)"
    )
    for index, result in enumerate(rounds):
        where = f"round {index + 1}, " if len(rounds) > 1 else ""
        if (segue := result.segue) and (bare := result.bare):
            console.print(
                f"{where}throughput: body {segue.body_bytes:,.0f} B (segue) /"
                f" {bare.body_bytes:,.0f} B (bare); segue delivered the backlog in"
                f" {segue.seconds:.1f} s, the bare loop in {bare.seconds:.1f} s; CPU per"
                f" delivered event: segue {cpu_us(segue.cpu, segue.events_s)} µs (event loop"
                f" thread {cpu_us(segue.main_thread_cpu or 0, segue.events_s)}, other threads"
                f" {cpu_us(segue.cpu - (segue.main_thread_cpu or 0), segue.events_s)}),"
                f" bare loop {cpu_us(bare.cpu, bare.events_s)} µs"
            )
            if segue.store:
                console.print(
                    f"{where}throughput, segue's store: "
                    + segue.store.describe(segue.seconds, segue.events)
                )
        if lat := result.latency:
            console.print(
                f"{where}latency: {lat.events:,} events in {lat.events / lat.rate:g} s, sender at"
                f" {lat.achieved_rate:,.0f}/s (lag behind schedule p99 {lat.lag_p99_ms:.2f} ms,"
                f" max {lat.lag_max_ms:.2f}; its CPU {lat.sender_cpu:.0%}); /v1/track answer"
                f" p50 {lat.ack_p50_ms:.2f} ms, p99 {lat.ack_p99_ms:.2f}; send -> sink p50"
                f" {lat.send_to_sink_p50_ms:.2f} ms, p99 {lat.send_to_sink_p99_ms:.2f};"
                f" ack -> sink p90 {lat.p90_ms:.2f} ms, min {lat.min_ms:.2f}; segue's CPU"
                f" {lat.cpu:.0%} (event loop thread {lat.main_thread_cpu:.0%}); the harness"
                f" alone (sender -> sink -> sender, no segue): p50 {lat.harness_rtt_p50_ms:.2f} ms,"
                f" p99 {lat.harness_rtt_p99_ms:.2f}, max {lat.harness_rtt_max_ms:.2f}"
            )
            if lat.store:
                seconds = lat.events / lat.rate
                console.print(
                    f"{where}latency, segue's store: " + lat.store.describe(seconds, lat.acked)
                )
        for phase in (result.bare, result.segue, result.latency):
            for note in phase.notes if phase else []:
                name = phase.scenario if isinstance(phase, Throughput) else "latency"
                console.print(f"[yellow]{where}{name}:[/] {note}")


def summarise(table: Table, rounds: list[Round]) -> None:
    table.add_section()
    table.add_row("[bold]median of rounds[/]")
    med = statistics.median
    bare = [r.bare.events_s for r in rounds if r.bare]
    segue = [r.segue.events_s for r in rounds if r.segue]
    shares = [v["value"] for r in rounds if (v := verdicts(r).get("throughput_share_of_bare"))]
    if bare:
        table.add_row("bare aiohttp POST loop", f"{med(bare):,.0f} events/s", "baseline")
    if segue:
        share = f"{med(shares):.0%} ({min(shares):.0%}-{max(shares):.0%})" if shares else ""
        ok = shares and med(shares) >= THROUGHPUT_TARGET
        table.add_row(
            "segue delivery",
            f"{med(segue):,.0f} events/s",
            f">= {THROUGHPUT_TARGET:.0%} of bare",
            share,
            "" if not shares else ("[green]PASS[/]" if ok else "[red]MISS[/]"),
        )
    lats = [r.latency for r in rounds if r.latency]
    if lats:
        for label, values, target in (
            ("p50", [x.p50_ms for x in lats], P50_TARGET_MS),
            ("p99", [x.p99_ms for x in lats], P99_TARGET_MS),
            ("max", [x.max_ms for x in lats], None),
        ):
            value = med(values)
            table.add_row(
                f"segue ack -> sink latency {label}",
                f"{value:.2f} ms ({min(values):.2f}-{max(values):.2f})",
                "" if target is None else f"<= {target:g} ms",
                "" if target is None else f"{value / target:.2f}x target",
                "" if target is None else ("[green]PASS[/]" if value <= target else "[red]MISS[/]"),
            )


def report_json(rounds: list[Round], args: argparse.Namespace) -> str:
    return json.dumps(
        {
            "machine": machine() | {"aiohttp": aiohttp.__version__},
            "settings": {k: v for k, v in vars(args).items() if k not in ("json", "json_out")},
            "targets": {
                "throughput_share_of_bare": THROUGHPUT_TARGET,
                "latency_p50_ms": P50_TARGET_MS,
                "latency_p99_ms": P99_TARGET_MS,
            },
            "rounds": [asdict(r) | {"verdicts": verdicts(r)} for r in rounds],
            "all_targets_met": all_passed(rounds),
            "data_ok": data_ok(rounds),
        },
        indent=2,
    )


# -- main -----------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add(
        "--events",
        type=int,
        default=50_000,
        help="the backlog segue and the bare loop deliver [50000]",
    )
    add(
        "--batch-size",
        type=int,
        default=100,
        help="events per /v1/batch request when preloading [100]",
    )
    add(
        "--concurrency",
        type=int,
        default=64,
        help="the destination's concurrency option and the bare loop's coroutines [64]",
    )
    add("--rate", type=float, default=1000, help="events/s of the latency run [1000]")
    add("--latency-duration", type=float, default=15, help="seconds of the latency run [15]")
    add("--latency-warmup", type=float, default=2, help="seconds of warm-up before it [2]")
    add(
        "--calibrate",
        type=float,
        default=3,
        help="seconds of sender -> sink round trips (no segue) before the latency run,"
        " to show what the harness itself adds; 0: don't [3]",
    )
    add(
        "--latency-history",
        action="store_true",
        help="run the latency phase on the throughput phase's database (--events events"
        " delivered, with their deliveries and attempts) instead of a fresh one",
    )
    add("--timeout", type=float, default=180, help="longest a throughput phase may take, s [180]")
    add("--only", default="throughput,latency", help="a subset of throughput,latency [both]")
    add("--rounds", type=int, default=1, help="run everything N times, then the medians [1]")
    add("--server-cpu", type=int, default=0, help="CPU segue and the bare loop are pinned to [0]")
    add("--client-cpu", type=int, default=1, help="CPU of the sink, the sender and this script [1]")
    add("--no-pin", action="store_true", help="do not pin with taskset")
    add(
        "--wait-quiet",
        type=float,
        default=30,
        metavar="S",
        help="before each measured phase,"
        " wait up to S seconds while other processes keep more than 10%% of either core busy;"
        " 0: don't [30]",
    )
    add("--profile", metavar="DIR", help="py-spy record segue's measured phases into DIR")
    add(
        "--profile-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra py-spy record argument, e.g. --profile-arg=--idle; may be repeated",
    )
    add(
        "--segue-command",
        metavar="CMD",
        help="how to start segue instead of the venv's"
        " `segue` (to try a modified build); `serve ...` is appended",
    )
    add("--json", action="store_true", help="print JSON instead of a table")
    add("--json-out", metavar="FILE", help="also write the JSON report to FILE")
    add("--fail-on-miss", action="store_true", help="exit 3 when a target is missed")
    args = parser.parse_args(argv)
    if args.latency_history and "throughput" not in args.only:
        parser.error("--latency-history needs the throughput phase (its database)")
    if args.no_pin:
        args.server_cpu = args.client_cpu = None
    return args


def preflight(args: argparse.Namespace) -> None:
    missing = []
    if args.server_cpu is not None and shutil.which("taskset") is None:
        missing.append("taskset: install util-linux, or pass --no-pin")
    for module in ("aiohttp", "uvloop", "orjson", "segue"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"Python module {module}: run this with the project's venv")
    if args.profile and not (
        shutil.which("py-spy") or (Path(sys.executable).parent / "py-spy").exists()
    ):
        missing.append("py-spy for --profile: .venv/bin/pip install py-spy")
    if missing:
        for line in missing:
            PROGRESS.print(f"[red]missing:[/] {line}")
        sys.exit(2)
    if args.server_cpu is not None and (os.cpu_count() or 1) < 2:
        PROGRESS.print("[yellow]one CPU only: not pinning; everything shares it[/]")
        args.server_cpu = args.client_cpu = None
    if args.client_cpu is not None:
        os.sched_setaffinity(0, {args.client_cpu})  # this script sends the latency load


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preflight(args)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started with SIGINT ignored (`&`)
    work = Path(tempfile.mkdtemp(prefix="segue-bench-delivery-"))
    rounds: list[Round] = []
    try:
        for index in range(args.rounds):
            rounds.append(run_round(args, work, index))
    except KeyboardInterrupt:
        PROGRESS.print("[yellow]interrupted: servers stopped[/]")
        return 130
    except BenchError as exc:
        PROGRESS.print(f"[red]benchmark failed:[/] {exc}")
        return 1
    finally:
        for profiler in list(Profiler.live):
            profiler.stop()
        Server.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    if args.json_out:
        Path(args.json_out).write_text(report_json(rounds, args) + "\n", "utf-8")
    if args.json:
        print(report_json(rounds, args))
    else:
        render(Console(width=max(shutil.get_terminal_size().columns, 160)), rounds, args)
    if not data_ok(rounds):
        return 1
    return 3 if args.fail_on_miss and not all_passed(rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
