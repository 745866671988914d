"""Send a few events of every type to a local segue with Segment's official Python client.

    python examples/send_events.py WRITE_KEY [--host http://127.0.0.1:8088] [--count 2]

The write key and host may also come from SEGUE_WRITE_KEY and SEGUE_HOST. The script
uses ``segment-analytics-python`` exactly as an application would (background
consumer thread, ``/v1/batch``, Basic auth), flushes, and prints what it sent.
It exits 1 if the client reported an error (wrong write key, segue not running, ...).
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from typing import Any

from segment.analytics.client import Client

DEFAULT_HOST = "http://127.0.0.1:8088"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "write_key",
        nargs="?",
        default=os.environ.get("SEGUE_WRITE_KEY"),
        help="the source's write key [SEGUE_WRITE_KEY]",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("SEGUE_HOST", DEFAULT_HOST),
        help=f"segue's base URL, without /v1 [SEGUE_HOST or {DEFAULT_HOST}]",
    )
    parser.add_argument("--count", type=int, default=2, help="calls of each type [2]")
    args = parser.parse_args()
    if not args.write_key:
        parser.error("give the write key as an argument or in SEGUE_WRITE_KEY")
    return args


def send_all(client: Client, count: int) -> list[dict[str, Any]]:
    """Queue ``count`` calls of each of the six types; return the messages as queued."""
    run = uuid.uuid4().hex[:8]  # keeps the user ids of separate runs apart
    queued: list[dict[str, Any]] = []
    for i in range(1, count + 1):
        user_id = f"example-{run}-{i}"
        anonymous_id = str(uuid.uuid4())
        calls = (
            client.identify(user_id, {"email": f"user{i}@example.com", "plan": "pro"}),
            client.track(user_id, "Order Completed", {"order_id": f"o-{run}-{i}", "total": 42.5}),
            client.page(user_id, "Docs", "Getting Started", {"path": "/docs/getting-started"}),
            client.screen(user_id, "Onboarding", "Welcome", {"step": i}),
            client.group(user_id, f"acme-{i}", {"name": "Acme Inc.", "employees": 120}),
            client.alias(anonymous_id, user_id),
        )
        for ok, message in calls:
            if not ok:
                raise SystemExit("the client's queue is full")
            queued.append(message)
    return queued


def describe(message: dict[str, Any]) -> str:
    detail = {
        "identify": f"traits={message.get('traits')}",
        "track": f"event={message.get('event')!r}",
        "page": f"name={message.get('name')!r}",
        "screen": f"name={message.get('name')!r}",
        "group": f"groupId={message.get('groupId')!r}",
        "alias": f"previousId={message.get('previousId')!r}",
    }[message["type"]]
    return f"{message['type']:<8} {message['userId']}  {detail}  messageId={message['messageId']}"


def main() -> int:
    args = parse_args()
    errors: list[str] = []

    def on_error(error: Exception, batch: list[dict[str, Any]]) -> None:
        errors.append(f"{error} ({len(batch)} events not accepted)")

    client = Client(args.write_key, host=args.host, on_error=on_error, max_retries=3)
    messages = send_all(client, args.count)
    client.flush()  # blocks until every queued message was uploaded (or failed)
    client.join()  # stop the consumer thread

    for message in messages:
        print(describe(message))
    if errors:
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"sent {len(messages)} events to {args.host}/v1/batch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
