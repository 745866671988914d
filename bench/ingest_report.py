"""The ingest benchmark's results: one Row per scenario, verdicts, the table, JSON."""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from benchkit import machine
from rich.console import Console
from rich.table import Table

TRACK_TARGET = 0.60  # segue /v1/track req/s as a share of the bare app's
BATCH_TARGET = 50_000  # /v1/batch events/s, one process


@dataclass
class Row:
    scenario: str
    server: str  # bare | segue
    mode: str  # track | batch
    per_request: int
    database: str
    default_settings: bool
    req_s: float = 0.0
    events_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    requests: int = 0
    non_2xx: int = 0
    socket_errors: int = 0
    body_bytes: int = 0
    server_cpu: float = 0.0  # cores the server kept busy (1.0 = its whole CPU)
    client_cpu: float = 0.0  # the same for wrk
    other_cpu: float = 0.0  # share of the server's CPU that other processes took (noise)
    other_client_cpu: float = 0.0  # the same on wrk's CPU
    acked_events: int | None = None
    stored_events: int | None = None
    metric_events: int | None = None
    unacked_stored: int | None = None
    duplicates: int | None = None
    latest_is_ours: bool | None = None
    data_ok: bool | None = None
    jobs_per_commit: float | None = None
    commit_ms: float | None = None
    commits_s: float | None = None
    notes: list[str] = field(default_factory=list)


# -- verdicts and output -------------------------------------------------------
def verdicts(rows: list[Row]) -> dict[str, dict[str, Any]]:
    bare = next((r for r in rows if r.server == "bare"), None)
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.server != "segue":
            continue
        if row.mode == "track" and bare is not None and bare.req_s:
            value, target, metric = row.req_s / bare.req_s, TRACK_TARGET, "share of bare req/s"
        elif row.mode == "batch":
            value, target, metric = row.events_s, BATCH_TARGET, "events/s"
        else:
            continue
        out[row.scenario] = {
            "metric": metric,
            "value": value,
            "target": target,
            "pass": value >= target,
            "shortfall": max(0.0, 1 - value / target),
        }
    return out


COLUMNS = (
    ("scenario", "left"),
    ("req/s", "right"),
    ("events/s", "right"),
    ("p50 ms", "right"),
    ("p99 ms", "right"),
    ("server CPU", "right"),
    ("others' CPU", "right"),
    ("vs target", "right"),
    ("result", "center"),
    ("stored / acked (+in flight)", "left"),
    ("jobs/commit", "right"),
)


def render(console: Console, rounds: list[list[Row]], args: argparse.Namespace) -> None:
    info = machine()
    table = Table(
        title=f"segue ingest benchmark: {info['nproc']} CPUs ({info['cpu']}),"
        f" Python {info['python']}, {info['wrk'].split(' [')[0]}",
        title_justify="left",
    )
    for name, justify in COLUMNS:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for index, rows in enumerate(rounds):
        if len(rounds) > 1:
            table.add_section()
            table.add_row(f"[dim]round {index + 1}[/]")
        marks = verdicts(rows)
        for row in rows:
            target, result = verdict_cells(row, marks.get(row.scenario))
            if (share := reference_share(rows, row)) is not None:
                target = f"{share:.0%} of bare"
            table.add_row(
                row.scenario if row.default_settings else f"[yellow]{row.scenario}[/]",
                f"{row.req_s:,.0f}",
                f"{row.events_s:,.0f}",
                f"{row.p50_ms:.2f}",
                f"{row.p99_ms:.2f}",
                f"{row.server_cpu:.0%}",
                f"{row.other_cpu:.0%} / {row.other_client_cpu:.0%}",
                target,
                result,
                data_cell(row),
                "" if row.jobs_per_commit is None else f"{row.jobs_per_commit:.1f}",
            )
    if len(rounds) > 1:
        summarise(table, rounds)
    console.print(table)
    wrk_cpu = max(r.client_cpu for rows in rounds for r in rows)
    bodies = {f"{r.mode} body {r.body_bytes:,} B": None for r in rounds[0]}
    console.print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s after a"
        f" {args.warmup:g}s warm-up, wrk on CPU {args.client_cpu} (busiest run: {wrk_cpu:.0%}"
        f" of it), servers on CPU {args.server_cpu}; {', '.join(bodies)}"
    )
    console.print(
        "server CPU: share of a core the server used; others' CPU: shares of the server's"
        " core / wrk's core that other processes took (noise on a shared machine)"
    )
    for index, rows in enumerate(rounds):
        for row in rows:
            for note in row.notes:
                where = f"round {index + 1}, " if len(rounds) > 1 else ""
                console.print(f"[yellow]{where}{row.scenario}:[/] {note}")


def reference_share(rows: list[Row], row: Row) -> float | None:
    """The durable bare app's req/s as a share of the bare app's (no target)."""
    bare = next((r for r in rows if r.server == "bare"), None)
    if row.server != "bare-durable" or bare is None or not bare.req_s:
        return None
    return row.req_s / bare.req_s


def verdict_cells(row: Row, mark: dict[str, Any] | None) -> tuple[str, str]:
    if mark is None:
        return "", ""
    if row.mode == "track":
        target = f"{mark['value']:.0%} of bare (>= {TRACK_TARGET:.0%})"
    else:
        target = f"{mark['value'] / BATCH_TARGET:.0%} of {BATCH_TARGET:,}"
    return target, "[green]PASS[/]" if mark["pass"] else "[red]MISS[/]"


def data_cell(row: Row) -> str:
    if row.data_ok is None:
        return f"[red]{row.non_2xx} not 2xx[/]" if row.non_2xx else "all 2xx"
    head = "[green]ok[/]" if row.data_ok else "[red]LOST[/]"
    return f"{head} {row.stored_events:,} / {row.acked_events:,} (+{row.unacked_stored})"


def summarise(table: Table, rounds: list[list[Row]]) -> None:
    table.add_section()
    table.add_row("[bold]median of rounds[/]")
    for position, first in enumerate(rounds[0]):
        same = [rows[position] for rows in rounds]
        values = [v["value"] for rows in rounds if (v := verdicts(rows).get(first.scenario))]
        target = ""
        if values and first.mode == "track":
            target = f"{statistics.median(values):.0%} ({min(values):.0%}-{max(values):.0%})"
        elif values:
            target = f"{statistics.median(values) / BATCH_TARGET:.0%} of {BATCH_TARGET:,}"
        ok = all(r.data_ok in (True, None) for r in same)
        table.add_row(
            first.scenario,
            f"{statistics.median(r.req_s for r in same):,.0f}",
            f"{statistics.median(r.events_s for r in same):,.0f}",
            f"{statistics.median(r.p50_ms for r in same):.2f}",
            f"{statistics.median(r.p99_ms for r in same):.2f}",
            f"{statistics.median(r.server_cpu for r in same):.0%}",
            f"{statistics.median(r.other_cpu for r in same):.0%}"
            f" / {statistics.median(r.other_client_cpu for r in same):.0%}",
            target,
            "",
            "all rounds ok" if ok else "[red]FAILED[/]",
            "",
        )


def report_json(rounds: list[list[Row]], args: argparse.Namespace) -> str:
    return json.dumps(
        {
            "machine": machine(),
            "settings": {k: v for k, v in vars(args).items() if k not in ("json", "json_out")},
            "targets": {"track_share_of_bare": TRACK_TARGET, "batch_events_per_s": BATCH_TARGET},
            "rounds": [
                {"rows": [asdict(r) for r in rows], "verdicts": verdicts(rows)} for rows in rounds
            ],
            "all_targets_met": all_passed(rounds),
            "data_ok": data_ok(rounds),
        },
        indent=2,
    )


def all_passed(rounds: list[list[Row]]) -> bool:
    return all(v["pass"] for rows in rounds for v in verdicts(rows).values())


def data_ok(rounds: list[list[Row]]) -> bool:
    return all(r.data_ok in (True, None) and not r.non_2xx for rows in rounds for r in rows)
