"""Acceptance: events from Segment's official Python client reach a partner endpoint.

One scenario, run once per module: ``segment-analytics-python`` sends every type of
call (identify, track, page, screen, group, alias) to a real ``segue serve``; two
destinations of the app ``acme`` subscribe to the source and deliver to a real HTTP
server in the test (tests/support/endpoint.py). The tests then check what arrived
against the partner contract of shared/seeds/subscription-http-endpoint.txt: each
event exactly once, every header byte-exact, the body identical to the stored event,
and the legacy snake_case form for the second destination.

Segue-side checks use only public surfaces: the Tracking API, ``GET /api/v1/events``
and ``/metrics``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from segment.analytics.client import Client
from tests.support.endpoint import Endpoint, ReceivedRequest
from tests.support.observe import CollectWarnings, deliveries_metric, wait_for_deliveries
from tests.support.server import WRITE_KEY, SegueProcess

PER_TYPE = 200  # 6 types x 200 = 1,200 events, each delivered to two destinations
TYPES = ("identify", "track", "page", "screen", "group", "alias")
APP_PATH = "/partners/acme/v1"
DELIVERY_WAIT_S = 60.0

MAIN = "acme-eu"  # the seeds' example destination: apiKey "segment"
MAIN_SETTINGS = {"apiKey": "segment", "region": "eu", "customSettingOne": "custom setting value"}
LEGACY = "acme-legacy"  # same app, snake_case = true
LEGACY_SETTINGS = {"apiKey": "legacy-key", "region": "us", "customSettingOne": "snake"}

# every header of the contract, value byte for byte (Content-Length: checked per body)
CONTRACT_HEADERS = {
    "Accept": "*/*",
    "Cache-Control": "no-cache",
    "Connection": "Keep-Alive",
    "Content-Type": "application/json",
    "User-Agent": "Segment.io/1.0",
}
CONTRACT_NAMES = {
    *CONTRACT_HEADERS,
    "Authorization",
    "Content-Length",
    "X-Segment-Settings",
}
# what HTTP/1.1 itself requires on top of the contract
TRANSPORT_NAMES = {"Host"}


def _config(endpoint_url: str) -> str:
    def inline(settings: dict[str, str]) -> str:
        return "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in settings.items()) + "}"

    return f"""
[[sources]]
name = "test"
write_key = "{WRITE_KEY}"

[egress]
allow = ["127.0.0.0/8"]
allow_http = true

[[apps]]
name = "acme"
endpoint = "{endpoint_url}{APP_PATH}"

[[apps.settings]]
label = "API Key"
key = "apiKey"
required = true
sensitive = true
description = "Your Acme API key"

[[apps.settings]]
label = "Region"
key = "region"
description = "eu or us"

[[apps.settings]]
label = "Custom Setting One"  # no key: the settings builder makes customSettingOne
description = "Anything"

[[destinations]]
name = "{MAIN}"
app = "acme"
sources = ["test"]
settings = {inline(MAIN_SETTINGS)}

[[destinations]]
name = "{LEGACY}"
app = "acme"
sources = ["test"]
snake_case = true
settings = {inline(LEGACY_SETTINGS)}
"""


# -- what the client sends ------------------------------------------------------
def _properties(tag: str, i: int) -> dict[str, Any]:
    return {
        "tag": tag,
        "index": i,
        "revenue": 19.99 + i / 100,
        "currency": "EUR",
        "inStock": i % 2 == 0,
        "coupon": None,
        "tags": ["a", "b", str(i)],
        "nested": {"level": {"deeper": [1, 2.5, {"k": 'ü✓ 漢字 "quoted" \\ /'}]}},
    }


def _traits(tag: str, i: int) -> dict[str, Any]:
    return {
        "email": f"user{i}@{tag}.example",
        "name": f"Ünïcødé Person {i}",
        "plan": "premium" if i % 3 else "free",
        "logins": i,
        "address": {"city": "Zürich", "postalCode": f"80{i:02d}"},
    }


def _send_all(client: Client, tag: str) -> dict[str, str]:
    """PER_TYPE calls of every type; returns messageId -> type."""
    sent: dict[str, str] = {}

    def keep(kind: str, result: tuple[bool, dict[str, Any]]) -> None:
        queued, msg = result
        assert queued, f"the client refused to queue a {kind} call"
        assert msg["messageId"] not in sent
        sent[msg["messageId"]] = kind

    for i in range(PER_TYPE):
        user = {"user_id": f"{tag}-u{i}"} if i % 4 else {"anonymous_id": f"{tag}-anon-{i}"}
        keep("identify", client.identify(traits=_traits(tag, i), **user))
        keep("track", client.track(event="Order Completed", properties=_properties(tag, i), **user))
        keep(
            "page",
            client.page(category="Docs", name=f"Page {i}", properties=_properties(tag, i), **user),
        )
        keep(
            "screen",
            client.screen(
                category="Onboarding", name=f"Screen {i}", properties=_properties(tag, i), **user
            ),
        )
        keep("group", client.group(group_id=f"{tag}-org-{i}", traits=_traits(tag, i), **user))
        keep("alias", client.alias(f"{tag}-anon-{i}", f"{tag}-u{i}"))
    return sent


# -- segue-side observation -------------------------------------------------------


def _api_key(request: ReceivedRequest) -> str:
    """The API key of the Basic Authorization header (``base64("<key>:")``)."""
    scheme, _, encoded = request.header("Authorization").partition(" ")
    assert scheme == "Basic", request.header("Authorization")
    decoded = base64.b64decode(encoded, validate=True).decode()
    key, colon, password = decoded.partition(":")
    assert colon == ":" and password == "", f"Authorization decodes to {decoded!r}"
    return key


@dataclass
class Scenario:
    sent: dict[str, str]  # messageId -> type
    stored: dict[str, dict[str, Any]]  # messageId -> GET /api/v1/events row
    by_destination: dict[str, list[ReceivedRequest]]
    all_requests: list[ReceivedRequest]
    client_errors: list[Any]
    client_logs: list[str]
    metrics: dict[tuple[str, str], float]
    endpoint_errors: list[str]
    exit_code: int
    seconds: float


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    data_dir: Path = tmp_path_factory.mktemp("delivery-e2e") / "data"
    collect = CollectWarnings()
    segment_log = logging.getLogger("segment")
    segment_log.addHandler(collect)
    started = time.monotonic()
    with Endpoint() as sink:
        server = SegueProcess(data_dir, config_text=_config(sink.url))
        server.start()
        try:
            errors: list[Any] = []
            client = Client(
                write_key=WRITE_KEY,
                host=server.url,
                sync_mode=False,
                on_error=lambda error, batch: errors.append((error, batch)),
                max_retries=2,
            )
            try:
                sent = _send_all(client, f"e2e{uuid.uuid4().hex[:8]}")
                client.flush()
            finally:
                client.join()
            total = len(sent)
            # both destinations: one request per event each
            sink.wait_until(
                lambda requests: len(requests) >= 2 * total,
                DELIVERY_WAIT_S,
                f"{2 * total} deliveries",
            )
            wanted = {(MAIN, "succeeded"): float(total), (LEGACY, "succeeded"): float(total)}
            wait_for_deliveries(server, wanted, DELIVERY_WAIT_S)
            metrics = deliveries_metric(server)
            stored = {row["message_id"]: row for row in server.all_events(source="test")}
        finally:
            # a graceful stop settles everything in flight: after it nothing more can arrive
            exit_code = server.stop()
            segment_log.removeHandler(collect)
        requests = sink.requests
        endpoint_errors = sink.errors
    by_destination: dict[str, list[ReceivedRequest]] = {MAIN: [], LEGACY: [], "unknown": []}
    keys = {MAIN_SETTINGS["apiKey"]: MAIN, LEGACY_SETTINGS["apiKey"]: LEGACY}
    for request in requests:
        try:
            destination = keys.get(_api_key(request), "unknown")
        except (AssertionError, ValueError, binascii.Error):
            destination = "unknown"
        by_destination[destination].append(request)
    seconds = time.monotonic() - started
    print(
        f"{len(sent)} events sent by analytics-python, {len(requests)} requests received by"
        f" the endpoint in {seconds:.1f} s (whole scenario, server start to stop)"
    )
    return Scenario(
        sent=sent,
        stored=stored,
        by_destination=by_destination,
        all_requests=requests,
        client_errors=errors,
        client_logs=[r.getMessage() for r in collect.records],
        metrics=metrics,
        endpoint_errors=endpoint_errors,
        exit_code=exit_code,
        seconds=seconds,
    )


# -- the tests --------------------------------------------------------------------
pytestmark = pytest.mark.slow


def test_the_official_client_reported_no_error(scenario: Scenario) -> None:
    assert scenario.client_errors == [], scenario.client_errors[:3]
    assert scenario.client_logs == []
    assert len(scenario.sent) == PER_TYPE * len(TYPES)
    assert Counter(scenario.sent.values()) == dict.fromkeys(TYPES, PER_TYPE)
    assert set(scenario.stored) == set(scenario.sent)
    assert scenario.endpoint_errors == []
    assert scenario.exit_code == 0


def test_every_request_comes_from_a_configured_destination(scenario: Scenario) -> None:
    unknown = scenario.by_destination["unknown"]
    assert unknown == [], f"{len(unknown)} requests with an unknown Authorization: {unknown[:1]}"


@pytest.mark.parametrize("destination", [MAIN, LEGACY])
def test_each_event_reaches_the_endpoint_exactly_once(scenario: Scenario, destination: str) -> None:
    requests = scenario.by_destination[destination]
    key = "messageId" if destination == MAIN else "message_id"
    counts = Counter(request.json()[key] for request in requests)
    twice = {mid: n for mid, n in counts.items() if n > 1}
    assert twice == {}, f"{len(twice)} events delivered more than once to {destination}"
    missing = set(scenario.sent) - set(counts)
    unexpected = set(counts) - set(scenario.sent)
    assert not missing, f"{len(missing)} events never reached {destination}"
    assert not unexpected, f"{destination} received events nobody sent: {sorted(unexpected)[:3]}"
    assert len(requests) == len(scenario.sent)


@pytest.mark.parametrize("destination", [MAIN, LEGACY])
def test_segue_counts_the_deliveries_as_succeeded(scenario: Scenario, destination: str) -> None:
    assert scenario.metrics[(destination, "succeeded")] == len(scenario.sent)
    others = {k: v for k, v in scenario.metrics.items() if k[0] == destination and v}
    assert others == {(destination, "succeeded"): len(scenario.sent)}


@pytest.mark.parametrize("destination", [MAIN, LEGACY])
def test_request_line_and_contract_headers_are_byte_exact(
    scenario: Scenario, destination: str
) -> None:
    for request in scenario.by_destination[destination]:
        assert request.method == "POST"
        assert request.path == APP_PATH
        assert request.version == "HTTP/1.1"
        for name, value in CONTRACT_HEADERS.items():
            assert request.header(name) == value, (name, request.raw_headers)
        assert request.header("Content-Length") == str(len(request.body))
        names = request.header_names()
        lower = [n.lower() for n in names]
        assert len(lower) == len(set(lower)), f"a header was sent twice: {names}"
        extra = {n.lower() for n in names} - {n.lower() for n in CONTRACT_NAMES | TRANSPORT_NAMES}
        assert not extra, f"headers outside the contract: {sorted(extra)}"
        # the name of the custom header, as the seeds' table spells it
        assert "X-Segment-Settings" in names, names


def test_authorization_is_basic_api_key_and_colon(scenario: Scenario) -> None:
    """The seeds' own example: API key `segment` -> ``Basic c2VnbWVudDo=``."""
    for request in scenario.by_destination[MAIN]:
        assert request.header("Authorization") == "Basic c2VnbWVudDo="
        encoded = request.header("Authorization").removeprefix("Basic ")
        assert base64.b64decode(encoded, validate=True) == b"segment:"
    for request in scenario.by_destination[LEGACY]:
        encoded = request.header("Authorization").removeprefix("Basic ")
        assert base64.b64decode(encoded, validate=True) == b"legacy-key:"


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        (MAIN, {"region": "eu", "customSettingOne": "custom setting value"}),
        (LEGACY, {"region": "us", "customSettingOne": "snake"}),
    ],
)
def test_settings_header_is_every_setting_but_the_api_key(
    scenario: Scenario, destination: str, expected: dict[str, str]
) -> None:
    for request in scenario.by_destination[destination]:
        raw = base64.b64decode(request.header("X-Segment-Settings"), validate=True)
        settings = json.loads(raw)
        assert settings == expected  # exactly: no apiKey, nothing else
        assert "apiKey" not in raw.decode() and "segment" not in raw.decode()


def _ordered(value: Any) -> Any:
    """JSON with object key order made significant (lists of pairs)."""
    if isinstance(value, dict):
        return [(k, _ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    return value


def test_body_is_the_stored_event(scenario: Scenario) -> None:
    """Casing as the client sent it, every field as stored (GET /api/v1/events)."""
    for request in scenario.by_destination[MAIN]:
        body = request.json()
        stored = scenario.stored[body["messageId"]]
        assert body == stored["event"]
        # same fields in the same order: the stored JSON is sent as it is
        assert _ordered(body) == _ordered(stored["event"])
        assert body["type"] == stored["type"] == scenario.sent[body["messageId"]]
        assert "userId" in body or "anonymousId" in body
        assert "receivedAt" in body and "messageId" in body


_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _snake(value: Any) -> Any:
    """``userId`` -> ``user_id`` at every depth (the keys these events use have no acronyms)."""
    if isinstance(value, dict):
        return {_CAMEL_HUMP.sub(r"_\1", k).lower(): _snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value


def test_snake_case_destination_gets_every_key_in_snake_case(scenario: Scenario) -> None:
    for request in scenario.by_destination[LEGACY]:
        body = request.json()
        stored = scenario.stored[body["message_id"]]["event"]
        assert body == _snake(stored)
        for camel in ("userId", "anonymousId", "messageId", "receivedAt", "sentAt"):
            assert camel not in body
        assert {"message_id", "received_at", "sent_at", "original_timestamp"} <= set(body)
        assert "user_id" in body or "anonymous_id" in body
        assert request.header("Content-Length") == str(len(request.body))
