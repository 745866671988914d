"""Isolation benchmark: a healthy destination's latency beside a hanging and a trickling one.

    .venv/bin/python bench/isolation.py            # ~1 min: both phases, a table
    .venv/bin/python bench/isolation.py --json     # machine-readable

Budget (shared/DESIGN.md): "a healthy destination's p99 stays under 1 s beside a
hanging, trickling or backlogged neighbour". Two phases, each on a fresh `segue serve`
(temp data dir, durable SQLite) pinned to one core; bench/sink.py (the healthy
endpoint), the bad neighbours and this script (the sender) share the other core.

- A, baseline: one inline `endpoint` destination `sink` (default options: timeout 5 s,
  concurrency 32) on source `bench`.
- B: the same, plus `hanging` (reads requests, never answers) and `trickle` (answers
  `HTTP/1.1 200 OK` a byte a second, headers and all), default options, on source
  `backlog`, into which --backlog events are ingested (/v1/batch, --role ingest) before
  segue restarts with --role all: each bad destination starts with that backlog.

Each phase: --warmup, then single /v1/track events to `bench` at --rate/s for --duration
s on a schedule (bench/delivery.py's sender); latency = sink arrival - the time the 200
came back (CLOCK_MONOTONIC in both processes). Checked: every acknowledged event reached
the sink once and /metrics counts it as succeeded. At the end of B: requests each bad
neighbour got, and segue's view of their deliveries (admin API stats). Verdict: B's
p99 < 1 s. All on 127.0.0.1, every wait bounded, every process stopped on exit/Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from base64 import b64encode
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import delivery as dl
from benchkit import (
    HOST,
    BenchError,
    Server,
    free_port,
    http,
    machine,
    metric_value,
    pinned,
    server_env,
)
from rich.console import Console
from rich.table import Table
from sink import _content_length, _json

PROGRESS = Console(stderr=True)
P99_LIMIT_MS = 1000.0
HEALTHY = "sink"
BAD = ("hanging", "trickle")
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"  # what `trickle` sends, 1 B/s


# -- the bad neighbours: one subprocess, `isolation.py --neighbours` ----------------------
@dataclass
class Counts:
    connections: int = 0
    requests: int = 0  # complete request heads (and bodies) received
    open: int = 0  # connections open now
    bytes_sent: int = 0


class Neighbour(asyncio.Protocol):
    """Reads requests and never answers (`hanging`) or answers a byte a second (`trickle`);
    ``GET /_stats`` is answered at once with the counters."""

    def __init__(self, counts: Counts, trickle: bool) -> None:
        self.counts, self.trickle = counts, trickle
        self.buffer = bytearray()
        self.owed = 0  # responses still to trickle
        self.control = False  # a connection of this script's (GET /_stats): not counted
        self.task: asyncio.Task[None] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.counts.connections += 1
        self.counts.open += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.counts.open -= not self.control
        if self.task:
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end])
            total = end + 4 + _content_length(head)
            if len(self.buffer) < total:
                return
            del self.buffer[:total]
            self._request(head)

    def _request(self, head: bytes) -> None:
        assert self.transport is not None
        if head.split(b" ", 2)[1:2] == [b"/_stats"]:
            if not self.control:
                self.control = True
                self.counts.connections -= 1
                self.counts.open -= 1
            self.transport.write(_json(asdict(self.counts)))
            return
        self.counts.requests += 1
        if self.trickle:
            self.owed += 1
            if self.task is None or self.task.done():
                self.task = asyncio.get_running_loop().create_task(self._trickle())

    async def _trickle(self) -> None:
        assert self.transport is not None
        while self.owed:
            for at in range(len(RESPONSE)):
                if self.transport.is_closing():
                    return
                self.transport.write(RESPONSE[at : at + 1])
                self.counts.bytes_sent += 1
                await asyncio.sleep(1.0)
            self.owed -= 1


async def serve_neighbours(hanging_port: int, trickle_port: int) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    for port, trickle in ((hanging_port, False), (trickle_port, True)):
        make = functools.partial(Neighbour, Counts(), trickle)
        servers.append(await loop.create_server(make, HOST, port, backlog=1024))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"neighbours: hanging on {hanging_port}, trickle on {trickle_port}", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def start_neighbours(args: argparse.Namespace, work: Path) -> dict[str, str]:
    """Their base URLs, by destination name."""
    ports = [free_port(), free_port()]
    argv = [sys.executable, __file__, "--neighbours", *map(str, ports)]
    server = Server(
        "neighbours", pinned(args.client_cpu, argv), work / "neighbours.log", server_env()
    )
    bases = {name: f"http://{HOST}:{port}" for name, port in zip(BAD, ports, strict=True)}
    server.wait_ready(lambda: all(http("GET", f"{b}/_stats")[0] == 200 for b in bases.values()))
    return bases


def neighbour_counts(base: str) -> dict[str, int]:
    status, body = http("GET", f"{base}/_stats")
    if status != 200:
        raise BenchError(f"a neighbour answered {status} to /_stats")
    return dict(json.loads(body))


# -- segue ----------------------------------------------------------------------------
@dataclass
class Setup(dl.SegueSetup):
    backlog_key: str = ""


def phase_setup(work: Path, sink: dl.Sink, bad: dict[str, str]) -> Setup:
    """A fresh data dir and config: `sink` on source `bench`, ``bad`` on `backlog`."""
    data = work / f"segue-{secrets.token_hex(3)}"
    data.mkdir()
    keys = [secrets.token_hex(16) for _ in range(2)]
    text = '[egress]\nallow = ["127.0.0.0/8"]\nallow_http = true\n'
    for name, key in zip(("bench", "backlog"), keys, strict=True):
        text += f'\n[[sources]]\nname = "{name}"\nwrite_key = "{key}"\n'
    for name, url, source in [(HEALTHY, sink.url, "bench")] + [
        (name, f"{base}/hook", "backlog") for name, base in bad.items()
    ]:
        text += f'\n[[destinations]]\nname = "{name}"\nendpoint = "{url}"\nsources = ["{source}"]\n'
    config = data / "segue.toml"
    config.write_text(text, "utf-8")
    token = "sga_bench_" + secrets.token_hex(16)
    return Setup(data, config, keys[0], token, backlog_key=keys[1])


def preload_backlog(args: argparse.Namespace, setup: Setup) -> None:
    """--backlog events into source `backlog`, deliveries queued, none sent (--role ingest)."""
    PROGRESS.print(f"[dim]  ingesting a backlog of {args.backlog:,} events (--role ingest)...[/]")
    ingest = dl.start_segue(args, setup, "ingest")
    try:
        auth = "Basic " + b64encode(f"{setup.backlog_key}:".encode()).decode()
        backlog = dataclasses.replace(ingest, auth=auth)
        acked = dl.run_async(dl.preload(backlog, args.backlog, args.batch_size, "bbbbb"))
        stored = ingest.received()
    finally:
        ingest.server.stop()
    if acked != args.backlog or stored != args.backlog:
        raise BenchError(f"backlog: {acked} acknowledged, {stored} stored of {args.backlog}")


def healthy_succeeded(segue: dl.Segue) -> int:
    text = segue.metrics()
    return int(metric_value(text, "segue_deliveries_total", destination=HEALTHY, state="succeeded"))


def wait_succeeded(segue: dl.Segue, count: int) -> int:
    deadline = time.monotonic() + dl.SETTLE_TIMEOUT_S
    while (done := healthy_succeeded(segue)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return done


def segue_view(segue: dl.Segue, name: str) -> dict[str, int]:
    """The admin API's stats (1h) for destination ``name``, and its executing deliveries."""
    auth = {"Authorization": f"Bearer {segue.token}"}
    api = f"{segue.base}/api/v1"
    status, body = http("GET", f"{api}/destinations/{name}/stats?window=1h", **auth)
    query = f"destination={name}&state=executing&limit=1000"
    status2, listed = http("GET", f"{api}/deliveries?{query}", **auth)
    if status != 200 or status2 != 200:
        raise BenchError(f"admin API on {name}: {status} {body[:200]!r} / {status2}")
    doc = json.loads(body)
    view = {k: int(doc[k]) for k in ("pending", "retrying", "discarded", "expired", "delivered")}
    return view | {"executing": len(json.loads(listed)["deliveries"])}


# -- a phase --------------------------------------------------------------------------
@dataclass
class Phase:
    name: str
    events: int = 0
    acked: int = 0
    received: int = 0
    unique: int = 0
    succeeded: int = 0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    min_ms: float = 0.0
    ack_p99_ms: float = 0.0  # the /v1/track answer time, as the sender saw it
    lag_p99_ms: float = 0.0  # the sender's lateness against its schedule
    cpu: float = 0.0  # segue's share of its core while the load ran
    other_cpu: float = 0.0  # other processes' share of segue's core / of the sink's
    other_client_cpu: float = 0.0
    neighbours: dict[str, dict[str, int]] = field(default_factory=dict)
    data_ok: bool = False
    notes: list[str] = field(default_factory=list)


def run_phase(args: argparse.Namespace, work: Path, sink: dl.Sink, bad: dict[str, str]) -> Phase:
    name = "B: beside hanging + trickle" if bad else "A: alone (baseline)"
    PROGRESS.print(f"[dim]phase {name}[/]")
    setup = phase_setup(work, sink, bad)
    if bad:
        preload_backlog(args, setup)
    segue = dl.start_segue(args, setup, "all")
    try:
        warm_up(args, segue, sink)
        return measure(args, segue, sink, bad, Phase(name))
    finally:
        segue.server.stop()
        os.sync()


def warm_up(args: argparse.Namespace, segue: dl.Segue, sink: dl.Sink) -> None:
    if args.warmup > 0:
        PROGRESS.print(f"[dim]  warm-up, {args.warmup:g}s at {args.rate:g}/s...[/]")
        warm = dl.run_async(segue.paced(args.rate, args.warmup, "00000"))
        acked = sum(1 for s in warm if s.status == 200)
        sink.wait_for(acked, dl.SETTLE_TIMEOUT_S)
        wait_succeeded(segue, acked)
    sink.reset()


def measure(
    args: argparse.Namespace, segue: dl.Segue, sink: dl.Sink, bad: dict[str, str], row: Phase
) -> Phase:
    base = healthy_succeeded(segue)
    dl.quiet(args, segue.server)
    before = {name: neighbour_counts(url) for name, url in bad.items()}
    PROGRESS.print(f"[dim]  {args.duration:g}s at {args.rate:g} events/s, single /v1/track...[/]")
    window = dl.Window(args, segue.server, sink)
    cpu0, started = segue.server.cpu_seconds(), time.monotonic()
    profiler = dl.maybe_profile(args, segue.server, row.name[0])
    sent = dl.run_async(segue.paced(args.rate, args.duration, secrets.token_hex(3)[:5]))
    row.cpu = (segue.server.cpu_seconds() - cpu0) / (time.monotonic() - started)
    row.other_cpu, row.other_client_cpu, sink_cpu = window.others()
    dl.note_noise(row.notes, row.other_cpu, row.other_client_cpu, sink_cpu)
    if profiler:
        row.notes.append(profiler.stop())
    for name, url in bad.items():
        now = neighbour_counts(url)
        row.neighbours[name] = segue_view(segue, name) | {
            "requests_total": now["requests"],
            "requests_measured": now["requests"] - before[name]["requests"],
            "open_connections": now["open"],
            "bytes_sent": now["bytes_sent"],
        }
    ok = [s for s in sent if s.status == 200]
    stats = sink.wait_for(len(ok), dl.SETTLE_TIMEOUT_S)
    row.succeeded = wait_succeeded(segue, base + len(ok)) - base
    fill(row, sent, ok, stats, dict(sink.arrivals()))
    return row


def fill(
    row: Phase,
    sent: list[dl.Sent],
    ok: list[dl.Sent],
    stats: dict[str, int],
    arrivals: dict[str, int],
) -> None:
    lat = sorted((arrivals[s.message_id] - s.ack_ns) / 1e6 for s in ok if s.message_id in arrivals)
    acks = sorted((s.ack_ns - s.send_ns) / 1e6 for s in ok)
    lags = sorted((s.send_ns - s.due_ns) / 1e6 for s in sent)
    row.events, row.acked = len(sent), len(ok)
    row.received, row.unique = stats["count"], stats["unique"]
    row.p50_ms, row.p95_ms, row.p99_ms = (dl.percentile(lat, q) for q in (0.5, 0.95, 0.99))
    row.max_ms, row.min_ms = (lat[-1], lat[0]) if lat else (0.0, 0.0)
    row.ack_p99_ms, row.lag_p99_ms = dl.percentile(acks, 0.99), dl.percentile(lags, 0.99)
    row.data_ok = row.events == row.acked == row.received == row.unique == len(lat)
    row.data_ok = row.data_ok and row.succeeded == row.acked
    if not row.data_ok:
        row.notes.append(
            f"DATA CHECK FAILED: sent {row.events}, acknowledged {row.acked}, sink received"
            f" {row.received} ({row.unique} unique, {len(lat)} of the acknowledged),"
            f" /metrics succeeded {row.succeeded}"
        )
    if early := sum(1 for x in lat if x < 0):
        row.notes.append(
            f"{early} events reached the sink before their 200 reached the sender (by up to"
            f" {-row.min_ms:.2f} ms): the sender's core was busy"
        )


# -- output ---------------------------------------------------------------------------
def verdict(a: Phase, b: Phase) -> dict[str, Any]:
    ratio = b.p99_ms / a.p99_ms if a.p99_ms > 0 else None
    return {"p99_ms": b.p99_ms, "ratio": ratio, "pass": b.p99_ms < P99_LIMIT_MS}


def new_table(title: str, columns: str) -> Table:
    """A table whose first column is left-aligned, the others right-aligned."""
    table = Table(title=title, title_justify="left")
    for index, name in enumerate(columns.split("|")):
        table.add_column(name, justify="right" if index else "left")
    return table


def render(console: Console, phases: list[Phase], args: argparse.Namespace) -> None:
    a, b = phases
    v = verdict(a, b)
    title = f"segue isolation: {HEALTHY} at {args.rate:g} events/s for {args.duration:g} s"
    table = new_table(
        title, "phase|events (recv / acked)|p50 ms|p95 ms|p99 ms|max ms|p99 / A's|data"
    )
    for row in phases:
        ratio = "1.00x" if row is a else (f"{v['ratio']:.2f}x" if v["ratio"] else "-")
        figures = (f"{x:.2f}" for x in (row.p50_ms, row.p95_ms, row.p99_ms, row.max_ms))
        data = "[green]ok[/]" if row.data_ok else "[red]FAILED[/]"
        table.add_row(row.name, f"{row.received:,} / {row.acked:,}", *figures, ratio, data)
    console.print(table)
    mark = "[green]PASS[/]" if v["pass"] else "[red]MISS[/]"
    console.print(f"p99 < 1 s beside the bad neighbours: {mark} ({b.p99_ms:,.2f} ms)")
    title = f"bad neighbours at the end of phase B (backlog {args.backlog:,} each)"
    columns = "destination|requests (measured / total)|open conns|pending incl. executing"
    table = new_table(title, columns + "|executing|retrying|discarded|delivered")
    keys = ("pending", "executing", "retrying", "discarded", "delivered")
    for name, n in b.neighbours.items():
        requests = f"{n['requests_measured']:,} / {n['requests_total']:,}"
        table.add_row(name, requests, str(n["open_connections"]), *(f"{n[k]:,}" for k in keys))
    console.print(table)
    for row in phases:
        console.print(
            f"{row.name}: segue CPU {row.cpu:.0%} of its core; /v1/track answer p99"
            f" {row.ack_p99_ms:.2f} ms; sender lag p99 {row.lag_p99_ms:.2f} ms; others' CPU"
            f" {row.other_cpu:.0%} (segue's core) / {row.other_client_cpu:.0%} (sink's core)"
        )
        for note in row.notes:
            console.print(f"[yellow]{row.name}:[/] {note}")


def report_json(phases: list[Phase], args: argparse.Namespace) -> str:
    try:
        info = machine()
    except OSError:  # machine() asks wrk for its version
        info = {"nproc": os.cpu_count(), "python": sys.version.split()[0]}
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "neighbours")}
    doc = {"machine": info, "settings": settings, "phases": [asdict(p) for p in phases]}
    return json.dumps(doc | {"verdict": verdict(*phases)}, indent=2)


# -- main -----------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--rate", type=float, default=200, help="events/s to the healthy source [200]")
    add("--duration", type=float, default=20, help="seconds of measured load per phase [20]")
    add("--warmup", type=float, default=2, help="seconds of load before each measurement [2]")
    add("--backlog", type=int, default=2000, help="events queued for each bad neighbour [2000]")
    add("--batch-size", type=int, default=100, help="events per /v1/batch when preloading [100]")
    add("--server-cpu", type=int, default=0, help="CPU segue is pinned to [0]")
    add("--client-cpu", type=int, default=1, help="CPU of the sink, neighbours, sender [1]")
    add("--no-pin", action="store_true", help="do not pin with taskset")
    quiet_help = "wait up to S s for a quiet machine before each phase [15]"
    add("--wait-quiet", type=float, default=15, metavar="S", help=quiet_help)
    add("--segue-command", metavar="CMD", help="start segue as CMD (`serve ...` is appended)")
    add("--profile", metavar="DIR", help="py-spy record segue's measured phases into DIR")
    add("--profile-arg", action="append", default=[], metavar="ARG", help="extra py-spy argument")
    add("--json", action="store_true", help="print JSON instead of tables")
    add("--fail-on-miss", action="store_true", help="exit 3 when phase B's p99 is 1 s or more")
    add("--neighbours", nargs=2, type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.no_pin:
        args.server_cpu = args.client_cpu = None
    return args


def run(args: argparse.Namespace, work: Path) -> list[Phase]:
    sink = dl.start_sink(args, work)
    bad = start_neighbours(args, work)
    return [run_phase(args, work, sink, {}), run_phase(args, work, sink, bad)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.neighbours:
        with contextlib.suppress(KeyboardInterrupt):
            dl.run_async(serve_neighbours(*args.neighbours))
        return 0
    dl.preflight(args)
    signal.signal(signal.SIGTERM, dl._interrupt)
    signal.signal(signal.SIGINT, dl._interrupt)
    work = Path(tempfile.mkdtemp(prefix="segue-bench-isolation-"))
    try:
        phases = run(args, work)
    except KeyboardInterrupt:
        PROGRESS.print("[yellow]interrupted: servers stopped[/]")
        return 130
    except BenchError as exc:
        PROGRESS.print(f"[red]benchmark failed:[/] {exc}")
        return 1
    finally:
        for profiler in list(dl.Profiler.live):
            profiler.stop()
        Server.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(report_json(phases, args))
    else:
        render(Console(width=max(shutil.get_terminal_size().columns, 140)), phases, args)
    if not all(p.data_ok for p in phases):
        return 1
    return 3 if args.fail_on_miss and not verdict(*phases)["pass"] else 0


if __name__ == "__main__":
    sys.exit(main())
