"""Ingest benchmark: segue's Tracking API against a bare ASGI app, in one run.

    .venv/bin/python bench/ingest.py                 # the budget check (~1.5-2 min)
    .venv/bin/python bench/ingest.py --rounds 3      # the same, three times over
    .venv/bin/python bench/ingest.py --json          # machine-readable
    .venv/bin/python bench/ingest.py --database 'sqlite:///{data}/x.db?synchronous=normal'

With wrk (Debian package `wrk`) pinned to one core and the server to the other, the
same connections and durations for every scenario, it measures:

- bare /v1/track: bench/bare_app.py on uvicorn (httptools, uvloop, 1 worker, no
  access log): reads the body, parses it with orjson, answers {"success":true};
- segue /v1/track: `segue serve` (its own process, a fresh temp data dir, default
  durable SQLite settings), one ~600-byte analytics-python track event a request,
  Basic auth write key; reported as a share of the bare app's req/s (target >= 60 %);
- segue /v1/batch: 100 such events a request (target >= 50,000 events/s);
- bare + SQLite commit, a reference row without a target: bench/bare_durable_app.py,
  the bare app committing each body through segue's group-commit writer before it
  answers (the floor for anything that acknowledges only what is durable).

For segue it then checks that nothing was dropped: the events of every 200 response
are in the store (admin API event count, /metrics segue_events_received_total, the
newest stored event is from this run), and reports the group-commit size
(segue_store_commit_jobs: jobs per commit). Everything runs on 127.0.0.1, every step
has a time limit, and every process started here is stopped on exit, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchkit import (
    BENCH,
    HOST,
    BenchError,
    Server,
    WrkOptions,
    WrkResult,
    free_port,
    http,
    machine_busy_seconds,
    parse_metrics,
    pinned,
    run_wrk,
    server_env,
)
from ingest_report import Row, all_passed, data_ok, render, report_json
from rich.console import Console

LUA = BENCH / "ingest.lua"
PROGRESS = Console(stderr=True)  # progress and warnings; the results go to stdout
SETTLE_TIMEOUT_S = 20.0
SATURATED = 0.95  # a baseline using less of its CPU than this was not the bottleneck
NOISY = 0.10  # other processes using more than this share of a CPU make a run suspect
BARE_AUTH = "Basic " + b64encode(b"bench:").decode()  # sent, but the bare app ignores it


# -- segue's own view: /metrics and the admin API ----------------------------
@dataclass
class Snapshot:
    received: float = 0.0
    duplicates: float = 0.0
    rejected: float = 0.0
    commit_jobs_sum: float = 0.0
    commits: float = 0.0
    commit_seconds_sum: float = 0.0
    stored: int = 0

    def events(self) -> tuple[float, float, float, int]:
        return self.received, self.duplicates, self.rejected, self.stored


@dataclass
class Segue:
    base: str
    token: str
    source: str
    auth: str  # the Authorization header for the Tracking API
    server: Server

    def _admin(self, path: str) -> Any:
        status, body = http(
            "GET", f"{self.base}/api/v1/{path}", Authorization=f"Bearer {self.token}"
        )
        if status != 200:
            raise BenchError(f"GET /api/v1/{path} answered {status}: {body[:200]!r}")
        return json.loads(body)

    def snapshot(self) -> Snapshot:
        status, body = http("GET", f"{self.base}/metrics")
        if status != 200:
            raise BenchError(f"GET /metrics answered {status}")
        m = parse_metrics(body.decode())
        return Snapshot(
            received=m.get("segue_events_received_total", 0.0),
            duplicates=m.get("segue_events_duplicate_total", 0.0),
            rejected=m.get("segue_events_rejected_total", 0.0),
            commit_jobs_sum=m.get("segue_store_commit_jobs_sum", 0.0),
            commits=m.get("segue_store_commit_jobs_count", 0.0),
            commit_seconds_sum=m.get("segue_store_commit_seconds_sum", 0.0),
            stored=int(self._admin(f"sources/{self.source}")["event_count"]),
        )

    def settled(self) -> Snapshot:
        """Wait until the requests wrk cut off when it stopped have been committed."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        last = self.snapshot()
        while time.monotonic() < deadline:
            time.sleep(0.3)
            now = self.snapshot()
            if now.events() == last.events():  # commits go on: the delivery worker polls
                return now
            last = now
        raise BenchError(f"segue kept committing for {SETTLE_TIMEOUT_S:.0f} s after the load")

    def latest_message_id(self) -> str | None:
        events = self._admin(f"events?limit=1&source={self.source}")["events"]
        return str(events[0]["message_id"]) if events else None


def segue_command(args: argparse.Namespace) -> list[str]:
    if args.segue_command:
        return shlex.split(args.segue_command)
    script = Path(sys.executable).parent / "segue"
    if not script.exists():
        raise BenchError(f"no `segue` next to {sys.executable}: run with the project's venv")
    return [str(script)]


def start_segue(args: argparse.Namespace, work: Path, database: str | None) -> Segue:
    data = work / f"segue-{secrets.token_hex(3)}"
    data.mkdir()
    write_key, token = secrets.token_hex(16), "sga_bench_" + secrets.token_hex(16)
    config = data / "segue.toml"
    config.write_text(f'[[sources]]\nname = "bench"\nwrite_key = "{write_key}"\n', "utf-8")
    port = free_port()
    argv = [*segue_command(args), "serve", "--config", str(config), "--data", str(data)]
    argv += ["--host", HOST, "--port", str(port)]
    if database:
        argv += ["--database", database.replace("{data}", str(data))]
    env = server_env() | {"SEGUE_ADMIN_TOKEN": token}
    server = Server("segue serve", pinned(args.server_cpu, argv), data / "serve.log", env)
    base = f"http://{HOST}:{port}"
    server.wait_ready(lambda: http("GET", f"{base}/health")[0] == 200)
    auth = "Basic " + b64encode(f"{write_key}:".encode()).decode()
    return Segue(base, token, "bench", auth, server)


def start_bare(args: argparse.Namespace, work: Path, durable: bool) -> tuple[Server, str]:
    """bench/bare_app.py, or bench/bare_durable_app.py, on uvicorn as `segue serve` runs."""
    port = free_port()
    module = "bare_durable_app" if durable else "bare_app"
    argv = [sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH), f"{module}:app"]
    argv += ["--host", HOST, "--port", str(port), "--http", "httptools", "--loop", "uvloop"]
    argv += ["--workers", "1", "--no-access-log", "--log-level", "warning"]
    argv += ["--lifespan", "on" if durable else "off", "--no-server-header"]
    env = server_env() | {"BENCH_DB": str(work / f"{module}-{secrets.token_hex(3)}.db")}
    server = Server(module, pinned(args.server_cpu, argv), work / f"{module}.log", env)
    base = f"http://{HOST}:{port}"
    server.wait_ready(lambda: http("POST", f"{base}/v1/track", b"{}")[0] == 200)
    return server, base


# -- scenarios -----------------------------------------------------------------
def wrk_options(args: argparse.Namespace) -> WrkOptions:
    return WrkOptions(args.connections, args.threads, args.timeout, args.client_cpu)


def run_id() -> str:
    """5 hex digits that end up in every messageId of one wrk run (see ingest.lua)."""
    return secrets.token_hex(3)[:5]


def warm_up(args: argparse.Namespace, url: str, auth: str, row: Row) -> None:
    options, per = wrk_options(args), str(row.per_request)
    run_wrk(options, LUA, url, args.warmup, row.mode, run_id(), auth, per)


class CpuWatch:
    """CPU time used by processes other than the server (and wrk) on each benchmark CPU."""

    def __init__(self, args: argparse.Namespace, server: Server) -> None:
        self.server_cpu, self.client_cpu, self.server = args.server_cpu, args.client_cpu, server
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        on_server = machine_busy_seconds(self.server_cpu)
        on_client = 0.0 if self.client_cpu is None else machine_busy_seconds(self.client_cpu)
        return on_server, on_client, self.server.cpu_seconds()

    def others(self, seconds: float, wrk_cpu_s: float) -> tuple[float, float]:
        """(others on the server's CPU, others on wrk's CPU), in cores; all CPUs unpinned."""
        on_server, on_client, server_s = (
            b - a for a, b in zip(self.start, self._sample(), strict=True)
        )
        if self.server_cpu is None:  # one figure for the machine: everything but us
            return max(0.0, on_server - server_s - wrk_cpu_s) / seconds, 0.0
        return (
            max(0.0, on_server - server_s) / seconds,
            max(0.0, on_client - wrk_cpu_s) / seconds,
        )


def wait_for_quiet(args: argparse.Namespace, server: Server) -> None:
    """On a shared machine, wait (up to --wait-quiet s) until other processes are idle."""
    deadline, said = time.monotonic() + args.wait_quiet, False
    while True:
        watch = CpuWatch(args, server)
        time.sleep(1.0)
        others = watch.others(1.0, 0.0)
        if max(others) <= NOISY or time.monotonic() >= deadline:
            return
        if not said:
            PROGRESS.print(
                f"[dim]other processes are busy ({others[0]:.0%} of the server's CPU,"
                f" {others[1]:.0%} of wrk's): waiting up to {args.wait_quiet:g}s...[/]"
            )
            said = True


def measured(
    args: argparse.Namespace, server: Server, url: str, auth: str, row: Row
) -> tuple[WrkResult, str]:
    """The measured run: fills the row's throughput, latency and CPU use."""
    run = run_id()
    if args.wait_quiet > 0:
        wait_for_quiet(args, server)
    profiler = start_profiler(args, server, f"{run}-{row.mode}") if row.server == "segue" else None
    cpu_before, watch = server.cpu_seconds(), CpuWatch(args, server)
    result = run_wrk(
        wrk_options(args), LUA, url, args.duration, row.mode, run, auth, str(row.per_request)
    )
    row.server_cpu = (server.cpu_seconds() - cpu_before) / result.duration_s
    row.client_cpu = result.cpu_s / result.duration_s
    row.other_cpu, row.other_client_cpu = watch.others(result.duration_s, result.cpu_s)
    if max(row.other_cpu, row.other_client_cpu) > NOISY:
        row.notes.append(
            f"other processes took {row.other_cpu:.0%} of the server's CPU and"
            f" {row.other_client_cpu:.0%} of wrk's during the run: noisy figures"
        )
    if row.server == "bare" and row.server_cpu < SATURATED:
        row.notes.append(
            f"the bare app used only {row.server_cpu:.0%} of its CPU: the load, not the server,"
            " was the limit, and the ratios against it are flattering"
        )
    stop_profiler(profiler, row)
    row.req_s = result.rps
    row.events_s = result.rps * row.per_request
    row.p50_ms, row.p99_ms = result.p50_ms, result.p99_ms
    row.requests, row.non_2xx = result.requests, result.non_2xx
    row.socket_errors = sum(result.socket_errors.values())
    row.body_bytes = result.body_bytes
    if row.non_2xx:
        row.notes.append(f"{row.non_2xx} responses were not 2xx")
    if row.socket_errors:
        row.notes.append(f"socket errors {result.socket_errors}")
    return result, run


def measure_bare(args: argparse.Namespace, work: Path, durable: bool = False) -> Row:
    if durable:
        row = Row("bare + SQLite commit (reference)", "bare-durable", "track", 1, "-", True)
    else:
        row = Row("bare ASGI /v1/track", "bare", "track", 1, "-", True)
    server, base = start_bare(args, work, durable)
    try:
        url = f"{base}/v1/track"
        warm_up(args, url, BARE_AUTH, row)
        measured(args, server, url, BARE_AUTH, row)
    finally:
        server.stop()
    return row


def measure_segue(args: argparse.Namespace, work: Path, mode: str, database: str | None) -> Row:
    per_request = args.batch_size if mode == "batch" else 1
    label = f"segue /v1/{mode}" + (f" x{per_request}" if mode == "batch" else "")
    if database:
        label += f" ({describe_db(database)}, NOT default)"
    where = database or "default: SQLite in the data dir, synchronous=full"
    row = Row(label, "segue", mode, per_request, where, database is None)
    segue = start_segue(args, work, database)
    try:
        url = f"{segue.base}/v1/{mode}"
        warm_up(args, url, segue.auth, row)
        before = segue.settled()
        result, run = measured(args, segue.server, url, segue.auth, row)
        after = segue.settled()
        check_data(row, result, before, after, segue.latest_message_id(), run, args)
    finally:
        segue.server.stop()
    return row


def describe_db(url: str) -> str:
    return url.split("?", 1)[1] if "?" in url else url


def check_data(
    row: Row,
    result: WrkResult,
    before: Snapshot,
    after: Snapshot,
    latest: str | None,
    run: str,
    args: argparse.Namespace,
) -> None:
    """Every acknowledged event is stored; any extra ones were in flight when wrk stopped."""
    per = row.per_request
    row.acked_events = result.ok * per
    row.stored_events = after.stored - before.stored
    row.metric_events = int(after.received - before.received)
    row.duplicates = int(after.duplicates - before.duplicates)
    row.unacked_stored = row.stored_events - row.acked_events
    row.latest_is_ours = latest is not None and latest.rpartition("-")[2][:5] == run
    row.data_ok = (
        row.non_2xx == 0
        and row.stored_events == row.metric_events
        and 0 <= row.unacked_stored <= args.connections * per
        and row.duplicates == 0
        and after.rejected == before.rejected
        and row.latest_is_ours
    )
    if not row.data_ok:
        row.notes.append(
            f"DATA CHECK FAILED: acked {row.acked_events}, stored {row.stored_events},"
            f" counted in /metrics {row.metric_events}, duplicates {row.duplicates},"
            f" rejected {after.rejected - before.rejected:g}, newest stored {latest!r}"
        )
    commits = after.commits - before.commits
    if commits:
        row.jobs_per_commit = (after.commit_jobs_sum - before.commit_jobs_sum) / commits
        row.commit_ms = (after.commit_seconds_sum - before.commit_seconds_sum) / commits * 1000
        row.commits_s = commits / result.duration_s


# -- optional profiling (perturbs the figures; for docs/benchmarks.md) ---------
def start_profiler(
    args: argparse.Namespace, server: Server, name: str
) -> tuple[subprocess.Popen[bytes], Path] | None:
    if not args.profile:
        return None
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = Path(args.profile) / f"{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [py_spy, "record", "--pid", str(server.pid), "--duration", str(int(args.duration))]
    argv += ["--rate", "200", "--threads", "--format", "raw", "--output", str(out)]
    argv += ["--nonblocking", *args.profile_arg]
    proc = subprocess.Popen(
        pinned(args.client_cpu, argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return proc, out


def stop_profiler(profiler: tuple[subprocess.Popen[bytes], Path] | None, row: Row) -> None:
    if profiler is None:
        return
    proc, out = profiler
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    row.notes.append(f"profiled with py-spy (figures perturbed): {out}")


# -- main ----------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--duration", type=float, default=12, help="seconds of each measured run [12]")
    add("--warmup", type=float, default=3, help="seconds of warm-up before each [3]")
    add("--connections", type=int, default=64, help="wrk connections [64]")
    add("--threads", type=int, default=1, help="wrk threads [1]")
    add("--timeout", type=float, default=10, help="wrk's per-request timeout, seconds [10]")
    add("--batch-size", type=int, default=100, help="events per /v1/batch request [100]")
    add("--server-cpu", type=int, default=0, help="CPU the servers are pinned to [0]")
    add("--client-cpu", type=int, default=1, help="CPU wrk is pinned to [1]")
    add("--no-pin", action="store_true", help="do not pin with taskset")
    add("--rounds", type=int, default=1, help="run everything N times, then the medians [1]")
    add(
        "--only",
        default="bare,durable,track,batch",
        help="a subset of bare,durable,track,batch [all]; durable is bench/bare_durable_app.py,"
        " a reference row",
    )
    add(
        "--database",
        action="append",
        default=[],
        metavar="URL",
        help="also measure segue with `--database URL` (extra rows, marked NOT default);"
        " {data} in URL becomes the run's temp data dir; may be repeated",
    )
    add("--profile", metavar="DIR", help="py-spy record segue's measured runs into DIR")
    add(
        "--profile-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra py-spy record argument, e.g. --profile-arg=--gil; may be repeated",
    )
    add(
        "--wait-quiet",
        type=float,
        default=30,
        metavar="S",
        help="before each measured run, wait up to S seconds while other processes keep"
        " more than 10%% of the server's or wrk's CPU (a shared machine); 0: don't [30]",
    )
    add(
        "--segue-command",
        metavar="CMD",
        help="how to start segue instead of the venv's `segue` (to try a modified build);"
        " `serve ...` is appended",
    )
    add("--json", action="store_true", help="print JSON instead of a table")
    add("--json-out", metavar="FILE", help="also write the JSON report to FILE")
    add("--fail-on-miss", action="store_true", help="exit 3 when a target is missed")
    args = parser.parse_args(argv)
    if args.no_pin:
        args.server_cpu = args.client_cpu = None
    return args


def preflight(args: argparse.Namespace) -> None:
    missing = []
    if shutil.which("wrk") is None:
        missing.append("wrk: install it with `sudo apt-get install -y wrk` (Debian/Ubuntu)")
    if args.server_cpu is not None and shutil.which("taskset") is None:
        missing.append("taskset: install util-linux, or pass --no-pin")
    for module in ("uvicorn", "uvloop", "httptools", "orjson", "segue"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"Python module {module}: run this with the project's venv")
    if missing:
        for line in missing:
            PROGRESS.print(f"[red]missing:[/] {line}")
        sys.exit(2)
    if args.server_cpu is not None and (os.cpu_count() or 1) < 2:
        PROGRESS.print("[yellow]one CPU only: not pinning; the servers and wrk share it[/]")
        args.server_cpu = args.client_cpu = None


def run_round(args: argparse.Namespace, work: Path, index: int) -> list[Row]:
    wanted = {s.strip() for s in args.only.split(",")}
    plan = [(mode, None) for mode in ("bare", "durable") if mode in wanted]
    for database in [None, *args.database]:
        plan += [(mode, database) for mode in ("track", "batch") if mode in wanted]
    rows = []
    for mode, database in plan:
        extra = f" ({describe_db(database)})" if database else ""
        PROGRESS.print(
            f"[dim]round {index + 1}: {mode}{extra}"
            f" ({args.warmup:g}s warm-up + {args.duration:g}s)...[/]"
        )
        if mode in ("bare", "durable"):
            rows.append(measure_bare(args, work, durable=mode == "durable"))
        else:
            rows.append(measure_segue(args, work, mode, database))
    return rows


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preflight(args)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started with SIGINT ignored (`&`)
    work = Path(tempfile.mkdtemp(prefix="segue-bench-"))
    rounds: list[list[Row]] = []
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
