"""segue.partner end to end: segue's own delivery engine → an SDK endpoint → the debugger.

A real ``segue serve`` (subprocess) delivers events that came in through the Tracking
API to two SDK destinations served by uvicorn on 127.0.0.1 in a background thread:

* ``/crm``: examples/partner_endpoint.py as shipped (the tiny CRM);
* ``/lab``: a destination built here whose track handler answers with the outcome the
  event asks for (``properties.outcome``), one of each row of the seeds' status table.

Each test then reads the delivery debugger (``GET /api/v1/deliveries``) and checks the
state segue recorded: 2xx succeeded, 4xx and 501 discarded with the SDK's message,
500 and 503 awaiting retry with the attempts growing.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import httpx
import pytest
import uvicorn
from tests.support.server import SegueProcess, free_port

from segue.asgi import Receive, Scope, Send
from segue.partner import (
    Accepted,
    Context,
    Destination,
    Forbidden,
    InvalidEventPayload,
    Unavailable,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "partner_endpoint.py"
CRM_KEY = "crm-live-key"
LAB_KEY = "lab-live-key"
WAIT_S = 15.0
SECRET = "postgres://partner:hunter2@db.internal"  # in an exception; must never leave the SDK


# -- the partner side --------------------------------------------------------------------


def load_example() -> ModuleType:
    with mock.patch.dict(os.environ, {"CRM_API_KEY": CRM_KEY}):
        spec = importlib.util.spec_from_file_location("partner_endpoint_e2e", EXAMPLE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def build_lab(calls: list[dict[str, Any]]) -> Destination:
    lab = Destination(api_key_check=lambda key: key == LAB_KEY)

    @lab.track
    def track(event: Any, context: Context) -> Any:  # plain: runs in a worker thread
        outcome = event["properties"]["outcome"]
        calls.append({"messageId": event["messageId"], "outcome": outcome})
        if outcome == "ok":
            return {"stored": event["userId"]}
        if outcome == "accepted":
            return Accepted({"queued": True})
        if outcome == "invalid":
            raise InvalidEventPayload("Missing email address")
        if outcome == "forbidden":
            raise Forbidden("this key may not write events")
        if outcome == "unavailable":
            raise Unavailable("down for maintenance", retry_after=1)
        raise RuntimeError(f"cannot connect to {SECRET}")

    @lab.identify
    async def identify(event: Any, context: Context) -> Any:
        # the legacy destination sends snake_case keys: the handler reads camelCase anyway
        return {
            "user": event["userId"],
            "email": event["traits"]["email"],
            "region": context.settings["region"],
        }

    return lab


class Uvicorn:
    """uvicorn serving ``app`` on 127.0.0.1 in a daemon thread."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Any]) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{config.port}"
        self.thread = threading.Thread(target=self.server.run, name="sdk-uvicorn", daemon=True)

    def __enter__(self) -> Uvicorn:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def crm() -> ModuleType:
    return load_example()


@pytest.fixture(scope="module")
def lab_calls() -> list[dict[str, Any]]:
    return []


@pytest.fixture(scope="module")
def partner(crm: ModuleType, lab_calls: list[dict[str, Any]]) -> Iterator[Uvicorn]:
    lab = build_lab(lab_calls)
    crm_dest: Destination = crm.dest

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        """Two SDK destinations on one server, by first path segment."""
        chosen = crm_dest if scope.get("path", "").startswith("/crm") else lab
        await chosen(scope, receive, send)  # lifespan included: the SDK completes it

    with Uvicorn(app) as server:
        yield server


# -- the segue side ----------------------------------------------------------------------


def segue_config(url: str) -> str:
    retry = "first_backoff_s = 0.2\nmax_backoff_s = 0.5"
    return f"""
[[sources]]
name = "crm"
write_key = "wk_crm"

[[sources]]
name = "lab"
write_key = "wk_lab"

[[sources]]
name = "legacy"
write_key = "wk_legacy"

[egress]
allow = ["127.0.0.0/8"]
allow_http = true

[[apps]]
name = "crm"
endpoint = "{url}/crm"
settings = [{{ label = "API Key", key = "apiKey", required = true, sensitive = true }}]

[[apps]]
name = "lab"
endpoint = "{url}/lab"
settings = [
  {{ label = "API Key", key = "apiKey", required = true, sensitive = true }},
  {{ label = "Region", key = "region" }},
]

[[destinations]]
name = "crm"
app = "crm"
sources = ["crm"]
settings = {{ apiKey = "{CRM_KEY}" }}
{retry}

[[destinations]]
name = "crm-wrong-key"
app = "crm"
sources = ["crm"]
settings = {{ apiKey = "an-expired-key" }}
{retry}

[[destinations]]
name = "lab"
app = "lab"
sources = ["lab"]
settings = {{ apiKey = "{LAB_KEY}", region = "eu" }}
{retry}

[[destinations]]
name = "lab-legacy"
app = "lab"
sources = ["legacy"]
snake_case = true
settings = {{ apiKey = "{LAB_KEY}", region = "us" }}
{retry}
"""


@pytest.fixture(scope="module")
def segue(tmp_path_factory: pytest.TempPathFactory, partner: Uvicorn) -> Iterator[SegueProcess]:
    data = tmp_path_factory.mktemp("partner-sdk") / "data"
    process = SegueProcess(data, config_text=segue_config(partner.url)).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def admin(segue: SegueProcess) -> Iterator[httpx.Client]:
    with segue.admin() as client:
        yield client


def send(segue: SegueProcess, write_key: str, call: str, body: dict[str, Any]) -> str:
    """One call through the Tracking API; returns its messageId."""
    message_id = f"sdk-e2e-{uuid.uuid4().hex[:12]}"
    response = httpx.post(
        f"{segue.url}/v1/{call}",
        json={**body, "messageId": message_id},
        auth=(write_key, ""),
        timeout=10.0,
    )
    assert response.status_code == 200, response.text
    return message_id


def delivery_of(
    admin: httpx.Client,
    destination: str,
    message_id: str,
    until: Callable[[dict[str, Any]], bool],
    what: str,
) -> dict[str, Any]:
    """Poll the debugger (at most WAIT_S) until this event's delivery satisfies ``until``."""
    deadline = time.monotonic() + WAIT_S
    found: dict[str, Any] | None = None
    while True:
        response = admin.get("/deliveries", params={"destination": destination, "limit": 200})
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["deliveries"]
        found = next(
            (d for d in rows if (d["event"] or {}).get("messageId") == message_id),
            None,
        )
        if found is not None and until(found):
            return found
        assert time.monotonic() < deadline, f"{what} not reached within {WAIT_S} s: {found}"
        time.sleep(0.05)


def header(attempt: dict[str, Any], name: str) -> str | None:
    """A response header of a recorded attempt, whatever casing the transport kept."""
    headers = attempt["response"]["headers"]
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def settled(state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda d: d["state"] == state


def track(outcome: str) -> dict[str, Any]:
    return {"userId": "u-42", "event": "Order Completed", "properties": {"outcome": outcome}}


# -- 2xx: succeeded -----------------------------------------------------------------------


def test_200_is_succeeded(segue: SegueProcess, admin: httpx.Client) -> None:
    message_id = send(segue, "wk_lab", "track", track("ok"))
    delivery = delivery_of(admin, "lab", message_id, settled("succeeded"), "succeeded")
    (attempt,) = delivery["attempts"]
    assert attempt["status"] == 200
    assert header(attempt, "Content-Type") == "application/json"
    assert attempt["response"]["body"] == '{"stored":"u-42"}'
    assert delivery["message"] is None


def test_202_is_succeeded(segue: SegueProcess, admin: httpx.Client) -> None:
    message_id = send(segue, "wk_lab", "track", track("accepted"))
    delivery = delivery_of(admin, "lab", message_id, settled("succeeded"), "succeeded")
    assert [a["status"] for a in delivery["attempts"]] == [202]


def test_settings_and_any_casing_arrive(segue: SegueProcess, admin: httpx.Client) -> None:
    body = {"userId": "u-7", "traits": {"email": "ada@example.com"}}
    for destination, write_key, region in (
        ("lab", "wk_lab", "eu"),
        ("lab-legacy", "wk_legacy", "us"),
    ):
        message_id = send(segue, write_key, "identify", body)
        delivery = delivery_of(admin, destination, message_id, settled("succeeded"), destination)
        (attempt,) = delivery["attempts"]
        sent = attempt["request"]["body"]
        assert ('"user_id"' in sent) is (destination == "lab-legacy")  # the legacy form
        assert attempt["status"] == 200
        assert attempt["response"]["body"] == (
            f'{{"user":"u-7","email":"ada@example.com","region":"{region}"}}'
        )


def test_the_example_crm_stores_counts_and_deletes(
    segue: SegueProcess, admin: httpx.Client, crm: ModuleType
) -> None:
    user = f"crm-{uuid.uuid4().hex[:8]}"
    identify = send(segue, "wk_crm", "identify", {"userId": user, "traits": {"email": "a@b.c"}})
    tracks = [send(segue, "wk_crm", "track", {"userId": user, "event": "Viewed"}) for _ in "ab"]
    for message_id in (identify, *tracks):
        delivery_of(admin, "crm", message_id, settled("succeeded"), "crm succeeded")
    assert crm.contacts[user]["email"] == "a@b.c"
    assert crm.tracks[user] == 2

    # delete reaches a partner only from segue itself: Send Test Event with that message
    event = {"type": "delete", "userId": user, "messageId": f"delete-{user}"}
    result = admin.post("/destinations/crm/test", json={"event": event})
    assert result.status_code == 200, result.text
    assert (result.json()["status"], result.json()["outcome"]) == (200, "succeeded")
    assert user not in crm.contacts
    assert user not in crm.tracks


def test_the_example_passes_the_test_suite_for_what_it_supports(admin: httpx.Client) -> None:
    response = admin.post("/destinations/crm/test/suite", json={})
    assert response.status_code == 200, response.text
    rows = {row["type"]: row for row in response.json()["results"]}
    for supported in ("identify", "track", "delete"):
        assert (rows[supported]["status"], rows[supported]["passed"]) == (200, True), supported
    for unsupported in ("page", "screen", "group", "alias"):
        assert rows[unsupported]["status"] == 501
        assert rows[unsupported]["message"] == f"type {unsupported} is not supported"


# -- 4xx and 501: discarded, with the SDK's message -----------------------------------------


def test_400_is_discarded_with_the_message(segue: SegueProcess, admin: httpx.Client) -> None:
    message_id = send(segue, "wk_crm", "identify", {"userId": "no-mail", "traits": {"n": 1}})
    delivery = delivery_of(admin, "crm", message_id, settled("discarded"), "discarded")
    assert delivery["reason"] == "discarded.400"
    assert delivery["message"] == "Missing email address"  # the seeds' example
    assert delivery["attempt_count"] == 1
    (attempt,) = delivery["attempts"]
    assert attempt["status"] == 400
    assert header(attempt, "Content-Type") == "application/json"


@pytest.mark.parametrize(
    ("destination", "write_key", "call", "body", "reason", "message"),
    [
        ("lab", "wk_lab", "track", track("invalid"), "discarded.400", "Missing email address"),
        (
            "lab",
            "wk_lab",
            "track",
            track("forbidden"),
            "discarded.403",
            "this key may not write events",
        ),
        (
            "crm-wrong-key",
            "wk_crm",
            "track",
            {"userId": "u", "event": "E"},
            "discarded.401",
            "invalid API key",
        ),
        (
            "crm",
            "wk_crm",
            "page",
            {"userId": "u", "name": "Home"},
            "discarded.unsupported",
            "type page is not supported",
        ),
    ],
    ids=["400", "403", "401", "501"],
)
def test_client_errors_are_discarded(
    segue: SegueProcess,
    admin: httpx.Client,
    destination: str,
    write_key: str,
    call: str,
    body: dict[str, Any],
    reason: str,
    message: str,
) -> None:
    message_id = send(segue, write_key, call, body)
    delivery = delivery_of(admin, destination, message_id, settled("discarded"), reason)
    assert (delivery["reason"], delivery["message"], delivery["attempt_count"]) == (
        reason,
        message,
        1,
    )


# -- 500 and 503: retried ------------------------------------------------------------------


def test_503_is_retried_with_retry_after(
    segue: SegueProcess, admin: httpx.Client, lab_calls: list[dict[str, Any]]
) -> None:
    message_id = send(segue, "wk_lab", "track", track("unavailable"))
    delivery = delivery_of(
        admin,
        "lab",
        message_id,
        lambda d: d["state"] == "awaiting_retry" and d["attempt_count"] >= 3,
        "three attempts",
    )
    assert delivery["reason"] == "awaiting-retry.503"
    assert delivery["message"] == "down for maintenance"
    assert delivery["next_attempt_at_ms"] is not None
    statuses = [a["status"] for a in delivery["attempts"]]
    assert len(statuses) >= 3
    assert set(statuses) == {503}
    for attempt in delivery["attempts"]:
        assert header(attempt, "Retry-After") == "1"
    # Retry-After: 1 was honoured between attempts (backoff alone would be ≤ 0.5 s)
    times = [a["at_ms"] for a in sorted(delivery["attempts"], key=lambda a: a["number"])]
    assert all(later - earlier >= 900 for earlier, later in itertools.pairwise(times))
    assert sum(1 for c in lab_calls if c["messageId"] == message_id) >= 3


def test_crash_is_a_retried_500_that_leaks_nothing(
    segue: SegueProcess, admin: httpx.Client
) -> None:
    message_id = send(segue, "wk_lab", "track", track("crash"))
    delivery = delivery_of(
        admin,
        "lab",
        message_id,
        lambda d: d["state"] == "awaiting_retry" and d["attempt_count"] >= 2,
        "two attempts",
    )
    assert delivery["reason"] == "awaiting-retry.500"
    assert delivery["message"] == "internal error"
    for attempt in delivery["attempts"]:
        assert attempt["status"] == 500
        assert attempt["response"]["body"] == '{"message":"internal error"}'
        assert "hunter2" not in str(attempt)
