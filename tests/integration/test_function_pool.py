"""FunctionPool with real worker processes (in bubblewrap where it works): fetch, limits, recovery.

Every function here runs in a real sandboxed worker; fetch goes through the real
egress-guarded aiohttp transport to a local endpoint. The limits are small (0.5-1 s
timeouts) so runaway functions cost little time.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from tests.support.endpoint import Endpoint, Reply

from segue.delivery.egress import EgressPolicy
from segue.delivery.transport import HTTPTransport
from segue.functions.pool import FunctionCodeError, FunctionPool
from segue.functions.proxy import FetchProxy
from segue.functions.result import CallError, CallResult

LOCAL = EgressPolicy.from_config(["127.0.0.0/8"], allow_http=True)
GUARDED = EgressPolicy.from_config([], allow_http=True)  # the default guard (http allowed)
SCOPE = "dest_1"


def code(source: str) -> str:
    return textwrap.dedent(source)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    with Endpoint() as server:
        yield server


async def open_pool(policy: EgressPolicy, **options: object) -> tuple[FunctionPool, HTTPTransport]:
    transport = HTTPTransport(policy)
    pool = FunctionPool(fetch=FetchProxy(transport), **options)  # type: ignore[arg-type]
    await pool.start()
    return pool, transport


@pytest.fixture
async def pool() -> AsyncIterator[FunctionPool]:
    functions, transport = await open_pool(LOCAL, size=2, timeout_s=0.5)
    try:
        yield functions
    finally:
        await functions.close()
        await transport.close()


async def call(
    functions: FunctionPool, source: str, handler: str = "track", **event: object
) -> CallResult:
    settings = {"url": event.pop("url", ""), "apiKey": "k1"}
    payload = {"type": handler, "event": "Order Completed", **event}
    return await functions.call(
        "python", code(source), "v1", "fn.py", handler, payload, settings, scope=SCOPE
    )


FETCHER = """
    import base64
    from segue.functions import fetch

    async def on_track(event, settings):
        token = base64.b64encode(f"{settings['apiKey']}:".encode()).decode()
        res = await fetch(settings["url"] + "/hook?ts=1", method="post", json=event,
                          headers={"Authorization": "Basic " + token})
        print("status", res.status, res.ok, res.headers["content-type"])
        return await res.text()
"""


async def test_fetch_posts_json_to_a_local_endpoint(pool: FunctionPool, endpoint: Endpoint) -> None:
    endpoint.reply_with(lambda _request: Reply.json(201, {"received": True}))
    result = await call(pool, FETCHER, url=endpoint.url, userId="u1")
    assert result.ok, result
    assert result.value == '{"received": true}'
    assert result.logs == "status 201 True application/json\n"
    [request] = endpoint.requests
    assert (request.method, request.path) == ("POST", "/hook?ts=1")
    assert request.header("Authorization") == "Basic azE6"
    assert request.header("Content-Type") == "application/json"
    assert request.json() == {"type": "track", "event": "Order Completed", "userId": "u1"}


BLOCKED = """
    from segue.functions import fetch
    from segue.functions.fetching import FetchError

    async def on_track(event, settings):
        try:
            await fetch(settings["url"])
        except FetchError as exc:
            return "refused: " + str(exc)
        return "reached it"

    async def on_page(event, settings):
        await fetch(settings["url"])
"""


async def test_fetch_to_a_blocked_address_is_refused_before_connecting(endpoint: Endpoint) -> None:
    functions, transport = await open_pool(GUARDED, size=1, timeout_s=2.0)
    try:
        loopback = await call(functions, BLOCKED, url=endpoint.url + "/x")
        metadata = await call(functions, BLOCKED, url="http://169.254.169.254/latest/meta-data/")
        uncaught = await call(functions, BLOCKED, "page", url=endpoint.url)
    finally:
        await functions.close()
        await transport.close()
    assert loopback.value == (
        f"refused: request to {endpoint.url}/x failed, reason: 127.0.0.1 is a loopback"
        f' address; allow it in [egress] allow (e.g. "127.0.0.1:{endpoint.port}") to call it'
    )
    assert "169.254.169.254 is a cloud metadata address" in metadata.value
    assert uncaught.error == CallError.ERROR
    assert uncaught.message is not None
    assert uncaught.message.startswith("FetchError: request to http://127.0.0.1:")
    assert "loopback" in uncaught.message
    assert endpoint.count == 0


RUNAWAY = """
    import asyncio

    def on_track(event, settings):
        while True:
            pass

    async def on_page(event, settings):
        await asyncio.sleep(60)

    def on_identify(event, settings):
        return event["userId"]
"""


async def test_an_infinite_loop_is_killed_at_the_timeout_and_others_keep_running(
    pool: FunctionPool,
) -> None:
    started = time.monotonic()
    runaway = asyncio.create_task(call(pool, RUNAWAY, "track"))
    healthy = []
    for n in range(20):  # all on the other worker, while the first one spins
        healthy.append(await call(pool, RUNAWAY, "identify", userId=f"u{n}"))
    assert [r.value for r in healthy] == [f"u{n}" for n in range(20)]
    assert not runaway.done()

    result = await runaway
    elapsed = time.monotonic() - started
    assert (result.error, result.message) == (
        CallError.TIMEOUT,
        "the function ran longer than 0.5 s",
    )
    assert 0.45 < elapsed < 3.0

    # the killed worker is replaced: both workers serve again
    after = await asyncio.gather(*(call(pool, RUNAWAY, "identify", userId="x") for _ in range(4)))
    assert [r.value for r in after] == ["x"] * 4


async def test_an_awaiting_function_times_out_without_losing_its_worker(
    pool: FunctionPool,
) -> None:
    result = await call(pool, RUNAWAY, "page")
    assert (result.error, result.message) == (
        CallError.TIMEOUT,
        "the function ran longer than 0.5 s",
    )
    assert (await call(pool, RUNAWAY, "identify", userId="u")).value == "u"


async def test_allocating_2_gb_is_stopped_and_the_pool_recovers(pool: FunctionPool) -> None:
    source = """
        def on_track(event, settings):
            b = bytearray(2 * 1024**3)
            return len(b)

        def on_page(event, settings):
            chunks = []
            while True:
                chunks.append(bytearray(10**6))

        def on_screen(event, settings):
            return "fine"
    """
    at_once = await call(pool, source, "track")
    assert at_once.error == CallError.MEMORY, at_once
    assert "MemoryError" in (at_once.message or "")
    gradually = await call(pool, source, "page")
    assert gradually.error == CallError.MEMORY, gradually
    assert (await call(pool, source, "screen")).value == "fine"


async def test_a_dying_worker_is_a_crash_and_is_replaced(pool: FunctionPool) -> None:
    source = """
        import os, signal
        def on_track(event, settings):
            os._exit(3)
        def on_page(event, settings):
            os.kill(os.getpid(), signal.SIGSEGV)
        def on_screen(event, settings):
            return "alive"
    """
    exited = await call(pool, source, "track")
    assert exited.error == CallError.CRASH
    assert "exited" in (exited.message or "")
    killed = await call(pool, source, "page")
    assert (killed.error, killed.message) == (
        CallError.CRASH,
        "the function's worker was killed by SIGSEGV",
    )
    results = await asyncio.gather(*(call(pool, source, "screen") for _ in range(4)))
    assert [r.value for r in results] == ["alive"] * 4


async def test_secrets_in_segues_environment_are_not_visible(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEGUE_SECRET_KEY", "key-must-not-leak")
    monkeypatch.setenv("SEGUE_ADMIN_TOKEN", "token-must-not-leak")
    source = """
        import os
        def on_track(event, settings):
            return dict(os.environ)
    """
    for mode in ("auto", "none"):  # scrubbed with or without bubblewrap
        functions, transport = await open_pool(LOCAL, size=1, sandbox=mode)
        try:
            result = await call(functions, source)
        finally:
            await functions.close()
            await transport.close()
        assert set(result.value) <= {"PATH", "LANG", "PYTHONPATH", "HOME", "LC_CTYPE"}, mode
        assert "must-not-leak" not in str(result.value)


async def test_handlers_and_broken_code(pool: FunctionPool) -> None:
    source = "def on_track(e, s): pass\nasync def on_batch(e, s): pass\n"
    assert await pool.handlers("python", source, "h1", "fn.py", scope=SCOPE) == {"track", "batch"}
    with pytest.raises(FunctionCodeError, match="SyntaxError"):
        await pool.handlers("python", "def on_track(:\n", "h2", "fn.py", scope=SCOPE)
    with pytest.raises(FunctionCodeError, match=r"ran longer than 0\.5 s"):
        await pool.handlers("python", "while True:\n    pass\n", "h3", "fn.py", scope=SCOPE)
    broken = await call(pool, "def on_track(e, s)\n")
    assert broken.error == CallError.ERROR
    assert (broken.message or "").startswith("SyntaxError")


async def test_sources_are_sent_once_per_worker_and_version(pool: FunctionPool) -> None:
    v1 = "def on_track(e, s):\n    return 1\n"
    v2 = "def on_track(e, s):\n    return 2\n"
    for _ in range(3):
        one = await pool.call("python", v1, "v1", "fn.py", "track", {}, {}, scope=SCOPE)
        two = await pool.call("python", v2, "v2", "fn.py", "track", {}, {}, scope=SCOPE)
        assert (one.value, two.value) == (1, 2)


async def test_on_batch_runs_in_a_worker(pool: FunctionPool) -> None:
    source = """
        def on_batch(events, settings):
            return [{"status": 200 if e.get("ok") else 500, "errormessage": "down"} for e in events]
    """
    events = [{"type": "track", "ok": True}, {"type": "track"}]
    result = await pool.call(
        "python", code(source), "b1", "fn.py", "batch", events, {}, scope=SCOPE
    )
    assert result.ok
    assert result.batch_results == [
        {"index": 0, "ok": True, "error": None, "message": None},
        {"index": 1, "ok": False, "error": "RetryError", "message": "down"},
    ]


async def test_a_closed_pool_refuses_calls() -> None:
    functions = FunctionPool(size=1)
    await functions.start()
    await functions.close()
    with pytest.raises(RuntimeError, match="closed"):
        await functions.call("python", "", "v", "fn.py", "track", {}, {}, scope=SCOPE)


async def test_an_oversized_call_is_refused_without_losing_the_worker(pool: FunctionPool) -> None:
    source = "def on_track(e, s):\n    return 'small'\n"
    huge = {"type": "track", "blob": "x" * (17 * 1024 * 1024)}
    result = await pool.call("python", source, "big", "fn.py", "track", huge, {}, scope=SCOPE)
    assert (result.error, result.message) == (
        CallError.ERROR,
        "the event and code are over the 16 MiB a function call may carry",
    )
    assert (await call(pool, source)).value == "small"


JS = """
    async function onTrack(event, settings) {
      console.log("tracking", event.event)
      return { doubled: event.n * 2 }
    }
    async function onIdentify(event, settings) { while (true) {} }
"""


async def test_javascript_functions_run_in_their_own_workers(pool: FunctionPool) -> None:
    pytest.importorskip("py_mini_racer", reason="mini-racer is not installed")
    source = code(JS)
    event = {"type": "track", "event": "Signed Up", "n": 21}
    result = await pool.call("javascript", source, "js1", "fn.js", "track", event, {}, scope=SCOPE)
    assert result.ok, result
    assert result.value == {"doubled": 42}
    assert "tracking Signed Up" in result.logs
    assert await pool.handlers("javascript", source, "js1", "fn.js", scope=SCOPE) == {
        "track",
        "identify",
    }
    spin = await pool.call("javascript", source, "js1", "fn.js", "identify", {}, {}, scope=SCOPE)
    assert (spin.error, spin.message) == (CallError.TIMEOUT, "the function ran longer than 0.5 s")
    assert (
        await pool.call("javascript", source, "js1", "fn.js", "track", event, {}, scope=SCOPE)
    ).ok


TOKEN = """
    import asyncio, os

    TOKEN = os.urandom(8).hex()  # made once per worker, when it loads the code

    async def on_track(event, settings):
        await asyncio.sleep(event.get("sleep", 0))
        return TOKEN
"""


async def token(functions: FunctionPool, scope: str, sleep: float = 0) -> str:
    event = {"type": "track", "sleep": sleep}
    result = await functions.call(
        "python", code(TOKEN), "t1", "fn.py", "track", event, {}, scope=scope
    )
    assert result.ok, result
    return str(result.value)


async def test_scopes_never_share_a_worker(pool: FunctionPool) -> None:
    first = {await token(pool, "dest_a") for _ in range(5)}
    second = {await token(pool, "dest_b") for _ in range(5)}
    assert len(first) == len(second) == 1  # warm: the same worker call after call
    assert not first & second
    tokens = await asyncio.gather(*(token(pool, f"test_{n}") for n in range(4)))
    assert len(set(tokens) | first | second) == 6  # every Send Test Event scope its own


async def test_a_scope_has_at_most_size_workers(pool: FunctionPool) -> None:
    tokens = await asyncio.gather(*(token(pool, "dest_a", sleep=0.1) for _ in range(6)))
    assert len(set(tokens)) == 2
    assert len(pool.workers("dest_a")) == 2


async def test_idle_workers_end_and_the_least_recently_used_makes_room() -> None:
    # idle reaping is off while the LRU order is set up (a slow start under load must not
    # reap a worker early), then short for the reaping phase
    functions = FunctionPool(size=1, max_workers=2, idle_timeout_s=600)
    try:
        await token(functions, "dest_a")
        [first] = functions.workers("dest_a")
        await token(functions, "dest_b")
        await token(functions, "dest_a")  # now dest_b's worker is the least recently used
        [second] = functions.workers("dest_b")
        await token(functions, "dest_c")  # at max_workers: dest_b's worker makes room
        await asyncio.wait_for(second.process.wait(), 5)
        assert first.alive and functions.workers("dest_b") == []
        # unused for idle_timeout_s, the others end too
        functions.idle_timeout_s = 0.3
        for scope in ("dest_a", "dest_c"):
            assert await token(functions, scope)  # released again: the short timer
        for worker in functions.workers():
            await asyncio.wait_for(worker.process.wait(), 5)
        assert functions.workers() == []
        assert await token(functions, "dest_a")  # and start again on demand
    finally:
        await functions.close()
