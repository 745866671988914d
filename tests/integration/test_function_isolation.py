"""One function never touches another's delivery: real workers, the real Deliverer.

A spy function app — never attached to a destination, run the way Send Test Event runs
it (an ephemeral ``test_…`` destination, hence a scope of its own) — patches its runtime,
walks ``sys.modules`` and ``gc.get_objects()`` and reads ``/proc``; the JavaScript spy
patches globals, ``Object.prototype`` and ``JSON.stringify``. Meanwhile a victim
destination delivers events carrying a secret. The spy must never see the secret, and
the victim's results must stay its own. A function that loops forever holds only its
own scope's workers: another scope's call latency stays the same.
"""

from __future__ import annotations

import asyncio
import statistics
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from segue.delivery.attempt import Deliverer
from segue.delivery.egress import EgressPolicy
from segue.delivery.function_attempt import FunctionAttemptRecord
from segue.delivery.testing import app_test_destination
from segue.delivery.transport import HTTPTransport
from segue.destinations.catalog import Catalog
from segue.destinations.models import Destination
from segue.destinations.secrets import SecretBox
from segue.functions.pool import FunctionPool
from segue.functions.sandbox import sandbox_available
from segue.store.factory import open_store

needs_bwrap = pytest.mark.skipif(
    not sandbox_available(),
    reason="bubblewrap cannot run here: without it a spy could read other workers' memory",
)
SETTINGS = [{"label": "API Key", "key": "apiKey", "sensitive": True}]
# Built by concatenation in the spies, so that their own source never holds it whole.
MARKER = "VICTIM"


@pytest.fixture
async def catalog() -> AsyncIterator[Catalog]:
    store = open_store("memory://")
    await store.open()
    catalog = Catalog(store, SecretBox("test-key"))
    await catalog.refresh()
    try:
        yield catalog
    finally:
        await store.close()


@pytest.fixture
async def pool() -> AsyncIterator[FunctionPool]:
    functions = FunctionPool(size=2, timeout_s=5.0)
    await functions.start(["python"])
    try:
        yield functions
    finally:
        await functions.close()


async def deliverer_with(
    catalog: Catalog, pool: FunctionPool, runtime: str, victim: str, spy: str
) -> tuple[Deliverer, Destination, Destination]:
    """A victim destination with a secret, and a Send Test Event destination of the spy."""
    await catalog.save_app(
        {"name": "victim", "code": victim, "runtime": runtime, "settings": SETTINGS}
    )
    spy_app = await catalog.save_app(
        {"name": "spy", "code": spy, "runtime": runtime, "settings": SETTINGS}
    )
    secret = f"{MARKER}-{uuid.uuid4().hex}"
    destination = await catalog.save_destination(
        {"name": "victim-prod", "app": "victim", "settings": {"apiKey": secret}}
    )
    tester = app_test_destination(spy_app, {"apiKey": "spy-key"})
    assert tester.id.startswith("test_") and tester.id != destination.id
    return Deliverer(catalog, HTTPTransport(EgressPolicy()), pool), destination, tester


async def attempt(deliverer: Deliverer, destination: Destination, **event: Any) -> Any:
    record = await deliverer.attempt(destination, {"type": "track", **event})
    assert isinstance(record, FunctionAttemptRecord)
    assert record.result.ok, record.result
    return record.result.value


PY_VICTIM = """
def on_track(event, settings):
    return {"user": event["userId"], "key": settings["apiKey"]}
"""

PY_SPY = """
import gc, os, sys
from dataclasses import replace
from segue.functions import python_runtime, worker

seen = []
original = python_runtime.PythonRuntime.call

async def spying(self, source, version, filename, handler, payload, settings, fetch):
    seen.append(repr((payload, settings)))
    result = await original(self, source, version, filename, handler, payload, settings, fetch)
    return replace(result, value="tampered")  # what every call of this worker returns

python_runtime.PythonRuntime.call = spying

def needle():
    return "VIC" + "TIM"

def strings(obj):
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    return list(obj) if isinstance(obj, (list, tuple, set)) else []

def harvest():
    found = [text for text in seen if needle() in text]
    for obj in [*gc.get_objects(), *(vars(m) for m in list(sys.modules.values()))]:
        for item in strings(obj):
            if isinstance(item, (str, bytes)) and needle() in str(item):
                found.append(str(item)[:200])
    for pid in os.listdir("/proc"):
        for part in ("environ", "cmdline", "maps"):
            try:
                data = open(f"/proc/{pid}/{part}", "rb").read()
            except OSError:
                continue
            if needle().encode() in data:
                found.append(f"/proc/{pid}/{part}")
    return found
"""


@needs_bwrap
async def test_a_python_spy_cannot_change_another_scopes_result(
    catalog: Catalog, pool: FunctionPool
) -> None:
    # patched at import: every call its worker runs now returns "tampered"
    spy = PY_SPY + "\ndef on_track(event, settings):\n    return harvest()\n"
    deliverer, victim, tester = await deliverer_with(catalog, pool, "python", PY_VICTIM, spy)
    findings = []
    for n in range(6):
        await attempt(deliverer, victim, userId=f"{MARKER}-user-{n}")
        record = await deliverer.attempt(tester, {"type": "track", "userId": "spy"})
        assert record.result.ok, record.result
        findings.append(record.result.value)
    # the first call loaded the code (and the patch); from then on the spy's own calls
    # come back "tampered": its patch works, in its own worker only
    assert findings == [[], *["tampered"] * 5]
    value = await attempt(deliverer, victim, userId="last")
    assert value == {"user": "last", "key": victim.settings["apiKey"]}


PY_REPORTER = PY_SPY.replace('return replace(result, value="tampered")', "return result")


@needs_bwrap
async def test_what_a_python_spy_can_find_holds_nothing_of_the_victim(
    catalog: Catalog, pool: FunctionPool
) -> None:
    spy = (
        PY_REPORTER
        + "\ndef on_track(event, settings):\n    return {'found': harvest(), 'seen': len(seen)}\n"
    )
    deliverer, victim, tester = await deliverer_with(catalog, pool, "python", PY_VICTIM, spy)
    for n in range(4):
        await attempt(deliverer, victim, userId=f"{MARKER}-user-{n}")
        report = await attempt(deliverer, tester, userId="spy")
        assert report["found"] == []
        assert report["seen"] == n  # its own calls after the first: the patch is in force
    value = await attempt(deliverer, victim, userId="after")
    assert value == {"user": "after", "key": victim.settings["apiKey"]}


JS_VICTIM = """
async function onTrack(event, settings) {
  return { user: event.userId, key: settings.apiKey, proto: ({}).tampered === undefined }
}
"""

JS_SPY = """
const needle = "VIC" + "TIM";
const seen = [];
const stringify = JSON.stringify;
const parse = JSON.parse;
JSON.stringify = function (value, ...rest) {
  const text = stringify.call(JSON, value, ...rest);
  if (typeof text === "string") seen.push(text);
  return text;
};
JSON.parse = function (text, ...rest) {
  seen.push(String(text));
  return parse.call(JSON, text, ...rest);
};
Object.prototype.tampered = "yes";
async function onTrack(event, settings) {
  return { found: seen.filter((text) => text.includes(needle)).length, seen: seen.length };
}
"""


@needs_bwrap
async def test_a_javascript_spy_sees_and_changes_nothing_of_another_scope(
    catalog: Catalog, pool: FunctionPool
) -> None:
    pytest.importorskip("py_mini_racer", reason="mini-racer is not installed")
    victim_code = textwrap.dedent(JS_VICTIM)
    deliverer, victim, tester = await deliverer_with(
        catalog, pool, "javascript", victim_code, textwrap.dedent(JS_SPY)
    )
    secret = victim.settings["apiKey"]
    for n in range(4):
        report = await attempt(deliverer, tester, userId="spy")
        assert report["found"] == 0
        assert report["seen"] > 0  # its patches are in force, in its own isolate
        value = await attempt(deliverer, victim, userId=f"{MARKER}-user-{n}")
        assert value == {"user": f"{MARKER}-user-{n}", "key": secret, "proto": True}
    assert (await attempt(deliverer, tester, userId="spy"))["found"] == 0


LOOPING = """
def on_track(event, settings):
    while True:
        pass

def on_identify(event, settings):
    return event["userId"]
"""


async def p50_ms(functions: FunctionPool, scope: str, calls: int = 30) -> float:
    times = []
    for n in range(calls):
        started = time.perf_counter()
        result = await functions.call(
            "python", LOOPING, "loop-v1", "fn.py", "identify", {"userId": f"u{n}"}, {}, scope=scope
        )
        times.append((time.perf_counter() - started) * 1000)
        assert result.value == f"u{n}", result
    return statistics.median(times)


async def test_a_looping_function_delays_only_its_own_scope() -> None:
    functions = FunctionPool(size=2, timeout_s=1.0)
    try:
        await functions.call(  # warm: the healthy scope's worker is running
            "python", LOOPING, "loop-v1", "fn.py", "identify", {"userId": "u"}, {}, scope="fast"
        )
        before = await p50_ms(functions, "fast")

        async def loop_forever(stop: asyncio.Event) -> int:
            timeouts = 0
            while not stop.is_set():
                result = await functions.call(
                    "python", LOOPING, "loop-v1", "fn.py", "track", {}, {}, scope="looping"
                )
                timeouts += result.error is not None
            return timeouts

        warm = [
            functions.call(  # both workers of the looping scope started, and idle
                "python", LOOPING, "loop-v1", "fn.py", "identify", {"userId": "u"}, {}, scope=s
            )
            for s in ("looping", "looping")
        ]
        await asyncio.gather(*warm)
        stop = asyncio.Event()
        # more calls than the looping scope has workers: both spin, the rest queue there
        loops = [asyncio.create_task(loop_forever(stop)) for _ in range(4)]
        for _ in range(10):  # let the loops' calls be sent: no timer, only turns of the loop
            await asyncio.sleep(0)
        assert len(functions._groups[("python", "looping", "loop-v1")].busy) == 2
        during = await p50_ms(functions, "fast")
        stop.set()
        assert sum(await asyncio.gather(*loops)) >= 2
    finally:
        await functions.close()
    print(f"p50 of another scope: {before:.2f} ms alone, {during:.2f} ms beside a loop")
    assert during <= 2 * before
