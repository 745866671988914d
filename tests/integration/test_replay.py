"""Re-sending over real sockets: replay (``POST /api/v1/replays``, ``segue replay``)
and bulk retry (``POST /api/v1/deliveries/retry``).

Events are stored for source ``shop`` while no destination subscribes to it; then a
destination ``warehouse`` is created and the stored events of a time range are
replayed to it. A real endpoint (tests/support/endpoint.py) records what arrives:
each event of the range once, as stored, with ``integrations`` replaced by
``{"All": false, "warehouse": true}``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from tests.support.endpoint import Endpoint, ReceivedRequest, Reply
from tests.support.server import ADMIN_TOKEN, SegueProcess

from segue.delivery.replay import ReplayError, ReplayRunner, parse_time
from segue.store import DeliveryQuery, NewEvent
from segue.store.memory import InMemoryStore

SHOP_KEY = "wk_shop"
WAIT_S = 20.0

CONFIG = f"""
[[sources]]
name = "shop"
write_key = "{SHOP_KEY}"

[[sources]]
name = "other"

[egress]
allow = ["127.0.0.0/8"]
allow_http = true
"""


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    with Endpoint() as sink:
        yield sink


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SegueProcess]:
    data = tmp_path_factory.mktemp("replay") / "data"
    process = SegueProcess(data, config_text=CONFIG).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def admin(server: SegueProcess) -> Iterator[httpx.Client]:
    with server.admin() as client:
        yield client


@pytest.fixture(scope="module")
def stored(server: SegueProcess, admin: httpx.Client) -> list[dict[str, Any]]:
    """Five events of `shop` in two batches (2 + 3) with distinct received times, oldest first."""
    with httpx.Client(base_url=server.url, timeout=10.0) as http:

        def send(n: int) -> None:
            body = {
                "userId": f"u-{n}",
                "event": "Order Completed",
                "properties": {"n": n},
                "integrations": {"All": True, "Warehouse": False},
            }
            response = http.post("/v1/track", json=body, auth=(SHOP_KEY, ""))
            assert response.status_code == 200, response.text

        send(0)
        send(1)
        latest = max(e["received_at_ms"] for e in _events(admin))
        _until(lambda: time.time() * 1000 > latest + 2, bool, "the clock")
        for n in (2, 3, 4):
            send(n)
    events = sorted(_events(admin), key=lambda e: e["id"])
    assert [e["event"]["properties"]["n"] for e in events] == [0, 1, 2, 3, 4]
    return events


@pytest.fixture(scope="module")
def warehouse(
    admin: httpx.Client, endpoint: Endpoint, stored: list[dict[str, Any]]
) -> dict[str, Any]:
    """Created after the events were stored: only a replay sends them."""
    body = {
        "name": "warehouse",
        "endpoint": f"{endpoint.url}/warehouse",
        "sources": ["shop"],
        "settings": {"apiKey": "wh-key"},
    }
    response = admin.post("/destinations", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _events(admin: httpx.Client) -> list[dict[str, Any]]:
    response = admin.get("/events", params={"source": "shop", "limit": 100})
    assert response.status_code == 200, response.text
    return list(response.json()["events"])


def _until(fetch: Callable[[], Any], done: Callable[[Any], bool], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        result = fetch()
        if done(result):
            return result
        assert time.monotonic() < deadline, f"{what} not reached within {WAIT_S} s: {result}"
        time.sleep(0.02)


def _finished(admin: httpx.Client, replay_id: str) -> dict[str, Any]:
    def fetch() -> dict[str, Any]:
        response = admin.get(f"/replays/{replay_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    return dict(_until(fetch, lambda r: r["progress"]["complete"], f"replay {replay_id}"))


def _replayed(endpoint: Endpoint, since_index: int, count: int) -> list[ReceivedRequest]:
    requests = endpoint.wait_for_requests(since_index + count)
    return requests[since_index:]


def _check_replayed(received: list[ReceivedRequest], expected: list[dict[str, Any]]) -> None:
    assert sorted(r.json()["properties"]["n"] for r in received) == [
        e["event"]["properties"]["n"] for e in expected
    ]
    by_message = {e["event"]["messageId"]: e["event"] for e in expected}
    for request in received:
        body = request.json()
        assert body["integrations"] == {"All": False, "warehouse": True}
        original = by_message[body["messageId"]]
        assert {k: v for k, v in body.items() if k != "integrations"} == {
            k: v for k, v in original.items() if k != "integrations"
        }


def test_replay_a_time_range(
    admin: httpx.Client,
    endpoint: Endpoint,
    stored: list[dict[str, Any]],
    warehouse: dict[str, Any],
) -> None:
    assert endpoint.count == 0  # nothing subscribed when the events came in
    since = stored[2]["received_at_ms"]
    response = admin.post(
        "/replays", json={"source": "shop", "destination": "warehouse", "since": since}
    )
    assert response.status_code == 202, response.text
    started = response.json()
    assert started["state"] == "running"
    assert started["source"] == "shop"
    assert started["destination"] == "warehouse"
    assert started["since_ms"] == since
    assert started["id"].startswith("rpl_")

    done = _finished(admin, started["id"])
    assert done["state"] == "finished"
    assert done["queued"] == 3
    assert done["finished_at"] is not None
    assert done["progress"]["succeeded"] == 3
    assert done["progress"]["done"] == 3
    _check_replayed(_replayed(endpoint, 0, 3), stored[2:])
    assert admin.get("/replays").json()["replays"][0]["id"] == started["id"]

    deliveries = admin.get("/deliveries", params={"destination": "warehouse"}).json()
    assert all(d["replay"] for d in deliveries["deliveries"])
    assert len(deliveries["deliveries"]) == 3


def test_replay_until_in_iso_8601(
    admin: httpx.Client,
    endpoint: Endpoint,
    stored: list[dict[str, Any]],
    warehouse: dict[str, Any],
) -> None:
    before = endpoint.count
    until = stored[2]["event"]["receivedAt"]  # ISO-8601, exclusive
    response = admin.post(
        "/replays", json={"source": "shop", "destination": "warehouse", "until": until}
    )
    assert response.status_code == 202, response.text
    done = _finished(admin, response.json()["id"])
    assert done["queued"] == 2
    assert done["since_ms"] == 0
    _check_replayed(_replayed(endpoint, before, 2), stored[:2])


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"destination": "warehouse"}, "source"),
        ({"source": "shop"}, "destination"),
        ({"source": "nope", "destination": "warehouse"}, "nope"),
        ({"source": "shop", "destination": "nope"}, "nope"),
        ({"source": "other", "destination": "warehouse"}, "subscribe"),
        ({"source": "shop", "destination": "warehouse", "since": "yesterday"}, "since"),
        ({"source": "shop", "destination": "warehouse", "since": 2000, "until": 1000}, "before"),
        ({"source": "shop", "destination": "warehouse", "speed": 2}, "speed"),
    ],
)
def test_invalid_replay_is_a_400(
    admin: httpx.Client, warehouse: dict[str, Any], body: dict[str, Any], words: str
) -> None:
    response = admin.post("/replays", json=body)
    assert response.status_code == 400, response.text
    assert words in response.json()["message"]


def test_unknown_replay_is_a_404(admin: httpx.Client) -> None:
    response = admin.get("/replays/rpl_nope")
    assert response.status_code == 404
    assert response.json()["message"]


def test_segue_replay_command(
    server: SegueProcess,
    endpoint: Endpoint,
    stored: list[dict[str, Any]],
    warehouse: dict[str, Any],
) -> None:
    before = endpoint.count
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    env.update(COLUMNS="200", NO_COLOR="1", SEGUE_ADMIN_TOKEN=ADMIN_TOKEN)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "segue",
            "replay",
            "--source",
            "shop",
            "--destination",
            "warehouse",
            "--url",
            server.url,
            "--timeout",
            str(WAIT_S),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=WAIT_S + 10,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    _check_replayed(_replayed(endpoint, before, 5), stored)
    summary = result.stdout
    assert "Replay rpl_" in summary
    assert "warehouse" in summary
    lines = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in _rows(summary)}
    assert lines["State"] == "finished"
    assert lines["Queued"] == "5"
    assert lines["Delivered"] == "5"
    assert lines["Discarded"] == "0"


def test_segue_replay_command_errors(
    server: SegueProcess, warehouse: dict[str, Any], tmp_path: Any
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    env.update(COLUMNS="200", NO_COLOR="1")
    base = [sys.executable, "-m", "segue", "replay", "--url", server.url]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], capture_output=True, text=True, env=env, timeout=30, check=False
        )

    no_token = run("--source", "shop", "--destination", "warehouse", "--data", str(tmp_path))
    assert no_token.returncode == 2
    assert "admin token" in no_token.stderr

    (tmp_path / "admin_token").write_text(ADMIN_TOKEN + "\n")
    refused = run("--source", "other", "--destination", "warehouse", "--data", str(tmp_path))
    assert refused.returncode == 2
    assert "subscribe" in refused.stderr

    wrong = run("--source", "shop", "--destination", "warehouse", "--token", uuid.uuid4().hex)
    assert wrong.returncode == 2
    assert "401" in wrong.stderr


def _rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.count("│") >= 3]


# -- bulk retry: discarded deliveries back in the queue ----------------------------


def test_bulk_retry_requeues_discarded_deliveries(
    server: SegueProcess, admin: httpx.Client, endpoint: Endpoint
) -> None:
    broken = True

    def flaky(request: ReceivedRequest) -> Reply:
        if broken and request.path.startswith("/flaky"):
            return Reply.json(400, {"message": "not yet"})
        return Reply(200)

    endpoint.reply_with(flaky)
    source = admin.post("/sources", json={"name": f"src-{uuid.uuid4().hex[:8]}"}).json()
    body = {
        "name": "flaky",
        "endpoint": f"{endpoint.url}/flaky",
        "sources": [source["name"]],
        "settings": {"apiKey": "k"},
    }
    assert admin.post("/destinations", json=body).status_code == 201
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        for n in range(3):
            response = http.post(
                "/v1/track", json={"userId": "u", "event": f"E{n}"}, auth=(source["write_key"], "")
            )
            assert response.status_code == 200, response.text
    _until(lambda: _deliveries(admin, "discarded"), lambda d: len(d) == 3, "3 discarded")
    assert len(_paths(endpoint, "/flaky")) == 3

    for wrong, status in (
        ({}, 400),
        ({"destination": "nope"}, 404),
        ({"destination": "flaky", "states": ["succeeded"]}, 400),
        ({"destination": "flaky", "since": "later"}, 400),
        ({"destination": "flaky", "colour": "red"}, 400),
    ):
        response = admin.post("/deliveries/retry", json=wrong)
        assert response.status_code == status, (wrong, response.text)
        assert response.json()["message"]
    other_reason = {"destination": "flaky", "reason": "discarded.500"}
    assert admin.post("/deliveries/retry", json=other_reason).json() == {"retried": 0}

    broken = False
    retry = {"destination": "flaky", "states": ["discarded"], "reason": "discarded.400"}
    assert admin.post("/deliveries/retry", json={**retry, "since": 0}).json() == {"retried": 3}
    done = _until(lambda: _deliveries(admin, "succeeded"), lambda d: len(d) == 3, "3 retried")
    assert all(d["attempt_count"] == 2 for d in done)
    assert [a["status"] for a in done[0]["attempts"]] == [400, 200]
    assert len(_paths(endpoint, "/flaky")) == 6
    assert admin.post("/deliveries/retry", json={"destination": "flaky"}).json() == {"retried": 0}


def _deliveries(admin: httpx.Client, state: str) -> list[dict[str, Any]]:
    response = admin.get("/deliveries", params={"destination": "flaky", "state": state})
    assert response.status_code == 200, response.text
    return list(response.json()["deliveries"])


def _paths(endpoint: Endpoint, prefix: str) -> list[ReceivedRequest]:
    return [r for r in endpoint.requests if r.path.startswith(prefix)]


# -- the runner itself, on the in-memory store (paging, resume, failure, progress) --


async def _store_with_events(count: int) -> tuple[InMemoryStore, str]:
    store = InMemoryStore()
    await store.open()
    source = await store.create_source("s", "wk_s")
    events = [
        NewEvent(source.id, f"m{n}", "track", 1_000 + n, orjson.dumps({"n": n}))
        for n in range(count)
    ]
    await store.append_events(events, dedup_window_ms=0)
    return store, source.id


async def test_runner_pages_until_nothing_is_left() -> None:
    store, source_id = await _store_with_events(5)
    wakes: list[int] = []
    runner = ReplayRunner(store, lambda: wakes.append(1), page_size=2)
    doc = await runner.start(
        source=("s", source_id), destination=("d", "dst_1"), since_ms=1_001, until_ms=None
    )
    await runner.wait(doc["id"])
    saved = await runner.get(doc["id"])
    assert saved is not None
    assert (saved["state"], saved["queued"], saved["last_event_id"]) == ("finished", 4, 5)
    assert len(wakes) == 2  # one per page that queued something
    queued = await store.list_deliveries(DeliveryQuery(destination_id="dst_1"))
    assert sorted(d.event_id for d in queued) == [2, 3, 4, 5]
    assert all(d.replay for d in queued)
    progress = await runner.progress(saved)
    assert (progress["pending"], progress["done"], progress["complete"]) == (4, 0, False)


async def test_runner_resumes_where_it_stopped() -> None:
    store, source_id = await _store_with_events(5)
    runner = ReplayRunner(store, page_size=10)
    doc = {
        "id": "rpl_left",
        "source": "s",
        "source_id": source_id,
        "destination": "d",
        "destination_id": "dst_1",
        "since_ms": 0,
        "until_ms": 10_000,
        "queued": 3,
        "last_event_id": 3,
        "state": "running",
        "error": None,
        "created_at_ms": 0,
        "finished_at_ms": None,
    }
    await store.put_object("replay", "rpl_left", doc)
    assert await runner.resume_unfinished() == 1
    await runner.wait("rpl_left")
    saved = await runner.get("rpl_left")
    assert saved is not None
    assert (saved["state"], saved["queued"]) == ("finished", 5)
    queued = await store.list_deliveries(DeliveryQuery(destination_id="dst_1"))
    assert sorted(d.event_id for d in queued) == [4, 5]
    assert await runner.resume_unfinished() == 0


async def test_runner_records_a_failure() -> None:
    store, source_id = await _store_with_events(1)

    async def broken(*args: Any, **kwargs: Any) -> tuple[int, int]:
        raise RuntimeError("disk full")

    store.enqueue_replay = broken  # type: ignore[method-assign]
    runner = ReplayRunner(store)
    doc = await runner.start(
        source=("s", source_id), destination=("d", "dst_1"), since_ms=None, until_ms=None
    )
    await runner.wait(doc["id"])
    saved = await runner.get(doc["id"])
    assert saved is not None
    assert saved["state"] == "failed"
    assert "disk full" in saved["error"]
    assert saved["finished_at_ms"] is not None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (1_700_000_000_000, 1_700_000_000_000),
        ("1700000000000", 1_700_000_000_000),
        ("2023-11-14T22:13:20Z", 1_700_000_000_000),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000_000),
    ],
)
def test_parse_time(value: object, expected: int | None) -> None:
    assert parse_time(value, "since") == expected


@pytest.mark.parametrize("value", ["soon", True, [1], {"at": 1}])
def test_parse_time_refuses(value: object) -> None:
    with pytest.raises(ReplayError, match="since"):
        parse_time(value, "since")
