"""Acceptance: destinations whose endpoint cannot be called never stop the others.

A real ``segue serve`` holds a healthy destination (a real endpoint on loopback) beside
destinations whose stored endpoint the HTTP client cannot use: credentials in the URL,
a non-ASCII host that IDNA refuses, and a valid internationalised host (converted, then
not found). They are written straight into the database, as a store written by an older
version (before endpoints were checked on save) would hold them. 3,000 events later the
healthy endpoint has every one, each bad delivery is settled with a readable reason, Send
Test Event answers with the reason (never a 500), and a restart brings no jam back.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.endpoint import Endpoint
from tests.support.server import LOOPBACK_CONFIG, WRITE_KEY, SegueProcess

EVENTS = 3000
BATCH = 100
WAIT_S = 90.0

BAD = {
    "creds": ("http://user:pass@127.0.0.1:{port}/creds", "must not carry credentials"),
    "intl-bad": ("http://ex\u00e4..test/x", "not a valid URL"),
}
IDN = "idn"  # a valid internationalised host: converted, then not found (retried)


def _config(port: int) -> str:
    return f"""{LOOPBACK_CONFIG}
[[destinations]]
name = "healthy"
endpoint = "http://127.0.0.1:{port}/healthy"
sources = ["test"]
"""


def _raw_destination(name: str, endpoint: str) -> dict[str, Any]:
    return {
        "id": f"dst_{name.replace('-', '_')}",
        "name": name,
        "app": None,
        "endpoint": endpoint,
        "sources": ["test"],
        "settings": {},
        "enabled": True,
        "options": {"allow_http": True},
        "created_at_ms": 0,
    }


def _store_raw(database: Path, docs: list[dict[str, Any]]) -> None:
    """Write destination documents as an older segue (no endpoint check) would have."""
    with sqlite3.connect(database) as conn:
        conn.executemany(
            "INSERT INTO objects (kind, name, doc, updated_at_ms) VALUES ('destination', ?, ?, 0)",
            [(doc["name"], json.dumps(doc)) for doc in docs],
        )


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    with Endpoint() as server:
        yield server


@pytest.fixture(scope="module")
def server(endpoint: Endpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SegueProcess]:
    data = tmp_path_factory.mktemp("bad-endpoints") / "data"
    segue = SegueProcess(data, config_text=_config(endpoint.port)).start()
    segue.stop()
    docs = [
        _raw_destination(name, url.format(port=endpoint.port)) for name, (url, _) in BAD.items()
    ]
    docs.append(_raw_destination(IDN, "http://b\u00fccher.test/x"))
    _store_raw(data / "segue.db", docs)
    segue.start()
    try:
        yield segue
    finally:
        segue.stop()


def _send(server: SegueProcess, first: int, count: int) -> None:
    with httpx.Client(base_url=server.url, auth=(WRITE_KEY, ""), timeout=30.0) as client:
        for start in range(first, first + count, BATCH):
            batch = [
                {"type": "track", "event": "Bad Neighbour", "userId": "u", "messageId": f"m-{i}"}
                for i in range(start, start + BATCH)
            ]
            assert client.post("/v1/batch", json={"batch": batch}).status_code == 200


def _stats(server: SegueProcess, name: str) -> dict[str, Any]:
    with server.admin() as admin:
        answer = admin.get(f"/destinations/{name}/stats", params={"window": "1h"})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def _wait_settled(server: SegueProcess, name: str, count: int, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        stats = _stats(server, name)
        if stats[state] >= count:
            return stats
        assert time.monotonic() < deadline, f"{name}: {count} {state} never reached: {stats}"
        time.sleep(0.2)


def _wait_attempted(server: SegueProcess, name: str) -> None:
    """Until no delivery of ``name`` waits for its first attempt."""
    deadline = time.monotonic() + WAIT_S
    with server.admin() as admin:
        while True:
            query = {"destination": name, "state": "pending", "limit": 1}
            answer = admin.get("/deliveries", params=query)
            assert answer.status_code == 200, answer.text
            if not answer.json()["deliveries"]:
                return
            assert time.monotonic() < deadline, f"{name}: deliveries never attempted"
            time.sleep(0.2)


def _received_ids(endpoint: Endpoint) -> set[str]:
    return {r.json()["messageId"] for r in endpoint.requests if r.path == "/healthy"}


def test_the_healthy_destination_gets_every_event_beside_bad_endpoints(
    server: SegueProcess, endpoint: Endpoint
) -> None:
    _send(server, 0, EVENTS)
    endpoint.wait_until(
        lambda requests: len({r.body for r in requests if r.path == "/healthy"}) >= EVENTS,
        WAIT_S,
        f"{EVENTS} events at the healthy endpoint",
    )
    assert _received_ids(endpoint) == {f"m-{i}" for i in range(EVENTS)}
    assert all(r.path == "/healthy" for r in endpoint.requests)  # never the credential URL

    for name, (_, words) in BAD.items():
        stats = _wait_settled(server, name, EVENTS, "discarded")
        assert stats["pending"] == 0 and stats["retrying"] == 0, stats
        (reason,) = stats["reasons"]
        assert reason["reason"] == "discarded.INVALID_SETTINGS"
        sample = reason["sample"]
        assert words in sample["message"], sample
    # the valid international name was converted, then not found: retried, as a DNS failure
    _wait_attempted(server, IDN)
    idn = _stats(server, IDN)
    assert idn["discarded"] == idn["delivered"] == 0, idn
    assert {r["reason"] for r in idn["reasons"]} == {"awaiting-retry.ENOTFOUND"}
    sample = idn["reasons"][0]["sample"]
    assert sample["request"]["url"] == "http://xn--bcher-kva.test/x"


@pytest.mark.parametrize("name", [*BAD, IDN])
def test_send_test_event_answers_with_the_reason_never_500(server: SegueProcess, name: str) -> None:
    with server.admin() as admin:
        answer = admin.post(f"/destinations/{name}/test", json={"type": "track"})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["outcome"] in ("discarded", "retry")
    assert result["error"]
    if name in BAD:
        assert result["outcome"] == "discarded"
        assert result["reason"] == "INVALID_SETTINGS"
        assert BAD[name][1] in result["error"]


@pytest.mark.parametrize(
    ("endpoint_url", "words"),
    [
        ("http://user:pass@127.0.0.1:9/x", "must not carry credentials"),
        ("http://ex\u00e4..test/x", "not a valid URL"),
        ("http://127.0.0.1:99999/x", "not a valid URL"),
        ("http://a b/x", "space"),
    ],
)
def test_the_api_refuses_unusable_endpoints_on_save(
    server: SegueProcess, endpoint_url: str, words: str
) -> None:
    with server.admin() as admin:
        for path, body in (
            ("/destinations", {"name": "refused", "endpoint": endpoint_url, "sources": ["test"]}),
            ("/apps", {"name": "refused", "endpoint": endpoint_url}),
        ):
            answer = admin.post(path, json=body)
            assert answer.status_code == 400, answer.text
            assert words in answer.json()["message"]


def test_the_api_converts_an_international_host(server: SegueProcess) -> None:
    with server.admin() as admin:
        body = {"name": "converted", "endpoint": "https://b\u00fccher.example/hook"}
        answer = admin.post("/apps", json=body)
        assert answer.status_code == 201, answer.text
        assert answer.json()["endpoint"] == "https://xn--bcher-kva.example/hook"
        assert admin.delete("/apps/converted").status_code == 204


def test_a_restart_brings_no_jam_back(server: SegueProcess, endpoint: Endpoint) -> None:
    server.stop()
    server.start()
    _send(server, EVENTS, 200)
    endpoint.wait_until(
        lambda requests: len({r.body for r in requests if r.path == "/healthy"}) >= EVENTS + 200,
        WAIT_S,
        "the events sent after the restart",
    )
    assert _received_ids(endpoint) == {f"m-{i}" for i in range(EVENTS + 200)}
    for name in BAD:
        stats = _wait_settled(server, name, EVENTS + 200, "discarded")
        assert stats["pending"] == 0, stats
