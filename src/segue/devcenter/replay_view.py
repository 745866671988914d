"""``segue replay``'s view: a progress bar of delivered vs queued, then a summary table."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from segue.devcenter.client import AdminClient

POLL_INTERVAL_S = 0.25


def watch_replay(
    client: AdminClient,
    started: dict[str, Any],
    *,
    timeout_s: float,
    console: Console,
    out: Console | None = None,
) -> dict[str, Any] | None:
    """Poll the replay until its deliveries are done (or it failed); print the summary.

    Returns the last replay document, or None when ``timeout_s`` passed first.
    """
    replay_id = started["id"]
    deadline = time.monotonic() + timeout_s
    doc = started
    done = False
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"replay {replay_id}", total=None, detail="queueing")
        while True:
            doc = client.get(f"/replays/{replay_id}")
            counts = doc["progress"]
            progress.update(
                task,
                total=max(int(doc["queued"]), 1) if doc["state"] != "running" else None,
                completed=int(counts["done"]),
                detail=_detail(doc),
            )
            if doc["state"] == "failed" or counts["complete"]:
                done = True
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL_S)
    (out or Console()).print(summary_table(doc))
    if doc["state"] == "failed":
        console.print(f"[red]the replay failed:[/] {doc.get('error') or 'unknown error'}")
    return doc if done else None


def _detail(doc: dict[str, Any]) -> str:
    counts = doc["progress"]
    parts = [f"{doc['queued']} queued" + (" so far" if doc["state"] == "running" else "")]
    for key in ("discarded", "expired", "retrying"):
        if counts[key]:
            parts.append(f"{counts[key]} {key}")
    return ", ".join(parts)


def summary_table(doc: dict[str, Any]) -> Table:
    counts = doc["progress"]
    table = Table(title=f"Replay {doc['id']}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    rows = [
        ("Source", doc["source"]),
        ("Destination", doc["destination"]),
        ("Since", doc["since"]),
        ("Until", doc["until"]),
        ("State", doc["state"]),
        ("Queued", str(doc["queued"])),
        ("Delivered", str(counts["succeeded"])),
        ("Discarded", str(counts["discarded"])),
        ("Expired", str(counts["expired"])),
        ("Retrying", str(counts["retrying"])),
        ("Pending", str(counts["pending"])),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table
