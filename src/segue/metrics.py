"""Prometheus metrics, one registry per server (tests run several in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_received = Counter(
            "segue_events_received",
            "Events accepted and stored, by source.",
            ["source"],
            registry=self.registry,
        )
        self.events_duplicate = Counter(
            "segue_events_duplicate",
            "Events acknowledged but not stored again (same messageId in the dedup window).",
            ["source"],
            registry=self.registry,
        )
        self.events_rejected = Counter(
            "segue_events_rejected",
            "Events or requests rejected at ingest, by Segment rejection code.",
            ["code"],
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "segue_store_commit_seconds",
            "Time to run and commit one group of writes.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
        self.commit_jobs = Histogram(
            "segue_store_commit_jobs",
            "Write jobs (requests) sharing one commit.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048),
            registry=self.registry,
        )

        self.deliveries = Counter(
            "segue_deliveries",
            "Delivery attempts by destination and the state they led to.",
            ["destination", "state"],
            registry=self.registry,
        )
        self.attempt_seconds = Histogram(
            "segue_delivery_attempt_seconds",
            "Duration of one delivery attempt (request to response).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )

    def observe_commit(self, seconds: float, jobs: int) -> None:
        """Called from the store's writer thread after every group commit."""
        self.commit_seconds.observe(seconds)
        self.commit_jobs.observe(jobs)

    def render(self) -> bytes:
        return generate_latest(self.registry)
