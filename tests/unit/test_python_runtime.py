"""PythonRuntime in-process: handlers, Segment's error classes, logs, on_batch, fetch's bridge."""

from __future__ import annotations

import asyncio
import importlib
import logging
import textwrap
from typing import Any

import pytest

from segue.functions.bridge import MAX_LOG_BYTES, FetchFailed, FetchReply, FetchRequest
from segue.functions.fetching import FetchError, fetch
from segue.functions.python_runtime import PythonRuntime, PythonSourceError
from segue.functions.result import CallError, CallResult

fetch_module = importlib.import_module("segue.functions.fetching")
TYPES = ["identify", "track", "page", "screen", "group", "alias", "delete"]


async def no_fetch(request: FetchRequest) -> FetchReply:
    raise FetchFailed("fetch is not available in this test")


async def run(
    source: str,
    handler: str,
    payload: Any = None,
    settings: dict[str, Any] | None = None,
    *,
    runtime: PythonRuntime | None = None,
    version: str = "v1",
    bridge: Any = no_fetch,
) -> CallResult:
    runtime = runtime or PythonRuntime()
    event = payload if payload is not None else {"type": handler, "userId": "u1"}
    return await runtime.call(
        textwrap.dedent(source), version, "fn.py", handler, event, settings or {}, bridge
    )


@pytest.mark.parametrize("kind", TYPES)
@pytest.mark.parametrize("style", ["def", "async def"])
async def test_every_handler_runs_sync_and_async(kind: str, style: str) -> None:
    source = f"""
        import asyncio
        {style} on_{kind}(event, settings):
            {"await asyncio.sleep(0)" if style == "async def" else "pass"}
            return {{"type": event["type"], "key": settings["apiKey"]}}
    """
    result = await run(source, kind, settings={"apiKey": "k1"})
    assert result.ok, result
    assert result.value == {"type": kind, "key": "k1"}
    assert result.error is None
    assert result.duration_ms > 0


async def test_a_missing_handler_is_event_not_supported() -> None:
    result = await run("def on_track(event, settings):\n    return 1\n", "alias")
    assert not result.ok
    assert result.error == CallError.EVENT_NOT_SUPPORTED
    assert result.message == "no on_alias handler"


@pytest.mark.parametrize(
    ("error_class", "kind"),
    [
        ("EventNotSupported", CallError.EVENT_NOT_SUPPORTED),
        ("InvalidEventPayload", CallError.INVALID_EVENT_PAYLOAD),
        ("ValidationError", CallError.VALIDATION_ERROR),
        ("RetryError", CallError.RETRY),
    ],
)
async def test_segment_error_classes_map_to_their_outcome(
    error_class: str, kind: CallError
) -> None:
    source = f"""
        from segue.functions import {error_class}
        async def on_group(event, settings):
            if not event.get("company"):
                raise {error_class}("company is required")
    """
    result = await run(source, "group")
    assert not result.ok
    assert result.error == kind
    assert result.message == "company is required"
    assert "Traceback" not in result.logs


async def test_any_other_exception_is_an_error_with_a_trimmed_traceback_in_logs() -> None:
    source = """
        def helper(event):
            return event["missing"]

        def on_track(event, settings):
            print("before the failure")
            return helper(event)
    """
    result = await run(source, "track")
    assert result.error == CallError.ERROR
    assert result.message == "KeyError: 'missing'"
    assert result.logs.startswith("before the failure\nTraceback (most recent call last):\n")
    assert 'File "fn.py", line 7, in on_track' in result.logs
    assert 'return event["missing"]' in result.logs  # the user's line is quoted
    assert "python_runtime.py" not in result.logs  # segue's own frames are trimmed
    assert result.logs.rstrip().endswith("KeyError: 'missing'")


async def test_broken_code_is_an_error_and_handlers_raises() -> None:
    result = await run("def on_track(event, settings)\n    return 1\n", "track")
    assert result.error == CallError.ERROR
    assert result.message is not None and result.message.startswith("SyntaxError:")
    with pytest.raises(PythonSourceError, match="SyntaxError"):
        PythonRuntime().handlers("def on_track(:\n", "v1", "fn.py")


async def test_handlers_lists_the_defined_types() -> None:
    source = "def on_track(e, s): pass\nasync def on_delete(e, s): pass\non_page = 3\n"
    assert PythonRuntime().handlers(source, "v1", "fn.py") == {"track", "delete"}


async def test_exiting_or_running_out_of_memory_does_not_escape() -> None:
    result = await run("import sys\ndef on_track(e, s):\n    sys.exit(3)\n", "track")
    assert (result.error, result.message) == (CallError.ERROR, "SystemExit: 3")
    result = await run("def on_track(e, s):\n    raise MemoryError()\n", "track")
    assert result.error == CallError.MEMORY
    assert "MemoryError" in (result.message or "")


async def test_prints_and_logging_are_captured_per_call() -> None:
    source = """
        import logging, sys
        log = logging.getLogger("my.function")
        def on_track(event, settings):
            print("print", event["n"])
            sys.stderr.write(f"stderr {event['n']}\\n")
            log.warning("warning %s", event["n"])
            return event["n"]
    """
    runtime = PythonRuntime()
    first = await run(source, "track", {"n": 1}, runtime=runtime)
    second = await run(source, "track", {"n": 2}, runtime=runtime)
    assert first.logs == "print 1\nstderr 1\nWARNING my.function: warning 1\n"
    assert second.logs == "print 2\nstderr 2\nWARNING my.function: warning 2\n"
    logging.getLogger("my.function").warning("outside a call")  # not captured anywhere


async def test_overlapping_calls_keep_their_logs_apart() -> None:
    source = """
        import asyncio
        async def on_track(event, settings):
            for i in range(3):
                print(event["n"], i)
                await asyncio.sleep(0.001)
            return event["n"]
    """
    runtime = PythonRuntime()
    results = await asyncio.gather(*(run(source, "track", {"n": n}, runtime=runtime) for n in "ab"))
    assert [r.logs for r in results] == ["a 0\na 1\na 2\n", "b 0\nb 1\nb 2\n"]


async def test_logs_are_capped_with_a_marker() -> None:
    source = "def on_track(e, s):\n    for i in range(10000):\n        print('x' * 99)\n"
    result = await run(source, "track")
    assert result.ok
    assert len(result.logs.encode()) <= MAX_LOG_BYTES
    assert result.logs.endswith("…truncated")
    source = "def on_track(e, s):\n    print('y' * 200000)\n    1 / 0\n"
    result = await run(source, "track")  # the traceback survives a full log
    assert len(result.logs.encode()) <= MAX_LOG_BYTES
    assert "…truncated" in result.logs and "ZeroDivisionError" in result.logs


async def test_on_batch_per_event_results_are_normalised() -> None:
    source = """
        def on_batch(events, settings):
            return [
                {"status": 200},
                {"status": 429, "errormessage": "slow down"},
                {"status": 400, "errormessage": "bad email"},
                {"status": "ok"},
                {"status": "retry", "errormessage": "later"},
                {"status": 503},
            ]
    """
    events = [{"type": "track", "event": f"e{i}"} for i in range(7)]
    result = await run(source, "batch", events)
    assert result.ok
    assert result.batch_results == [
        {"index": 0, "ok": True, "error": None, "message": None},
        {"index": 1, "ok": False, "error": "RetryError", "message": "slow down"},
        {"index": 2, "ok": False, "error": "Error", "message": "bad email"},
        {"index": 3, "ok": True, "error": None, "message": None},
        {"index": 4, "ok": False, "error": "RetryError", "message": "later"},
        {"index": 5, "ok": False, "error": "RetryError", "message": "status 503"},
        {
            "index": 6,
            "ok": False,
            "error": "Error",
            "message": "the batch handler returned no result for this event",
        },
    ]


async def test_on_batch_that_raises_applies_to_the_whole_batch() -> None:
    source = """
        from segue.functions import RetryError
        async def on_batch(events, settings):
            raise RetryError(f"{len(events)} events later")
    """
    result = await run(source, "batch", [{"type": "track"}, {"type": "identify"}])
    assert (result.ok, result.error, result.message) == (False, CallError.RETRY, "2 events later")
    assert result.batch_results is None
    plain = await run("def on_batch(events, s):\n    return len(events)\n", "batch", [{}, {}])
    assert (plain.ok, plain.value, plain.batch_results) == (True, 2, None)


async def test_return_values_become_json() -> None:
    source = """
        import datetime
        class Thing:
            def __str__(self):
                return "a thing"
        def on_track(event, settings):
            return {"when": datetime.datetime(2024, 5, 1, 12, 0), 3: "three"}
        def on_page(event, settings):
            return Thing()
        def on_screen(event, settings):
            return {1, 2}
    """
    runtime = PythonRuntime()
    result = await run(source, "track", runtime=runtime)
    assert result.value == {"when": "2024-05-01T12:00:00", "3": "three"}
    assert (await run(source, "page", runtime=runtime)).value == "a thing"
    assert (await run(source, "screen", runtime=runtime)).value == "{1, 2}"


async def test_a_version_is_loaded_once_and_reloaded_when_its_source_changes() -> None:
    runtime = PythonRuntime()
    source = "print('loading')\ndef on_track(e, s):\n    return 1\n"
    first = await run(source, "track", runtime=runtime)
    again = await run(source, "track", runtime=runtime)
    assert (first.logs, again.logs) == ("loading\n", "")
    changed = await run(source.replace("return 1", "return 2"), "track", runtime=runtime)
    assert changed.value == 2


async def test_fetch_goes_through_the_calls_bridge() -> None:
    seen: list[FetchRequest] = []

    async def bridge(request: FetchRequest) -> FetchReply:
        seen.append(request)
        if "blocked" in request["url"]:
            raise FetchFailed("request to http://blocked/ failed, reason: 10.0.0.1 is private")
        return FetchReply(
            url=request["url"], status=201, headers=[["X-Thing", "1"]], body='{"id": 7}'
        )

    source = """
        from segue.functions import fetch
        from segue.functions.fetching import FetchError
        async def on_track(event, settings):
            res = await fetch("https://api.example/v1", method="post",
                              headers={"Authorization": "Bearer k"}, json=event)
            data = await res.json()
            try:
                await fetch("http://blocked/")
            except FetchError as exc:
                refused = str(exc)
            return [res.status, res.ok, res.headers["x-thing"], data["id"], refused]
    """
    result = await run(source, "track", {"type": "track", "n": 1}, bridge=bridge)
    assert result.value == [
        201,
        True,
        "1",
        7,
        "request to http://blocked/ failed, reason: 10.0.0.1 is private",
    ]
    assert seen[0]["method"] == "POST"
    assert seen[0]["body"] == '{"type":"track","n":1}'
    assert ["Content-Type", "application/json"] in seen[0]["headers"]
    assert fetch_module.current_bridge.get() is None  # reset after the call


async def test_fetch_outside_a_worker_refuses() -> None:
    with pytest.raises(RuntimeError, match="only available inside segue's function workers"):
        await fetch("https://example.com")
    with pytest.raises(FetchError):
        raise FetchError("exported")
