"""Acceptance: analytics.js (``@segment/analytics-next`` from npm) against segue in Chromium.

A shop page on its own origin (a local test server) loads analytics.js the way the
standard snippet does, with ``analytics._cdn`` set to segue: segue serves the library
from the npm package installed in ``tests/browser/`` (``npm ci``), its settings from
``/v1/projects/{writeKey}/settings`` and the code it loads later from
``/analytics-next/bundles/``. The page sends identify, track, page, group and alias in
the standard mode (one request per call, ``/v1/{i,t,p,g,a}``) and in the batching mode
(``/v1/b``). Each source has a rate limit of 1 request/s, so segue answers one request
of each mode with 429 and ``Retry-After: 1``: analytics.js must read that header (CORS
exposes it), wait, and retry with ``X-Retry-Count`` (CORS allows it). Every call must be
stored exactly once, by messageId. A third page turns analytics.js' telemetry on and
sees ``POST /v1/m`` accepted.

Chromium logs each 4xx answer as a console error ("Failed to load resource: ... 429");
those, one per 429, are the only console errors allowed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from tests.support.browser import CHROMIUM, browser_page, shot
from tests.support.endpoint import Endpoint, ReceivedRequest, Reply
from tests.support.server import SegueProcess

pytest.importorskip("playwright.sync_api")
if TYPE_CHECKING:
    from playwright.sync_api import Page, Request, Response

PACKAGE = Path(__file__).resolve().parents[1] / "browser/node_modules/@segment/analytics-next"
STANDARD_KEY = "wk_ajs_standard"
BATCHING_KEY = "wk_ajs_batching"
TELEMETRY_KEY = "wk_ajs_telemetry"
EVENT_ROUTES = ("/v1/i", "/v1/t", "/v1/p", "/v1/g", "/v1/a", "/v1/b")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
    pytest.mark.skipif(
        not (PACKAGE / "dist/umd/standalone.js").is_file(),
        reason="@segment/analytics-next is not installed: run `npm ci` in tests/browser",
    ),
]

CONFIG = f"""
[[sources]]
name = "web"
write_key = "{STANDARD_KEY}"
rate_limit = 1

[[sources]]
name = "web-batching"
write_key = "{BATCHING_KEY}"
rate_limit = 1

[[sources]]
name = "web-telemetry"
write_key = "{TELEMETRY_KEY}"
"""

# The page: a snippet written for this test that does what Segment's standard snippet
# does (a queue of calls on `window.analytics`, then a script tag for analytics.min.js),
# with `analytics._cdn` pointing at segue instead of Segment's CDN.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>Lamp shop</title>
<script>
(function () {
  var segue = %(segue)s, writeKey = %(write_key)s;
  var analytics = (window.analytics = window.analytics || []);
  if (analytics.invoked) return;
  analytics.invoked = true;
  ["identify", "track", "page", "group", "alias", "ready", "trackLink", "reset"].forEach(
    function (method) {
      analytics[method] = function () {
        analytics.push([method].concat(Array.prototype.slice.call(arguments)));
        return analytics;
      };
    }
  );
  analytics.load = function (key, options) {
    var script = document.createElement("script");
    script.async = true;
    script.src = segue + "/analytics.js/v1/" + key + "/analytics.min.js";
    document.head.appendChild(script);
    analytics._loadOptions = options;
  };
  analytics._writeKey = writeKey;
  analytics._cdn = segue;
  analytics.load(writeKey, %(options)s);
  analytics.page();
  analytics.ready(function () {
    document.getElementById("status").textContent =
      "analytics.js " + window.analytics.VERSION + " is sending to " + segue;
  });
})();
</script>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; margin: 3rem auto; max-width: 40rem; }
  .card { border: 1px solid #ccc; border-radius: 8px; padding: 1rem 1.5rem; }
  #status { color: #146c2e; }
</style>
</head>
<body>
<h1>Lamp shop</h1>
<p id="status">analytics.js is loading…</p>
<div class="card">
  <h2>Desk lamp</h2>
  <p>Warm light, brass finish. 49.00 EUR</p>
  <a id="buy" href="#bought">Buy</a>
</div>
</body>
</html>
"""

BATCHING = {"strategy": "batching", "config": {"size": 5, "timeout": 2000}}
PAGES: dict[str, tuple[str, str]] = {
    # path: (write key, load options as JS)
    "/standard": (STANDARD_KEY, "{}"),
    "/batching": (
        BATCHING_KEY,
        json.dumps({"integrations": {"Segment.io": {"deliveryStrategy": BATCHING}}}),
    ),
    # telemetry on: segue's settings turn it off (sampleRate 0); a site may turn it on,
    # and must then name the protocol, as analytics.js sends telemetry over https otherwise
    "/telemetry": (
        TELEMETRY_KEY,
        '{integrations: {"Segment.io": {protocol: "http"}},'
        " updateCDNSettings: function (s) {"
        " return Object.assign({}, s, {metrics: Object.assign({}, s.metrics,"
        " {sampleRate: 1, flushTimer: 200})}); }}",
    ),
}
INITIALIZED = "() => window.analytics && window.analytics.initialized === true"


@dataclass
class Traffic:
    """What the page sent to segue and what came back, with monotonic times."""

    segue: str
    requests: list[tuple[float, Request]] = field(default_factory=list)
    responses: list[tuple[float, Response]] = field(default_factory=list)

    def on_request(self, request: Request) -> None:
        if request.url.startswith(self.segue):
            self.requests.append((time.monotonic(), request))

    def on_response(self, response: Response) -> None:
        if response.url.startswith(self.segue):
            self.responses.append((time.monotonic(), response))

    def event_posts(self) -> list[Request]:
        return [r for _, r in self.requests if r.method == "POST" and _path(r.url) in EVENT_ROUTES]

    def sent_message_ids(self, write_key: str) -> list[str]:
        """messageIds of every event request for ``write_key`` (retries included)."""
        ids: list[str] = []
        for request in self.event_posts():
            body = json.loads(request.post_data or "{}")
            if body.get("writeKey") != write_key:
                continue
            items = body["batch"] if _path(request.url) == "/v1/b" else [body]
            ids.extend(item["messageId"] for item in items)
        return ids

    def statuses(self, status: int) -> list[tuple[float, Response]]:
        return [(t, r) for t, r in self.responses if r.status == status]


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3].split("?")[0]


def _post_to(route: str, status: int, *, retried: bool | None = None) -> Callable[[Any], bool]:
    """A predicate for page.expect_response: a POST to ``route`` answered ``status``."""

    def matches(response: Response) -> bool:
        request = response.request
        if request.method != "POST" or _path(response.url) != route:
            return False
        if retried is not None and ("x-retry-count" in request.headers) != retried:
            return False
        return response.status == status

    return matches


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SegueProcess]:
    process = SegueProcess(
        tmp_path / "data",
        config_text=CONFIG,
        extra_env={"SEGUE_ANALYTICS_NEXT_DIR": str(PACKAGE)},
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def site(server: SegueProcess) -> Iterator[Endpoint]:
    """The shop: HTML pages on another origin than segue's."""

    def pages(request: ReceivedRequest) -> Reply:
        path = request.path.split("?")[0]
        if path not in PAGES:
            return Reply(status=404)
        write_key, options = PAGES[path]
        html = PAGE % {
            "segue": json.dumps(server.url),
            "write_key": json.dumps(write_key),
            "options": options,
        }
        return Reply(200, html.encode(), (("Content-Type", "text/html; charset=utf-8"),))

    with Endpoint(pages) as shop:
        yield shop


def test_analytics_js_sends_every_call_once_through_a_429(
    server: SegueProcess, site: Endpoint
) -> None:
    with browser_page() as (page, problems):
        traffic = Traffic(server.url)
        page.on("request", traffic.on_request)
        page.on("response", traffic.on_response)

        _standard_mode(page, server, site)
        _batching_mode(page, site)
        _telemetry(page, site)

        # -- exactly one 429 per rate-limited mode, each retried after Retry-After ------
        limited = traffic.statuses(429)
        assert len(limited) == 2, [r.url for _, r in limited]
        for answered_at, response in limited:
            assert response.headers["retry-after"] == "1"
            retry = next(
                (t, r)
                for t, r in traffic.requests
                if t > answered_at and r.url == response.url and r.method == "POST"
            )
            assert retry[1].headers.get("x-retry-count") == "1", retry[1].headers
            # Retry-After was readable (exposed): a guessed backoff would be ~0.5 s
            assert retry[0] - answered_at >= 0.9, retry[0] - answered_at
        failed = [r for _, r in traffic.responses if r.status >= 400 and r.status != 429]
        assert failed == [], [(r.url, r.status) for r in failed]

        # -- every call stored exactly once, by messageId -----------------------------
        expected = {STANDARD_KEY: ("web", 6), BATCHING_KEY: ("web-batching", 10)}
        expected[TELEMETRY_KEY] = ("web-telemetry", 1)
        for write_key, (source, calls) in expected.items():
            sent = set(traffic.sent_message_ids(write_key))
            assert len(sent) == calls, (source, sent)
            events = server.all_events(source=source)
            stored = [e["message_id"] for e in events]
            assert sorted(stored) == sorted(sent), source  # each once, none missing
            for event in events:
                assert event["event"]["context"]["library"]["name"] == "analytics.js"
                assert event["event"]["channel"] == "browser"
        std_types = {e["type"] for e in server.all_events(source="web")}
        assert std_types == {"identify", "track", "page", "group", "alias"}

        # -- no console error but Chromium's own line for each 429 ---------------------
        rate_limited = [p for p in problems if "the server responded with a status of 429" in p]
        assert len(rate_limited) == len(limited), problems
        assert [p for p in problems if p not in rate_limited] == []


def _standard_mode(page: Page, server: SegueProcess, site: Endpoint) -> None:
    """page (the snippet's) → 200; identify → 429, retried → 200; the rest unlimited."""
    with page.expect_response(_post_to("/v1/p", 200)):
        page.goto(f"{site.url}/standard")
    page.wait_for_function(INITIALIZED)
    with (  # at once: the page call took the one request the second allows
        page.expect_response(_post_to("/v1/i", 200, retried=True), timeout=10_000),
        page.expect_response(_post_to("/v1/i", 429, retried=False)),
    ):
        page.evaluate("window.analytics.identify('ajs-user-1', {plan: 'pro', lamps: 2})")
    assert page.locator("#status").text_content() == (
        f"analytics.js {page.evaluate('window.analytics.VERSION')} is sending to {server.url}"
    )
    shot(page, "analytics-js-standard")

    with server.admin() as admin:  # the 429 is shown: lift the limit for the other calls
        admin.patch("/sources/web", json={"rate_limit": 0}).raise_for_status()

    with (
        page.expect_response(_post_to("/v1/t", 200)),
        page.expect_response(_post_to("/v1/g", 200)),
        page.expect_response(_post_to("/v1/a", 200)),
        page.expect_response(lambda r: "/analytics-next/bundles/auto-track" in r.url),
    ):
        page.evaluate(
            """() => Promise.all([
                 window.analytics.track('Product Viewed', {product_id: 'lamp-1', price: 49}),
                 window.analytics.group('acme', {name: 'Acme', employees: 12}),
                 window.analytics.alias('ajs-user-2', 'ajs-user-1'),
                 window.analytics.trackLink(document.getElementById('buy'), 'Buy Clicked'),
               ])"""
        )
    with page.expect_response(_post_to("/v1/t", 200)):
        page.click("#buy")  # trackLink's code came from segue's /analytics-next/bundles/


def _batching_mode(page: Page, site: Endpoint) -> None:
    """Batches of 5 to /v1/b: the first → 200, the second → 429, retried → 200."""
    with page.expect_response(_post_to("/v1/b", 200)):
        page.goto(f"{site.url}/batching")
        page.wait_for_function(INITIALIZED)
        page.evaluate(  # with the snippet's page: 5 calls, one full batch
            """() => {
                 window.analytics.identify('ajs-batch-user', {plan: 'team'});
                 window.analytics.track('Cart Viewed', {cart_id: 'c1'});
                 window.analytics.group('acme-batch', {name: 'Acme'});
                 window.analytics.alias('ajs-batch-user-2', 'ajs-batch-user');
               }"""
        )
    with (
        page.expect_response(_post_to("/v1/b", 200, retried=True), timeout=10_000),
        page.expect_response(_post_to("/v1/b", 429, retried=False)),
    ):
        page.evaluate(
            """() => {
                 window.analytics.page('Checkout', {step: 1});
                 window.analytics.identify('ajs-batch-user-2', {plan: 'team'});
                 window.analytics.track('Checkout Started', {order_id: 'o1'});
                 window.analytics.group('acme-batch', {employees: 13});
                 window.analytics.alias('ajs-batch-user-3', 'ajs-batch-user-2');
               }"""
        )


def _telemetry(page: Page, site: Endpoint) -> None:
    with (
        page.expect_response(_post_to("/v1/m", 200)),
        page.expect_response(_post_to("/v1/p", 200)),
    ):
        page.goto(f"{site.url}/telemetry")
