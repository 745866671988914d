"""Function destinations through a real ``segue serve``: the delivery engine runs them.

One server per module. Its config names function apps by file (``function = "<path>"``,
the files written here first), one more app is posted with ``code`` + ``runtime``
through the admin API, and each scenario has its own source, so the events of one
never reach the destinations of another. Events go in through the Tracking API and
outcomes are read back from ``GET /api/v1/deliveries?destination=…`` (the debugger):

* the seed's JavaScript examples, unchanged but for the endpoint constant (now a local
  endpoint): onTrack → succeeded with the endpoint's text; onGroup → discarded with
  "company is required"; onAlias → discarded as unsupported; onPage → discarded with
  "Account ID is required"; a type without a handler → unsupported;
* Python functions, every handler sync in one app and async in another, including
  on_delete (through Send Test Event: the Tracking API has no delete call);
* RetryError → awaiting_retry, attempted again after the backoff;
* an infinite loop → stopped at the destination's timeout and retried (ETIMEDOUT),
  while a function and a webhook on the same source keep delivering meanwhile;
* Send Test Event and the suite for function apps.
"""

from __future__ import annotations

import base64
import json
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from tests.support.endpoint import Endpoint, ReceivedRequest, Reply
from tests.support.server import SegueProcess

WAIT_S = 20.0
ENDPOINT_TEXT = "thanks from acme"  # what the local "request bin" answers the seed's onTrack
SAMPLE_TYPES = ("identify", "track", "page", "screen", "group", "alias", "delete")
FINAL = ("succeeded", "discarded", "expired")  # states a delivery never leaves

# -- the seed's code, verbatim (shared/seeds/subscription-functions.txt) ------------------
SEED_ENDPOINT_LINE = 'const endpoint = "https://REDACTED.x.pipedream.net"'
SEED_ON_TRACK = """\
const endpoint = "https://REDACTED.x.pipedream.net"

async function onTrack(event, settings) {
  const url = new URL(endpoint);
  url.searchParams.set("ts", event.timestamp);

  const res = await fetch(url.toString(), {
    body: JSON.stringify(event),
    headers: new Headers({
      "Authentication": 'Basic ' + btoa(`${settings.apiKey}:`),
      "Content-Type": "application/json",
    }),
    method: "post",
  })

  return await res.text() // or res.json() for JSON APIs
}
"""
SEED_ERRORS = """\
async function onGroup(event, settings) {
  if (!event.company) {
    throw new InvalidEventPayload("company is required")
  }
}

async function onPage(event, settings) {
  if (!settings.accountId) {
    throw new ValidationError("Account ID is required")
  }
}

async function onAlias(event, settings) {
  throw new EventNotSupported("alias is not supported")
}
"""
# not from the seed: one handler that logs, for the Log Output checks
LOGGING_IDENTIFY = """
async function onIdentify(event, settings) {
  console.log("identify", event.userId, "with key", settings.apiKey ? "set" : "unset")
  return { success: true }
}
"""


def seed_js(endpoint_url: str) -> str:
    """The seed's examples with only the endpoint constant replaced."""
    on_track = SEED_ON_TRACK.replace(
        SEED_ENDPOINT_LINE, f"const endpoint = {json.dumps(endpoint_url)}"
    )
    assert on_track != SEED_ON_TRACK
    return on_track + "\n" + SEED_ERRORS + LOGGING_IDENTIFY


# -- Python functions -------------------------------------------------------------------
def python_all_types(mode: str) -> str:
    """A handler for every type, all ``def`` or all ``async def``.

    No on_batch: with one, the delivery engine hands it whole groups of events
    (tests/integration/test_function_batch.py), and the per-type handlers are the point here.
    """
    prefix = "async def" if mode == "async" else "def"
    pause = "    await asyncio.sleep(0)\n" if mode == "async" else ""
    handlers = "".join(
        f"\n\n{prefix} on_{kind}(event, settings):\n{pause}    return answer(event, {kind!r})\n"
        for kind in SAMPLE_TYPES
    )
    return (
        textwrap.dedent(
            f"""\
        import asyncio
        import logging

        MODE = {mode!r}


        def answer(event, kind):
            print(f"{{kind}} handled ({{MODE}})", event.get("messageId"))
            logging.getLogger("acme").warning("logged from on_%s", kind)
            return {{"handled": kind, "mode": MODE, "messageId": event.get("messageId"),
                     "userId": event.get("userId")}}
        """
        )
        + handlers
    )


PY_RETRY = """\
from segue.functions import RetryError


async def on_track(event, settings):
    print("the partner is down, attempt for", event["messageId"])
    raise RetryError("partner API unavailable, try again later")
"""


def py_spinner(url: str) -> str:
    return textwrap.dedent(
        f"""\
        from segue.functions import fetch


        async def on_track(event, settings):
            if event["event"] != "Spin":
                return "not spinning"
            # tell the test the loop starts now, then never return
            await fetch({json.dumps(url + "/spinning")}, method="POST",
                        json={{"messageId": event["messageId"]}})
            while True:
                pass
        """
    )


def py_relay(url: str) -> str:
    return textwrap.dedent(
        f"""\
        from segue.functions import fetch


        async def on_track(event, settings):
            res = await fetch({json.dumps(url + "/relay")}, method="POST", json=event)
            return {{"status": res.status}}
        """
    )


# -- the server ---------------------------------------------------------------------------
SOURCES = {"js": "wk_js", "py": "wk_py", "retry": "wk_retry", "spin": "wk_spin"}


def _config(folder: Path, url: str) -> str:
    files = {
        "seed.js": seed_js(f"{url}/seed"),
        "py_sync.py": python_all_types("sync"),
        "py_retry.py": PY_RETRY,
        "spinner.py": py_spinner(url),
        "relay.py": py_relay(url),
    }
    for name, text in files.items():
        (folder / name).write_text(text, "utf-8")
    sources = "".join(
        f'[[sources]]\nname = "{name}"\nwrite_key = "{key}"\n\n' for name, key in SOURCES.items()
    )
    return (
        sources
        + f"""
[egress]
allow = ["127.0.0.0/8"]
allow_http = true

[[apps]]
name = "seed-js"
function = "{folder / "seed.js"}"

[[apps]]
name = "py-sync"
function = "{folder / "py_sync.py"}"

[[apps]]
name = "py-retry"
function = "{folder / "py_retry.py"}"

[[apps]]
name = "spinner"
function = "{folder / "spinner.py"}"

[[apps]]
name = "relay"
function = "{folder / "relay.py"}"

[[destinations]]
name = "seed-js"
app = "seed-js"
sources = ["js"]
settings = {{ apiKey = "segment" }}

[[destinations]]
name = "py-sync"
app = "py-sync"
sources = ["py"]

[[destinations]]
name = "py-retry"
app = "py-retry"
sources = ["retry"]
first_backoff_s = 0.2
max_backoff_s = 0.4

[[destinations]]
name = "spinner"
app = "spinner"
sources = ["spin"]
timeout_s = 1
first_backoff_s = 60

[[destinations]]
name = "relay"
app = "relay"
sources = ["spin"]

[[destinations]]
name = "hook"
endpoint = "{url}/hook"
sources = ["spin"]
"""
    )


@dataclass
class Env:
    server: SegueProcess
    sink: Endpoint
    wall: dict[int, float] = field(default_factory=dict)  # request index -> time.time()

    def admin(self) -> httpx.Client:
        return self.server.admin()

    def send(self, source: str, batch: list[dict[str, Any]]) -> None:
        response = httpx.post(
            f"{self.server.url}/v1/batch",
            json={"batch": batch},
            auth=(SOURCES[source], ""),
            timeout=10.0,
        )
        assert response.status_code == 200, response.text

    def deliveries(self, destination: str) -> list[dict[str, Any]]:
        with self.admin() as admin:
            response = admin.get("/deliveries", params={"destination": destination, "limit": 1000})
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["deliveries"]
        return rows

    def wait_deliveries(
        self,
        destination: str,
        done: Callable[[dict[str, dict[str, Any]]], bool],
        what: str,
        timeout: float = WAIT_S,
    ) -> dict[str, dict[str, Any]]:
        """Poll the debugger (bounded) until ``done(messageId -> delivery)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            rows = {row["event"]["messageId"]: row for row in self.deliveries(destination)}
            if done(rows):
                return rows
            assert time.monotonic() < deadline, f"{what} not reached: {json.dumps(rows)[:2000]}"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    folder = tmp_path_factory.mktemp("function-destinations")
    wall: dict[int, float] = {}
    lock = threading.Lock()

    def respond(request: ReceivedRequest) -> Reply:
        with lock:
            wall[request.index] = time.time()
        if request.path.startswith("/seed"):
            return Reply(200, ENDPOINT_TEXT.encode(), (("Content-Type", "text/plain"),))
        return Reply.json(200, {"ok": True})

    with Endpoint(respond) as sink:
        server = SegueProcess(folder / "data", config_text=_config(folder, sink.url))
        server.start(timeout=30.0)
        try:
            yield Env(server, sink, wall)
        finally:
            server.stop()
        assert sink.errors == []


def _message(kind: str, tag: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "messageId": f"{tag}-{kind}-{uuid.uuid4().hex[:8]}",
        "userId": f"{tag}-user",
        "timestamp": "2024-05-01T12:34:56.789Z",
        **fields,
    }


def _last_attempt(delivery: dict[str, Any]) -> dict[str, Any]:
    attempts: list[dict[str, Any]] = delivery["attempts"]
    assert attempts, delivery
    return max(attempts, key=lambda a: a["number"])


def _settled(count: int) -> Callable[[dict[str, dict[str, Any]]], bool]:
    return lambda rows: len(rows) >= count and all(row["state"] in FINAL for row in rows.values())


# -- the seed's JavaScript ----------------------------------------------------------------
@pytest.fixture(scope="module")
def seed_deliveries(env: Env) -> dict[str, dict[str, Any]]:
    """identify, track, page, screen, group, alias sent to the seed's function: by type."""
    tag = f"js{uuid.uuid4().hex[:6]}"
    messages = {
        "track": _message("track", tag, event="Order Completed", properties={"total": 42}),
        "group": _message("group", tag, groupId="grp_1", traits={"name": "Acme"}),  # no company
        "alias": _message("alias", tag, previousId=f"{tag}-anon"),
        "page": _message("page", tag, name="Pricing"),
        "identify": _message("identify", tag, traits={"plan": "premium"}),
        "screen": _message("screen", tag, name="Home"),  # the code has no onScreen
    }
    env.send("js", list(messages.values()))
    rows = env.wait_deliveries("seed-js", _settled(len(messages)), "the seed's deliveries")
    by_id = {m["messageId"]: kind for kind, m in messages.items()}
    return {by_id[mid]: row for mid, row in rows.items() if mid in by_id}


def test_seed_on_track_posts_with_search_params_and_basic_auth(
    env: Env, seed_deliveries: dict[str, dict[str, Any]]
) -> None:
    delivery = seed_deliveries["track"]
    assert delivery["state"] == "succeeded", delivery
    attempt = _last_attempt(delivery)
    assert attempt["kind"] == "function"
    assert attempt["callback_return"] == ENDPOINT_TEXT  # return await res.text()
    assert attempt["logs"] == ""  # the seed's onTrack prints nothing
    assert attempt["request"]["handler"] == "track"
    message_id = delivery["event"]["messageId"]
    received = [
        r for r in env.sink.requests if r.path.startswith("/seed") and b'"type":"track"' in r.body
    ]
    mine = [r for r in received if r.json()["messageId"] == message_id]
    assert len(mine) == 1, [r.path for r in received]
    request = mine[0]
    assert request.method == "POST"
    url = urlsplit(request.path)
    assert url.path == "/seed"
    assert parse_qs(url.query) == {"ts": [delivery["event"]["timestamp"]]}
    assert request.header("Authentication") == "Basic " + base64.b64encode(b"segment:").decode()
    assert request.header("Content-Type") == "application/json"
    assert request.json() == delivery["event"]  # JSON.stringify(event): the stored event


def test_seed_on_group_without_company_is_discarded(
    seed_deliveries: dict[str, dict[str, Any]],
) -> None:
    delivery = seed_deliveries["group"]
    assert delivery["state"] == "discarded", delivery
    assert delivery["reason"] == "discarded.MESSAGE_REJECTED"
    assert "company is required" in delivery["message"]
    assert "InvalidEventPayload" in delivery["message"]
    assert delivery["attempt_count"] == 1


def test_seed_on_alias_is_discarded_as_unsupported(
    seed_deliveries: dict[str, dict[str, Any]],
) -> None:
    delivery = seed_deliveries["alias"]
    assert delivery["state"] == "discarded", delivery
    assert delivery["reason"] == "discarded.unsupported"
    assert "alias is not supported" in delivery["message"]
    assert delivery["attempt_count"] == 1


def test_seed_on_page_without_account_id_is_discarded(
    seed_deliveries: dict[str, dict[str, Any]],
) -> None:
    delivery = seed_deliveries["page"]
    assert delivery["state"] == "discarded", delivery
    assert delivery["reason"] == "discarded.MESSAGE_REJECTED"
    assert "Account ID is required" in delivery["message"]
    assert "ValidationError" in delivery["message"]


def test_a_type_without_handler_is_implicitly_unsupported(
    seed_deliveries: dict[str, dict[str, Any]],
) -> None:
    delivery = seed_deliveries["screen"]
    assert delivery["state"] == "discarded", delivery
    assert delivery["reason"] == "discarded.unsupported"
    assert "EventNotSupported" in delivery["message"]


def test_console_log_is_stored_with_the_attempt(
    seed_deliveries: dict[str, dict[str, Any]],
) -> None:
    delivery = seed_deliveries["identify"]
    assert delivery["state"] == "succeeded", delivery
    attempt = _last_attempt(delivery)
    assert attempt["callback_return"] == {"success": True}
    assert attempt["logs"].strip() == f"identify {delivery['event']['userId']} with key set"
    assert attempt["request"]["settings"]["apiKey"] != "segment"  # masked in the debugger


# -- Python functions ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def py_async_destination(env: Env) -> str:
    """The async twin of py-sync, created through the admin API with ``code`` + ``runtime``."""
    with env.admin() as admin:
        created = admin.post(
            "/apps",
            json={"name": "py-async", "code": python_all_types("async"), "runtime": "python"},
        )
        assert created.status_code == 201, created.text
        destination = admin.post(
            "/destinations", json={"name": "py-async", "app": "py-async", "sources": ["py"]}
        )
        assert destination.status_code == 201, destination.text
    return "py-async"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_python_handlers_of_every_tracking_type_return_values(
    env: Env, py_async_destination: str, mode: str
) -> None:
    tag = f"py{uuid.uuid4().hex[:6]}"
    messages = [
        _message("identify", tag, traits={"plan": "free"}),
        _message("track", tag, event="Signed Up"),
        _message("page", tag, name="Docs"),
        _message("screen", tag, name="Settings"),
        _message("group", tag, groupId="grp_9"),
        _message("alias", tag, previousId=f"{tag}-anon"),
    ]
    env.send("py", messages)  # both py-sync and py-async subscribe to source `py`
    wanted = {m["messageId"] for m in messages}
    rows = env.wait_deliveries(
        f"py-{mode}",
        lambda rows: wanted <= set(rows) and all(rows[m]["state"] in FINAL for m in wanted),
        f"py-{mode} deliveries",
    )
    for message in messages:
        delivery = rows[message["messageId"]]
        assert delivery["state"] == "succeeded", delivery
        attempt = _last_attempt(delivery)
        kind = message["type"]
        assert attempt["callback_return"] == {
            "handled": kind,
            "mode": mode,
            "messageId": message["messageId"],
            "userId": message["userId"],
        }
        assert f"{kind} handled ({mode}) {message['messageId']}" in attempt["logs"]
        assert f"WARNING acme: logged from on_{kind}" in attempt["logs"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_python_on_delete_through_send_test_event(
    env: Env, py_async_destination: str, mode: str
) -> None:
    with env.admin() as admin:
        response = admin.post(f"/destinations/py-{mode}/test", json={"type": "delete"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["outcome"] == "succeeded", result
    assert result["event"]["type"] == "delete"
    assert result["callback_return"] == {
        "handled": "delete",
        "mode": mode,
        "messageId": result["event"]["messageId"],
        "userId": result["event"]["userId"],
    }
    assert f"delete handled ({mode})" in result["logs"]


def test_retry_error_is_retried_after_the_backoff(env: Env) -> None:
    message = _message("track", f"retry{uuid.uuid4().hex[:6]}", event="Order Completed")
    env.send("retry", [message])
    mid = message["messageId"]
    rows = env.wait_deliveries(
        "py-retry",
        lambda rows: mid in rows and rows[mid]["attempt_count"] >= 2,
        "a second attempt",
    )
    delivery = rows[mid]
    assert delivery["state"] in ("awaiting_retry", "pending", "executing"), delivery
    attempts = sorted(delivery["attempts"], key=lambda a: a["number"])
    assert [a["number"] for a in attempts[:2]] == [1, 2]
    for attempt in attempts:
        assert attempt["outcome_reason"] == "RETRY", attempt
        assert attempt["state"] == "awaiting_retry"
        assert "partner API unavailable, try again later" in attempt["message"]
        assert f"attempt for {mid}" in attempt["logs"]
    # the second attempt came after the first one's backoff, not at once
    assert attempts[1]["at_ms"] - attempts[0]["at_ms"] >= 100


def test_an_infinite_loop_is_retried_while_other_destinations_keep_delivering(env: Env) -> None:
    tag = f"spin{uuid.uuid4().hex[:6]}"
    spin = _message("track", tag, event="Spin")
    env.send("spin", [spin])
    started = env.sink.wait_until(
        lambda requests: any(
            r.path == "/spinning" and r.json()["messageId"] == spin["messageId"] for r in requests
        ),
        WAIT_S,
        "the loop to start",
    )
    spin_request = next(r for r in started if r.path == "/spinning")
    spinning_since = env.wall[spin_request.index]

    # sent while the loop runs: the same source, so they go to the spinner, a second
    # function (relay: fetch to the endpoint) and a webhook (hook)
    after = [_message("track", tag, event="After", properties={"i": i}) for i in range(10)]
    env.send("spin", after)
    wanted = {m["messageId"] for m in after}

    def arrived(path: str) -> Callable[[list[ReceivedRequest]], bool]:
        return lambda requests: (
            wanted <= {r.json().get("messageId") for r in requests if r.path == path}
        )

    received = env.sink.wait_until(arrived("/relay"), WAIT_S, "relayed events")
    received = env.sink.wait_until(arrived("/hook"), WAIT_S, "webhook events")
    others = [
        r for r in received if r.path in ("/relay", "/hook") and r.json()["messageId"] in wanted
    ]
    last_arrival = max(env.wall[r.index] for r in others)

    rows = env.wait_deliveries(
        "spinner",
        lambda rows: spin["messageId"] in rows and rows[spin["messageId"]]["attempt_count"] >= 1,
        "the loop's first attempt to end",
    )
    delivery = rows[spin["messageId"]]
    assert delivery["state"] == "awaiting_retry", delivery
    assert delivery["reason"] == "awaiting-retry.ETIMEDOUT"
    attempt = _last_attempt(delivery)
    assert attempt["outcome_reason"] == "ETIMEDOUT"
    assert "Timeout" in attempt["message"]
    assert 900 <= attempt["duration_ms"] < 3000, attempt  # stopped at timeout_s = 1
    loop_ended = attempt["at_ms"] / 1000
    # every event sent after the loop started reached both other destinations before
    # the loop's attempt was over (timeout at 1 s, then killed)
    assert spinning_since < last_arrival < loop_ended, (spinning_since, last_arrival, loop_ended)
    print(
        f"loop started, {len(others)} deliveries to other destinations within"
        f" {last_arrival - spinning_since:.3f} s; the loop's attempt ended"
        f" {loop_ended - spinning_since:.3f} s after it started"
    )
    # and the function pool served the spinner's own other events meanwhile too
    spinner_rows = env.wait_deliveries(
        "spinner",
        lambda rows: wanted <= set(rows) and all(rows[m]["state"] == "succeeded" for m in wanted),
        "the spinner's other events",
    )
    assert all(_last_attempt(spinner_rows[m])["callback_return"] == "not spinning" for m in wanted)
    relay_rows = env.wait_deliveries(
        "relay",
        lambda rows: wanted <= set(rows) and all(rows[m]["state"] == "succeeded" for m in wanted),
        "relay deliveries",
    )
    assert all(_last_attempt(relay_rows[m])["callback_return"] == {"status": 200} for m in wanted)


# -- Send Test Event and the suite ---------------------------------------------------------
def test_send_test_event_to_a_javascript_function_app(env: Env) -> None:
    with env.admin() as admin:
        response = admin.post(
            "/apps/seed-js/test", json={"type": "track", "settings": {"apiKey": "segment"}}
        )
        logged = admin.post("/apps/seed-js/test", json={"type": "identify"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["outcome"] == "succeeded", result
    assert result["kind"] == "function"
    assert result["callback_return"] == ENDPOINT_TEXT
    assert result["logs"] == ""
    assert result["request"]["settings"] == {"apiKey": "••••••"}
    assert logged.status_code == 200, logged.text
    assert logged.json()["callback_return"] == {"success": True}
    assert logged.json()["logs"].startswith("identify ")


def test_send_test_event_to_a_python_function_app(env: Env) -> None:
    with env.admin() as admin:
        response = admin.post("/apps/py-sync/test", json={"type": "page"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["outcome"] == "succeeded", result
    assert result["callback_return"]["handled"] == "page"
    assert "page handled (sync)" in result["logs"]


@pytest.mark.parametrize(
    ("app", "passing"),
    [
        ("seed-js", {"track", "identify"}),  # the seed's handlers + onIdentify; no company etc.
        ("py-sync", set(SAMPLE_TYPES)),
        ("py-retry", set()),
    ],
)
def test_the_suite_passes_exactly_the_types_with_a_working_handler(
    env: Env, app: str, passing: set[str]
) -> None:
    with env.admin() as admin:
        response = admin.post(f"/apps/{app}/test/suite", json={"settings": {"apiKey": "segment"}})
    assert response.status_code == 200, response.text
    rows = response.json()["results"]
    assert [row["type"] for row in rows] == list(SAMPLE_TYPES)
    assert {row["type"] for row in rows if row["passed"]} == passing, rows
    for row in rows:
        assert "callback_return" in row and "logs" in row
        if row["type"] not in passing and app != "py-retry":
            assert row["outcome"] == "discarded", row
    if app == "py-retry":
        track = rows[SAMPLE_TYPES.index("track")]
        assert track["outcome"] == "retry" and track["reason"] == "RETRY", track
