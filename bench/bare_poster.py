"""The baseline for the delivery benchmark: a bare aiohttp POST loop.

    .venv/bin/python bench/bare_poster.py --url http://127.0.0.1:8099/hook \\
        --count 50000 --concurrency 64 --body-file event.json --settings '{"apiKey": "k"}'

What segue's delivery worker does at its least: one ``aiohttp.ClientSession``
(keep-alive, ``Accept-Encoding`` not added, as segue's), ``--concurrency`` coroutines
each POSTing the next body and reading the response, on uvloop. The requests are
built by segue's own ``build_request`` (the partner contract's headers, byte for
byte what segue sends) from ``--body-file`` with a fresh messageId each, all of them
before the clock starts. No queue, no retries, no records: the fastest a Python
process can deliver these events. bench/delivery.py divides segue's delivered
events/s by this loop's. At the end it prints one line ``BARE_JSON {...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
import uuid

import aiohttp
import orjson

from segue.delivery.webhook import WebhookRequest, build_request


def requests(args: argparse.Namespace) -> list[WebhookRequest]:
    with open(args.body_file, "rb") as file:
        event = orjson.loads(file.read())
    settings = json.loads(args.settings)
    out = []
    for n in range(args.count):
        event["messageId"] = f"{uuid.uuid4().hex[:23]}-{args.run_id}{n:07d}"
        out.append(build_request(args.url, orjson.dumps(event), settings))
    return out


async def post_all(args: argparse.Namespace, todo: list[WebhookRequest]) -> dict[str, object]:
    statuses: dict[int, int] = {}
    errors: dict[str, int] = {}
    position = 0
    connector = aiohttp.TCPConnector(limit=max(args.concurrency, 100))
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(
        connector=connector, skip_auto_headers=("Accept-Encoding",)
    ) as session:

        async def worker() -> None:
            nonlocal position
            while position < len(todo):
                request = todo[position]
                position += 1
                try:
                    async with session.post(
                        request.url,
                        data=request.body,
                        headers=list(request.headers),
                        timeout=timeout,
                        allow_redirects=False,
                    ) as response:
                        await response.read()
                        statuses[response.status] = statuses.get(response.status, 0) + 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "sent": len(todo),
        "statuses": statuses,
        "errors": errors,
        "body_bytes": len(todo[0].body) if todo else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--body-file", required=True, help="one event (JSON) to send N times")
    parser.add_argument("--settings", default="{}", help="destination settings (JSON)")
    parser.add_argument("--run-id", default="bare0", help="goes into every messageId")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument(
        "--wait-go",
        action="store_true",
        help="print READY once the requests are built, then wait for SIGUSR1 to start",
    )
    parser.add_argument(
        "--linger",
        action="store_true",
        help="after the result, wait for SIGTERM (so that"
        " the caller can read this process's CPU time in /proc)",
    )
    args = parser.parse_args()
    todo = requests(args)
    if args.wait_go:
        print("READY", flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        signal.sigwait({signal.SIGUSR1})
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(post_all(args, todo))
    else:
        result = uvloop.run(post_all(args, todo))
    print("BARE_JSON " + json.dumps(result), flush=True)
    if args.linger:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    main()
