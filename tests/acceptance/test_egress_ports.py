"""Acceptance: ``[egress] allow`` can open one port, and segue itself is never reachable.

A real ``segue serve`` allows exactly two loopback ports: a test endpoint's, and — by
mistake — its own. Webhooks and a function's ``fetch`` reach the test endpoint; another
local server stays blocked; segue's own port (its /metrics, its Tracking API) stays
blocked even though it is in the allow list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from tests.support.endpoint import Endpoint
from tests.support.server import WRITE_KEY, SegueProcess, free_port

FETCHER = """
from segue.functions import fetch

async def on_track(event, settings):
    response = await fetch(settings["url"])
    return {"status": response.status}
"""


@pytest.fixture(scope="module")
def endpoints() -> Iterator[tuple[Endpoint, Endpoint]]:
    with Endpoint() as allowed, Endpoint() as other:
        yield allowed, other


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, endpoints: tuple[Endpoint, Endpoint]
) -> Iterator[SegueProcess]:
    allowed, _ = endpoints
    port = free_port()
    config = f"""
[[sources]]
name = "test"
write_key = "{WRITE_KEY}"

[egress]
allow = ["127.0.0.1:{allowed.port}", "127.0.0.1:{port}"]
allow_http = true

[[apps]]
name = "fetcher"
runtime = "python"
code = {json.dumps(FETCHER)}
settings = [{{ label = "URL", key = "url" }}]
"""
    data = tmp_path_factory.mktemp("egress-ports") / "data"
    process = SegueProcess(data, port=port, config_text=config).start()
    try:
        yield process
    finally:
        process.stop()


def _test_endpoint(server: SegueProcess, url: str) -> dict[str, object]:
    with server.admin() as admin:
        body = {"name": "probe", "endpoint": url, "sources": ["test"]}
        assert admin.post("/destinations", json=body).status_code == 201
        try:
            answer = admin.post("/destinations/probe/test", json={"type": "track"})
        finally:
            admin.delete("/destinations/probe")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _test_fetch(server: SegueProcess, url: str) -> dict[str, object]:
    with server.admin() as admin:
        body = {"type": "track", "settings": {"url": url}}
        answer = admin.post("/apps/fetcher/test", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_the_allowed_port_is_reachable(
    server: SegueProcess, endpoints: tuple[Endpoint, Endpoint]
) -> None:
    allowed, _ = endpoints
    assert _test_endpoint(server, f"{allowed.url}/hook")["outcome"] == "succeeded"
    fetched = _test_fetch(server, f"{allowed.url}/fetched")
    assert fetched["outcome"] == "succeeded", fetched
    assert fetched["callback_return"] == {"status": 200}
    assert {r.path for r in allowed.requests} >= {"/hook", "/fetched"}


def test_another_local_port_stays_blocked(
    server: SegueProcess, endpoints: tuple[Endpoint, Endpoint]
) -> None:
    _, other = endpoints
    result = _test_endpoint(server, f"{other.url}/hook")
    assert result["outcome"] == "discarded" and result["reason"] == "EGRESS_BLOCKED"
    assert "loopback" in str(result["error"])
    fetched = _test_fetch(server, f"{other.url}/x")
    assert fetched["outcome"] == "discarded"
    assert "loopback" in str(fetched["error"])
    assert other.requests == []


@pytest.mark.parametrize("path", ["/metrics", "/api/v1/destinations", "/v1/track"])
def test_segue_itself_is_never_reachable(server: SegueProcess, path: str) -> None:
    for url in (f"http://127.0.0.1:{server.port}{path}", f"http://localhost:{server.port}{path}"):
        result = _test_endpoint(server, url)
        assert result["reason"] == "EGRESS_BLOCKED", result
        assert "segue itself" in str(result["error"])
        fetched = _test_fetch(server, url)
        assert fetched["outcome"] == "discarded"
        assert "segue itself" in str(fetched["error"]), fetched
