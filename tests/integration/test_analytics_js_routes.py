"""The routes analytics.js needs besides the event routes, over real sockets.

``GET /v1/projects/{writeKey}/settings``, ``POST /v1/m``, CORS for its retries, and the
library itself from an installed ``@segment/analytics-next`` (a fake package here: the
real one is exercised in Chromium by tests/acceptance/test_analytics_js_browser.py).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.server import ADMIN_TOKEN, SegueProcess

CONFIG = """
[[sources]]
name = "web"
write_key = "wk_web"

[[sources]]
name = "limited"
write_key = "wk_limited"
rate_limit = 1
"""
LOADER = b"/* analytics.js standalone build */ window.loaded = true;\n"
BUNDLE = "auto-track.bundle.0123abcd.js"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for node_modules/@segment/analytics-next: the files segue serves."""
    root = tmp_path_factory.mktemp("pkg") / "analytics-next"
    umd = root / "dist" / "umd"
    umd.mkdir(parents=True)
    (umd / "standalone.js").write_bytes(LOADER)
    (umd / "standalone.js.gz").write_bytes(gzip.compress(LOADER))
    (umd / BUNDLE).write_text("/* a chunk */\n")
    (root / "package.json").write_text('{"name": "@segment/analytics-next"}')
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, package: Path) -> Iterator[SegueProcess]:
    process = SegueProcess(
        tmp_path_factory.mktemp("ajs-routes") / "data",
        config_text=CONFIG,
        extra_env={"SEGUE_ANALYTICS_NEXT_DIR": str(package)},
    ).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def client(server: SegueProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http


# -- settings ----------------------------------------------------------------------


def test_settings_point_analytics_js_at_this_segue(client: httpx.Client) -> None:
    response = client.get("/v1/projects/wk_web/settings", headers={"Origin": "https://shop.test"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["cache-control"] == "private, max-age=60"
    settings = response.json()
    host = client.base_url.netloc.decode()
    assert settings["integrations"] == {
        "Segment.io": {
            "apiKey": "wk_web",
            "apiHost": f"{host}/v1",
            "protocol": "http",
            "addBundledMetadata": True,
            "unbundledIntegrations": [],
            "maybeBundledConfigIds": {},
        }
    }
    # nothing that would make analytics.js load more code
    assert settings["remotePlugins"] == []
    assert settings["enabledMiddleware"] == {}
    assert settings["middlewareSettings"] == {}
    assert settings["legacyVideoPluginsEnabled"] is False
    assert settings["metrics"] == {"host": f"{host}/v1", "sampleRate": 0}
    assert settings["analyticsNextEnabled"] is True
    assert settings["plan"]["track"]["__default"]["enabled"] is True
    assert settings["edgeFunction"] == {}


def test_settings_take_api_host_from_the_host_header(client: httpx.Client) -> None:
    response = client.get("/v1/projects/wk_web/settings", headers={"Host": "track.shop.test"})
    assert response.json()["integrations"]["Segment.io"]["apiHost"] == "track.shop.test/v1"
    bad = client.get("/v1/projects/wk_web/settings", headers={"Host": "evil.test/x?"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "bad_request"


def test_forwarded_headers_are_ignored_unless_trusted(client: httpx.Client) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "proxy.test"}
    response = client.get("/v1/projects/wk_web/settings", headers=forwarded)
    segment_io = response.json()["integrations"]["Segment.io"]
    assert segment_io["protocol"] == "http"
    assert segment_io["apiHost"] == f"{client.base_url.netloc.decode()}/v1"


def test_unknown_and_disabled_write_keys_get_404(server: SegueProcess) -> None:
    with httpx.Client(base_url=server.url) as http:
        unknown = http.get("/v1/projects/wk_nope/settings")
        assert unknown.status_code == 404
        assert unknown.json() == {
            "success": False,
            "code": "unknown_source",
            "message": "unknown write key",
        }
        assert unknown.headers["access-control-allow-origin"] == "*"
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        http.post("/api/v1/sources", json={"name": "off"}, headers=admin).raise_for_status()
        off = http.patch("/api/v1/sources/off", json={"enabled": False}, headers=admin)
        key = off.json()["write_key"]
        disabled = http.get(f"/v1/projects/{key}/settings")
        assert disabled.status_code == 404
        assert disabled.json()["code"] == "source_disabled"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/v1/projects/wk_web/settings", 405),
        ("GET", "/v1/projects/wk_web", 404),
        ("GET", "/v1/projects/wk_web/settings/x", 404),
        ("GET", "/v1/m", 405),
    ],
)
def test_wrong_method_or_path(client: httpx.Client, method: str, path: str, status: int) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    assert response.json()["success"] is False


# -- telemetry, CORS -----------------------------------------------------------------


def test_telemetry_is_accepted_and_dropped(client: httpx.Client) -> None:
    series = {"series": [{"type": "Counter", "metric": "analytics_js.invoke", "value": 1}]}
    response = client.post("/v1/m", json=series, headers={"Content-Type": "text/plain"})
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert response.headers["access-control-allow-origin"] == "*"
    too_big = client.post("/v1/m", content=b"x" * (64 * 1024))
    assert too_big.status_code == 200


@pytest.mark.parametrize("path", ["/v1/t", "/v1/b", "/v1/m", "/v1/projects/wk_web/settings"])
def test_preflight_allows_what_analytics_js_sends(client: httpx.Client, path: str) -> None:
    response = client.options(
        path,
        headers={
            "Origin": "https://shop.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-retry-count",
        },
    )
    assert response.status_code == 204
    allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-retry-count"} <= allowed
    assert response.headers["access-control-expose-headers"] == "retry-after"


def test_a_429_exposes_retry_after(client: httpx.Client) -> None:
    body = {"writeKey": "wk_limited", "anonymousId": "a1", "event": "x"}
    statuses = [client.post("/v1/t", json=body) for _ in range(2)]
    assert [r.status_code for r in statuses] == [200, 429]
    limited = statuses[1]
    assert limited.headers["retry-after"] == "1"
    assert limited.headers["access-control-expose-headers"] == "retry-after"


# -- the library ---------------------------------------------------------------------


def test_the_loader_is_served_at_the_snippet_path(client: httpx.Client) -> None:
    plain = client.get("/analytics.js/v1/wk_web/analytics.min.js", headers={"Accept-Encoding": ""})
    assert plain.status_code == 200
    assert plain.content == LOADER
    assert plain.headers["content-type"] == "application/javascript; charset=utf-8"
    assert plain.headers["cache-control"] == "public, max-age=300"
    assert "content-encoding" not in plain.headers
    zipped = client.get("/analytics.js/v1/wk_web/analytics.min.js")  # httpx accepts gzip
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == LOADER


def test_bundles_are_served_and_nothing_else(client: httpx.Client) -> None:
    bundle = client.get(f"/analytics-next/bundles/{BUNDLE}")
    assert bundle.status_code == 200
    assert bundle.headers["cache-control"] == "public, max-age=31536000, immutable"
    for path in (
        "/analytics-next/bundles/missing.bundle.js",
        "/analytics-next/bundles/%2e%2e%2fpackage.json",
        "/analytics-next/package.json",
        "/analytics.js/v1/wk_web/other.js",
    ):
        assert client.get(path).status_code == 404, path
    refused = client.post(f"/analytics-next/bundles/{BUNDLE}")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
    head = client.head(f"/analytics-next/bundles/{BUNDLE}")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 0


def test_without_the_package_the_library_paths_say_how_to_install_it(tmp_path: Path) -> None:
    missing = {"SEGUE_ANALYTICS_NEXT_DIR": str(tmp_path / "nothing")}
    server = SegueProcess(tmp_path / "data", extra_env=missing).start()
    try:
        response = httpx.get(f"{server.url}/analytics.js/v1/wk_test/analytics.min.js")
    finally:
        server.stop()
    assert response.status_code == 404
    assert "npm install @segment/analytics-next" in response.json()["message"]
