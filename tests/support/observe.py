"""Watching a running segue from a test: its metrics and the client library's logs."""

from __future__ import annotations

import logging
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import SegueProcess


def deliveries_metric(server: SegueProcess) -> dict[tuple[str, str], float]:
    """``segue_deliveries_total`` by (destination, state)."""
    text = httpx.get(f"{server.url}/metrics", timeout=10.0).text
    values: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "segue_deliveries_total":
                values[(sample.labels["destination"], sample.labels["state"])] = sample.value
    return values


def wait_for_deliveries(
    server: SegueProcess, wanted: dict[tuple[str, str], float], timeout_s: float
) -> None:
    """Poll /metrics (bounded) until every wanted counter has its value."""
    deadline = time.monotonic() + timeout_s
    while True:
        values = deliveries_metric(server)
        if all(values.get(key) == value for key, value in wanted.items()):
            return
        assert time.monotonic() < deadline, f"/metrics never showed {wanted}: {values}"
        time.sleep(0.05)


class CollectWarnings(logging.Handler):
    """Keeps every WARNING+ record (attach it to the analytics client's logger)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
