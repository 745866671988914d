"""Where ingest CPU goes, without HTTP: segue's ASGI app driven in-process.

    .venv/bin/python bench/ingest_inproc.py [--mode track|batch] [--requests 20000]
        [--concurrency 64] [--synchronous full|normal] [--profile main|writer] [--top 30]

Calls the Tracking API app (what ``segue serve`` runs, built the same way, on a real
SQLite store in a temp dir) with a fake ASGI receive/send from N concurrent tasks,
and reports CPU per request: in the event loop thread (HTTP-free app code), in the
SQLite writer thread, and per event. With --profile it runs cProfile on one of the
two threads and prints the top functions by own time. Pin it to one CPU
(``taskset -c 0``) to match the server in bench/ingest.py. It complements
bench/ingest.py (the end-to-end figures); it is not the budget check.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import threading
import time
from base64 import b64encode
from pathlib import Path
from typing import Any
from uuid import uuid4

import uvloop

from segue.app import Segue
from segue.config import ServerConfig, SourceConfig

WRITE_KEY = "bench_write_key_0123456789abcdef"
_TICKS = os.sysconf("SC_CLK_TCK")

# the body bench/ingest.lua sends (one analytics-python track event, ~600 bytes)
EVENT = (
    '{"integrations": {}, "anonymousId": null, "properties": {"order_id": "ord_50312", '
    '"revenue": 52.49, "shipping": 3.0, "tax": 4.2, "discount": 2.5, "coupon": "SPRING25", '
    '"currency": "USD", "products": [{"product_id": "60a3c9e1f1d2b34a5c6e7f80", "sku": "P-104", '
    '"name": "Wingspan", "price": 54.99, "quantity": 1}]}, '
    '"timestamp": "2025-05-14T09:31:07.412817+00:00", "context": {"ip": "203.0.113.215", '
    '"library": {"name": "analytics-python", "version": "2.3.4"}}, '
    '"userId": "user_8f14e45fceea167a", "type": "track", "event": "Order Completed", '
    '"messageId": "%s"'
)
SENT_AT = '"sentAt": "2025-05-14T09:31:07.498321+00:00"'


def body(mode: str, per_request: int) -> bytes:
    """uuid4 messageIds, as analytics-python sends (random keys in the dedup index)."""
    if mode == "track":
        return (EVENT % uuid4() + ", " + SENT_AT + "}").encode()
    items = ", ".join(EVENT % uuid4() + "}" for _ in range(per_request))
    return ('{"batch": [' + items + "], " + SENT_AT + "}").encode()


def thread_cpu(native_id: int | None) -> float:
    if native_id is None:
        return 0.0
    with open(f"/proc/self/task/{native_id}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def writer_thread() -> int | None:
    """The SQLite writer thread's native id (None with another store)."""
    for thread in threading.enumerate():
        if thread.name == "segue-sqlite-writer":
            return thread.native_id
    return None


async def drive(args: argparse.Namespace, segue: Segue) -> dict[str, Any]:
    app: Any = segue
    if args.app == "bare":
        from bare_app import app
    per = args.batch_size if args.mode == "batch" else 1
    auth = b"Basic " + b64encode(f"{WRITE_KEY}:".encode())
    bodies = [body(args.mode, per) for _ in range(args.requests)]
    statuses: list[int] = []
    queue = iter(range(args.requests))

    async def worker() -> None:
        for n in queue:
            data = bodies[n]
            scope = {
                "type": "http",
                "method": "POST",
                "path": f"/v1/{args.mode}",
                "headers": [
                    (b"host", b"127.0.0.1"),
                    (b"content-type", b"application/json"),
                    (b"authorization", auth),
                    (b"content-length", str(len(data)).encode()),
                ],
                "client": ("127.0.0.1", 40000),
            }
            sent = False

            async def receive(data: bytes = data) -> dict[str, Any]:
                nonlocal sent
                if sent:
                    await asyncio.sleep(3600)
                sent = True
                return {"type": "http.request", "body": data, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            await app(scope, receive, send)

    writer = writer_thread()
    main_id = threading.get_native_id()
    profiler = cProfile.Profile() if args.profile == "main" else None
    w0, m0 = thread_cpu(writer), thread_cpu(main_id)
    p0, t0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    if profiler:
        profiler.disable()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - p0
    main_cpu = thread_cpu(main_id) - m0
    writer_cpu = thread_cpu(writer) - w0
    bad = sum(1 for s in statuses if s != 200)
    n = args.requests
    result = {
        "requests": n,
        "events": n * per,
        "non_200": bad,
        "wall_s": wall,
        "req_s": n / wall,
        "events_s": n * per / wall,
        "cpu_us_per_request": cpu / n * 1e6,
        "main_us_per_request": main_cpu / n * 1e6,
        "writer_us_per_request": writer_cpu / n * 1e6,
        "cpu_us_per_event": cpu / (n * per) * 1e6,
    }
    if profiler:
        result["profile"] = profiler
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="segue-inproc-"))
    database = args.database or f"sqlite:///{data / 'segue.db'}?synchronous={args.synchronous}"
    config = ServerConfig(
        data_dir=data,
        database_url=database,
        admin_token="bench",
        sources=(SourceConfig(name="bench", write_key=WRITE_KEY),),
    )

    async def main() -> dict[str, Any]:
        segue = Segue.build(config)
        await segue.startup()
        try:
            if args.profile == "writer":
                install_writer_profiler(segue)
            warm = argparse.Namespace(**{**vars(args), "requests": min(2000, args.requests)})
            await drive(warm, segue)
            return await drive(args, segue)
        finally:
            await segue.shutdown()

    try:
        return uvloop.run(main())
    finally:
        shutil.rmtree(data, ignore_errors=True)


_WRITER_PROFILE = cProfile.Profile()


def install_writer_profiler(segue: Segue) -> None:
    """Profile every job the writer thread runs (the commit itself included)."""
    writer = segue.store._writer  # type: ignore[attr-defined]
    original = writer._commit

    def profiled(conn: Any, batch: Any) -> None:
        _WRITER_PROFILE.enable()
        try:
            original(conn, batch)
        finally:
            _WRITER_PROFILE.disable()

    writer._commit = profiled


def print_profile(profile: cProfile.Profile, top: int) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("track", "batch"), default="track")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--synchronous", choices=("full", "normal"), default="full")
    parser.add_argument("--database", help="a database URL instead (memory:// for no SQLite)")
    parser.add_argument(
        "--app", choices=("segue", "bare"), default="segue", help="bare: bench/bare_app.py"
    )
    parser.add_argument("--profile", choices=("main", "writer"))
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    result = run(args)
    profile = result.pop("profile", None)
    for key, value in result.items():
        print(f"{key:>24}: {value:,.1f}" if isinstance(value, float) else f"{key:>24}: {value:,}")
    if args.profile == "main" and profile is not None:
        print_profile(profile, args.top)
    elif args.profile == "writer":
        print_profile(_WRITER_PROFILE, args.top)
    sys.exit(1 if result["non_200"] else 0)


if __name__ == "__main__":
    main()
