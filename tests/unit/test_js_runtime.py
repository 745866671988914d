"""JSRuntime: Segment-style JavaScript functions on mini-racer, driven call by call."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from segue.functions.bridge import MAX_LOG_BYTES, FetchFailed, FetchReply, FetchRequest
from segue.functions.js_runtime import JSRuntime, JSSourceError
from segue.functions.result import CallError, CallResult

# The seed's examples (shared/seeds/subscription-functions.txt), text unchanged.
SEED_TRACK = """const endpoint = "https://REDACTED.x.pipedream.net"

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

SEED_ERRORS = """async function onGroup(event, settings) {
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

# The seed screenshot's older handler names (its OCR'd layout repaired).
SEED_SCREENSHOT = """const endpoint = "https://en5ra9jwrh9u6.x.pipedream.net/"

async function track(event, settings) {
  const res = await fetch(endpoint, {
    body: JSON.stringify(event),
    headers: new Headers({
      "Authentication": `Bearer ${settings.apiKey}`,
    }),
    method: "post",
  })

  return await res.json() // or res.json() for JSON APIs
}

// identify demonstrates how to filter event data, e.g. for removing PII
// and how to enrich data using fetch
async function identify(event, settings) {
  const blacklist = ['ssn', 'first_name', 'last_name', 'name', 'email'];
  blacklist.forEach(i => delete event[i]);

  const resp = await fetch('https://regres.in/api/users/2');
  const user = await resp.json();

  event.traits = event.traits || {};
  event.traits.avatar = user.data.avatar;

  const res = await fetch(endpoint, {
    body: JSON.stringify(event),
    method: "post",
  })

  return await res.json()
}
"""

TRACK = {"type": "track", "event": "Order Completed", "userId": "u1",
         "timestamp": "2019-02-19T23:58:54.387Z", "properties": {"total": 12.5}}  # fmt: skip


class FakeBridge:
    """Records requests; answers with `reply(req)` (a FetchReply, or raises)."""

    def __init__(self, body: str = "ok", status: int = 200, fail: str | None = None) -> None:
        self.requests: list[FetchRequest] = []
        self.body, self.status, self.fail = body, status, fail

    async def __call__(self, req: FetchRequest) -> FetchReply:
        self.requests.append(req)
        if self.fail is not None:
            raise FetchFailed(self.fail)
        headers = [["Content-Type", "application/json"], ["X-Reply", "1"]]
        return {"url": req["url"], "status": self.status, "headers": headers, "body": self.body}


@pytest.fixture
def rt() -> Iterator[JSRuntime]:
    runtime = JSRuntime(timeout=1.0)
    yield runtime
    runtime.close()


async def run(rt: JSRuntime, src: str, handler: str = "track", event: Any = None,
              settings: dict[str, Any] | None = None, bridge: FakeBridge | None = None,
              ) -> CallResult:  # fmt: skip
    version = hashlib.sha256(src.encode()).hexdigest()[:12]
    return await rt.call(src, version, "fn.js", handler, TRACK if event is None else event,
                         settings or {}, bridge or FakeBridge())  # fmt: skip


async def js(rt: JSRuntime, body: str) -> Any:
    """Evaluate a function body inside onTrack and return its value."""
    result = await run(rt, f"async function onTrack(event, settings) {{\n{body}\n}}")
    assert result.ok, result
    return result.value


# -- the seed's examples ---------------------------------------------------------------
async def test_seed_track_posts_with_query_basic_auth_and_json(rt: JSRuntime) -> None:
    bridge = FakeBridge(body="request received")
    result = await run(rt, SEED_TRACK, settings={"apiKey": "secret-key"}, bridge=bridge)
    assert result.ok and result.value == "request received" and result.error is None
    [req] = bridge.requests
    assert req["url"] == "https://redacted.x.pipedream.net/?ts=2019-02-19T23%3A58%3A54.387Z"
    assert req["method"] == "POST"
    headers = dict(req["headers"])
    scheme, token = headers["authentication"].split(" ")
    assert scheme == "Basic" and base64.b64decode(token) == b"secret-key:"
    assert headers["content-type"] == "application/json"
    assert req["body"] is not None and json.loads(req["body"]) == TRACK
    assert 0 < req["timeout"] <= 1.0


async def test_seed_errors(rt: JSRuntime) -> None:
    group = await run(rt, SEED_ERRORS, "group", {"type": "group", "groupId": "g"})
    assert (group.ok, group.error, group.message) == (
        False, CallError.INVALID_EVENT_PAYLOAD, "company is required")  # fmt: skip
    assert (await run(rt, SEED_ERRORS, "group", {"company": "Acme"})).ok
    page = await run(rt, SEED_ERRORS, "page", {"type": "page"})
    assert (page.error, page.message) == (CallError.VALIDATION_ERROR, "Account ID is required")
    ok = await run(rt, SEED_ERRORS, "page", {"type": "page"}, {"accountId": "a1"})
    assert ok.ok and ok.value is None
    alias = await run(rt, SEED_ERRORS, "alias", {"type": "alias"})
    assert (alias.error, alias.message) == (CallError.EVENT_NOT_SUPPORTED, "alias is not supported")


async def test_missing_handler_is_event_not_supported(rt: JSRuntime) -> None:
    assert rt.handlers(SEED_ERRORS, "v-err", "fn.js") == {"group", "page", "alias"}
    for handler, name in (("track", "onTrack"), ("delete", "onDelete"), ("batch", "onBatch")):
        result = await run(rt, SEED_ERRORS, handler)
        assert (result.error, result.message) == (
            CallError.EVENT_NOT_SUPPORTED,
            f"no {name} handler",
        )


async def test_seed_screenshot_older_names(rt: JSRuntime) -> None:
    assert rt.handlers(SEED_SCREENSHOT, "v-old", "fn.js") == {"track", "identify"}
    bridge = FakeBridge(body='{"success": true, "data": {"avatar": "https://a/2.jpg"}}')
    result = await run(rt, SEED_SCREENSHOT, settings={"apiKey": "k1"}, bridge=bridge)
    assert result.ok and result.value == {"success": True, "data": {"avatar": "https://a/2.jpg"}}
    assert dict(bridge.requests[0]["headers"])["authentication"] == "Bearer k1"
    assert bridge.requests[0]["headers"][1] == ["content-type", "text/plain;charset=UTF-8"]
    identify = {"type": "identify", "userId": "u", "email": "a@b.c", "ssn": "1", "traits": {}}
    bridge = FakeBridge(body='{"success": true, "data": {"avatar": "https://a/2.jpg"}}')
    result = await run(rt, SEED_SCREENSHOT, "identify", identify, bridge=bridge)
    assert result.ok
    get, post = bridge.requests
    assert (get["method"], get["body"], get["url"]) == (
        "GET",
        None,
        "https://regres.in/api/users/2",
    )
    assert post["body"] is not None
    sent = json.loads(post["body"])
    assert "email" not in sent and "ssn" not in sent
    assert sent["traits"]["avatar"] == "https://a/2.jpg"


# -- outcomes -----------------------------------------------------------------------
async def test_outcomes_and_values(rt: JSRuntime) -> None:
    assert await js(rt, "return {a: [1, 'x', null], d: new Date(0)}") == {
        "a": [1, "x", None], "d": "1970-01-01T00:00:00.000Z"}  # fmt: skip
    assert await js(rt, "return undefined") is None
    sync = await run(rt, "function onTrack(e, s) { return e.event + '!' }")
    assert sync.value == "Order Completed!"
    arrow = await run(rt, "const onTrack = async (e) => e.userId")
    assert arrow.value == "u1"
    retry = await run(rt, "async function onTrack() { throw new RetryError('later') }")
    assert (retry.error, retry.message) == (CallError.RETRY, "later")
    other = await run(rt, "async function onTrack(e) { return e.nope.deeper }")
    assert other.error == CallError.ERROR and other.message is not None
    assert other.message.startswith("TypeError: Cannot read properties of undefined")
    thrown = await run(rt, "function onTrack() { throw 'plain string' }")
    assert (thrown.error, thrown.message) == (CallError.ERROR, "plain string")
    stuck = await run(rt, "function onTrack() { return new Promise(() => {}) }")
    assert (stuck.error, stuck.message) == (CallError.ERROR, "the handler's promise never settled")
    sub = "class Later extends RetryError {}\nasync function onTrack() { throw new Later('x') }"
    assert (await run(rt, sub)).error == CallError.RETRY


async def test_source_errors(rt: JSRuntime) -> None:
    bad = "async function onTrack( {"
    with pytest.raises(JSSourceError, match="SyntaxError"):
        rt.handlers(bad, "v-bad", "fn.js")
    result = await rt.call(bad, "v-bad2", "fn.js", "track", TRACK, {}, FakeBridge())
    assert result.error == CallError.ERROR and "SyntaxError" in (result.message or "")
    top = "throw new Error('boom at load')"
    assert (await run(rt, top)).message == "Error: boom at load"


async def test_batch_results(rt: JSRuntime) -> None:
    src = """async function onBatch(events, settings) {
      return events.map((e, i) => [{status: 200}, {status: 429, errormessage: 'slow down'},
        {status: 400, errormessage: 'bad'}, {status: 503}, {status: 'retry'}, {status: 'ok'}][i])
    }"""
    result = await run(rt, src, "batch", [TRACK] * 6)
    assert result.ok and result.batch_results == [
        {"index": 0, "ok": True, "error": None, "message": None},
        {"index": 1, "ok": False, "error": "RetryError", "message": "slow down"},
        {"index": 2, "ok": False, "error": "Error", "message": "bad"},
        {"index": 3, "ok": False, "error": "RetryError", "message": "status 503"},
        {"index": 4, "ok": False, "error": "RetryError", "message": "status retry"},
        {"index": 5, "ok": True, "error": None, "message": None},
    ]
    plain = await run(
        rt, "async function onBatch(events) { return events.length }", "batch", [1, 2]
    )
    assert plain.value == 2 and plain.batch_results is None


# -- fetch --------------------------------------------------------------------------
async def test_fetch_response(rt: JSRuntime) -> None:
    bridge = FakeBridge(body='{"id": 7}', status=201)
    value = await run(rt, """async function onTrack() {
      const res = await fetch(new URL('https://api.example.com/v1?x=1'), {method: 'put',
        headers: [['X-A', '1'], ['x-a', '2']], body: new URLSearchParams({q: 'a b'}),
        timeout: 250});
      const again = await res.clone().text().then(() => 'reread', (e) => e.name);
      return [res.status, res.ok, res.statusText, res.url, res.headers.get('x-reply'),
              res.headers.get('CONTENT-TYPE'), res.bodyUsed, again];
    }""", bridge=bridge)  # fmt: skip
    assert value.value == [201, True, "Created", "https://api.example.com/v1?x=1", "1",
                           "application/json", False, "reread"]  # fmt: skip
    [req] = bridge.requests
    assert req["method"] == "PUT" and req["body"] == "q=a+b" and req["timeout"] == 0.25
    form = "application/x-www-form-urlencoded;charset=UTF-8"
    assert req["headers"] == [["content-type", form], ["x-a", "1, 2"]]
    used = await js(
        rt,
        """const r = await fetch('https://x.test/'); await r.text();
      try { await r.text(); } catch (e) { return e.name + ': ' + e.message }""",
    )
    assert used == "TypeError: body used already for: https://x.test/"


async def test_fetch_failure_is_a_catchable_fetch_error(rt: JSRuntime) -> None:
    reason = "request to https://foo/ failed, reason: getaddrinfo ENOTFOUND foo foo:443"
    bridge = FakeBridge(fail=reason)
    caught = await run(rt, """async function onTrack() {
      try { await fetch('https://foo'); return 'no error' }
      catch (e) { return [e instanceof Error, e.name, e.message] }
    }""", bridge=bridge)  # fmt: skip
    assert caught.value == [True, "FetchError", reason]
    assert bridge.requests[0]["url"] == "https://foo/"
    uncaught = await run(
        rt, "async function onTrack() { await fetch('https://foo') }", bridge=bridge
    )
    assert (uncaught.error, uncaught.message) == (CallError.ERROR, f"FetchError: {reason}")
    invalid = await run(rt, "async function onTrack() { await fetch('/relative') }")
    assert invalid.message == "TypeError: Only absolute URLs are supported"
    src = "async function onTrack() { return (await fetch('https://x/')).json() }"
    badjson = await run(rt, src, bridge=FakeBridge(body="<html>"))
    assert (badjson.message or "").startswith(
        "FetchError: invalid json response body at https://x/"
    )


async def test_timers(rt: JSRuntime) -> None:
    assert await js(
        rt,
        """const seen = [];
      const t = setTimeout(() => seen.push('cleared'), 5); clearTimeout(t);
      let n = 0; const iv = setInterval(() => { if (++n === 3) clearInterval(iv) }, 1);
      await new Promise((r) => setTimeout(r, 20, 'x'));
      queueMicrotask(() => seen.push('micro')); await null;
      return [seen, n]""",
    ) == [["micro"], 3]


# -- built-ins ----------------------------------------------------------------------
async def test_headers(rt: JSRuntime) -> None:
    assert await js(rt, """const h = new Headers({'Content-Type': 'a/b', 'X-Multi': 'one'});
      h.append('x-multi', ' two '); h.set('X-New', 3);
      const seen = []; h.forEach((v, k) => seen.push(k + '=' + v));
      const copy = new Headers(h); copy.delete('X-NEW');
      const pairs = new Headers([['A', '1'], ['a', '2']]);
      let bad; try { new Headers({'bad name': 'x'}) } catch (e) { bad = e.name }
      return [h.get('content-type'), h.get('X-MULTI'), h.has('x-new'), h.get('missing'), seen,
              [...copy.keys()], [...pairs.entries()], bad, h.has('X-New')]""") == [
        "a/b", "one, two", True, None, ["content-type=a/b", "x-multi=one, two", "x-new=3"],
        ["content-type", "x-multi"], [["a", "1, 2"]], "TypeError", True]  # fmt: skip


async def test_url(rt: JSRuntime) -> None:
    parts = await js(
        rt,
        """
      const u = new URL('HTTPS://user:pw@Example.COM:8443/a/./b/../c d?x=1&y=2#frag');
      return [u.href, u.protocol, u.host, u.hostname, u.port, u.pathname, u.search, u.hash,
              u.origin, u.username, u.password, u.searchParams.get('y'), String(u),
              JSON.stringify({u})]""",
    )
    href = "https://user:pw@example.com:8443/a/c%20d?x=1&y=2#frag"
    assert parts == [href, "https:", "example.com:8443", "example.com", "8443", "/a/c%20d",
                     "?x=1&y=2", "#frag", "https://example.com:8443", "user", "pw", "2", href,
                     json.dumps({"u": href}, separators=(",", ":"))]  # fmt: skip
    value = await js(
        rt,
        """const u = new URL('http://h.test:80');
      const a = u.href; u.searchParams.set('ts', '2019-02-19T23:58:54.387Z');
      u.searchParams.append('q', 'a b&c'); const b = u.toString();
      u.searchParams.delete('ts'); u.searchParams.delete('q'); const c = u.href;
      u.search = '?k=v'; u.hash = 'top'; u.pathname = 'p/q';
      let invalid; try { new URL('http://') } catch (e) { invalid = e.name + ': ' + e.message }
      return [a, b, c, u.href, u.searchParams.get('k'),
              new URL('../x?y#z', 'https://b.test/one/two/').href,
              new URL('//other.test/p', 'https://b.test/').href, URL.canParse('nope'), invalid]""",
    )
    assert value == [
        "http://h.test/", "http://h.test/?ts=2019-02-19T23%3A58%3A54.387Z&q=a+b%26c",
        "http://h.test/", "http://h.test/p/q?k=v#top", "v", "https://b.test/one/x?y#z",
        "https://other.test/p", False,
        "TypeError: Invalid URL",
    ]  # fmt: skip


async def test_url_search_params(rt: JSRuntime) -> None:
    value = await js(
        rt,
        """const p = new URLSearchParams('?a=1&b=x+y&a=2&c=%E2%82%AC&d');
      const o = new URLSearchParams({z: 'é /*', n: 5});
      const l = new URLSearchParams([['k', 'v']]);
      p.set('a', '3'); const seen = []; p.forEach((v, k) => seen.push(k + ':' + v));
      return [p.get('a'), p.getAll('a'), p.get('b'), p.get('c'), p.has('d'), p.get('none'), seen,
              p.toString(), o.toString(), l.toString(), [...new URLSearchParams(o).entries()],
              p.size]""",
    )
    assert value == [
        "3", ["3"], "x y", "€", True, None, ["a:3", "b:x y", "c:€", "d:"],
        "a=3&b=x+y&c=%E2%82%AC&d=", "z=%C3%A9+%2F*&n=5", "k=v", [["z", "é /*"], ["n", "5"]], 4,
    ]  # fmt: skip


async def test_btoa_atob(rt: JSRuntime) -> None:
    latin = "".join(chr(i) for i in range(256))
    value = await js(
        rt,
        """
      const latin = Array.from({length: 256}, (_, i) => String.fromCharCode(i)).join('');
      const err = (f) => { try { f(); return 'no error' } catch (e) {
        return [e.name, e.message, e.code, e instanceof DOMException, e instanceof Error] } };
      return [btoa('hello'), btoa(''), btoa('ab'), atob('aGVsbG8='), atob(' aGVs\\nbG8 '),
              atob('YWI'), btoa(latin), atob(btoa(latin)) === latin, err(() => btoa('€')),
              err(() => atob('a'))]""",
    )
    assert value[:6] == ["aGVsbG8=", "", "YWI=", "hello", "hello", "ab"]
    assert value[6] == base64.b64encode(latin.encode("latin-1")).decode() and value[7] is True
    assert value[8] == ["InvalidCharacterError", "Invalid character", 5, True, True]
    assert value[9] == value[8]


async def test_console_is_captured_per_call(rt: JSRuntime) -> None:
    src = """async function onTrack(e) {
      console.log('track', e.event, {n: 1}); console.warn('n=%d%%', 5, [1]);
      console.error(new Error('x').message)
    }
    async function onPage() { console.info('page only'); return 1 }"""
    first = await run(rt, src)
    assert first.logs == 'track Order Completed {"n":1}\nn=5% [1]\nx'
    second = await run(rt, src, "page")
    assert second.logs == "page only"
    failing = await run(rt, "function onTrack() { console.log('before'); throw new Error('e') }")
    assert (failing.logs, failing.message) == ("before", "Error: e")
    src = "function onTrack() { for (let i = 0; i < 1e4; i++) console.log('x'.repeat(99)) }"
    flood = await run(rt, src)
    assert len(flood.logs.encode()) <= MAX_LOG_BYTES + 64 and flood.logs.endswith("(log truncated)")


# -- limits ---------------------------------------------------------------------------
async def test_runaway_loop_times_out_and_runtime_recovers(rt: JSRuntime) -> None:
    rt.timeout = 0.3
    src = """async function onTrack() { while (true) {} }
    async function onPage() { await fetch('https://x.test/'); for (;;) {} }
    function onScreen() { Promise.resolve().then(() => { for (;;) {} }); return 'left behind' }
    async function onIdentify() { return 'fine' }"""
    for handler in ("track", "page", "screen"):  # the first step, after a fetch, a microtask
        result = await run(rt, src, handler)
        assert (result.error, result.message) == (CallError.TIMEOUT, "timed out after 0.3 s")
        assert 250 < result.duration_ms < 2000
        assert (await run(rt, src, "identify")).value == "fine"
    top = await run(rt, "while (true) {}")
    assert top.error == CallError.TIMEOUT
    waits = "async function onTrack() { await new Promise((r) => setTimeout(r, 5000)) }"
    with pytest.raises(TimeoutError):  # the worker gives up on the call: the isolate goes
        await asyncio.wait_for(run(rt, waits), 0.05)
    assert rt.isolate_count() == 1 and (await run(rt, src, "identify")).value == "fine"


async def test_memory_limit(rt: JSRuntime) -> None:
    rt.memory_limit = 64 * 1024 * 1024
    src = """async function onTrack() { const a = []; while (true) a.push(new Array(1e5).fill(1)) }
    async function onPage() { await null; const a = []; for (;;) a.push(new Array(1e5).fill(2)) }
    async function onIdentify() { return 'still here' }"""
    for handler in ("track", "page"):
        result = await run(rt, src, handler)
        assert (result.error, result.message) == (CallError.MEMORY, "memory limit reached (64 MB)")
        assert (await run(rt, src, "identify")).value == "still here"
    huge = await js(rt, "try { new ArrayBuffer(2 ** 40) } catch (e) { return e.name }")
    assert huge == "RangeError"


async def test_isolates_are_warm_per_version_and_bounded(rt: JSRuntime) -> None:
    src = "let n = 0; async function onTrack() { return ++n }"
    values = [
        (await rt.call(src, "a", "f.js", "track", TRACK, {}, FakeBridge())).value for _ in range(3)
    ]
    assert values == [1, 2, 3]
    assert (await rt.call(src, "b", "f.js", "track", TRACK, {}, FakeBridge())).value == 1
    rt.max_isolates = 2
    for version in ("c", "d", "e"):
        await rt.call(src, version, "f.js", "track", TRACK, {}, FakeBridge())
    assert rt.isolate_count() == 2
    assert (await rt.call(src, "a", "f.js", "track", TRACK, {}, FakeBridge())).value == 1
