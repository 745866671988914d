"""``segue check`` against real endpoints on 127.0.0.1.

A correct endpoint, written here in plain aiohttp straight from the seeds, passes every
check; the same endpoint with one deliberate flaw fails exactly the checks about that
flaw, and nothing else. The SDK's example endpoint passes too. The command line is run
through click's CliRunner for its exit codes (0 pass, 1 fail, 2 usage/unreachable) and
its ``--json``.

Endpoints run in their own thread with their own event loop, so the same server works
for async tests (``await run_checks``) and for sync ones (the CLI runs ``asyncio.run``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from aiohttp import web
from click.testing import CliRunner
from tests.support.endpoint import Endpoint, Reply

from segue.delivery.webhook import authorization_header, build_request
from segue.partner.check import (
    CORE_TYPES,
    Report,
    UnreachableError,
    Verdict,
    run_checks,
)
from segue.partner.cli import check as check_command
from segue.spec.samples import SAMPLE_TYPES

API_KEY = "segment"
ALL_TYPES = frozenset(SAMPLE_TYPES)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "partner_endpoint.py"

NEGATIVE_IDS = {"auth.missing", "auth.malformed", "auth.wrong_key", "body.malformed_json"}


def rows_of(*types: str) -> set[str]:
    """The check ids of the realistic event and every variant of ``types``."""
    ids: set[str] = set()
    for type_ in types:
        ids |= {type_, f"{type_}.snake_case", f"{type_}.minimal"}
        if type_ == "track":
            ids.add("track.large")
    return ids


# -- a partner endpoint from the seeds, with switchable flaws ----------------------------


@dataclass
class Partner:
    """The seeds' contract in plain aiohttp; every field but the first is a flaw or a knob."""

    api_key: str = API_KEY
    supported: frozenset[str] = ALL_TYPES
    unsupported_status: int = 501  # the flaw: 500
    error_content_type: str = "application/json"  # the flaw: text/plain
    delays: dict[str, float] = field(default_factory=dict)  # type → seconds before answering
    exact_keys: bool = False  # the flaw: only camelCase `userId` is understood
    seen_settings: list[dict[str, Any]] = field(default_factory=list)

    def error(self, status: int, message: str) -> web.Response:
        if self.error_content_type == "application/json":
            return web.json_response({"message": message}, status=status)
        return web.Response(status=status, text=message, content_type=self.error_content_type)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return self.error(405, "use POST")
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if not scheme:
            return self.error(401, "missing Authorization header")
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return self.error(401, "Authorization is not base64")
        key, colon, _ = decoded.partition(":")
        if scheme != "Basic" or not colon or not key:
            return self.error(401, "Authorization must be Basic base64('<apiKey>:')")
        if key != self.api_key:
            return self.error(401, "invalid API key")
        try:
            settings = json.loads(base64.b64decode(request.headers.get("X-Segment-Settings", "")))
        except ValueError:
            return self.error(400, "X-Segment-Settings is not base64 JSON")
        self.seen_settings.append(settings)
        try:
            event = json.loads(await request.read())
        except ValueError:
            return self.error(400, "body is not valid JSON")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return self.error(400, "body must be a JSON object with a type")
        type_ = event["type"].lower()
        if type_ in self.delays:
            await asyncio.sleep(self.delays[type_])
        if type_ not in self.supported:
            return self.error(self.unsupported_status, f"type {type_} is not supported")
        user = event.get("userId") or event.get("anonymousId")
        if not self.exact_keys:  # the seeds: "be ready to accept any casing"
            folded = {k.replace("_", "").lower(): v for k, v in event.items()}
            user = folded.get("userid") or folded.get("anonymousid")
        if not user:
            return self.error(400, "Missing userId or anonymousId")
        return web.json_response({"ok": True})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


async def everything_200(_request: web.Request) -> web.StreamResponse:
    """Flaw (a): answers 200 whatever it gets."""
    return web.json_response({"ok": True})


def everything_200_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", everything_200)
    return app


@contextmanager
def serving(make_app: Callable[[], web.Application]) -> Iterator[str]:
    """Run an aiohttp app on 127.0.0.1 in a thread with its own loop; yield its URL."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(make_app(), access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["runner"] = runner
        box["port"] = runner.addresses[0][1]

    async def stop() -> None:
        await box["runner"].cleanup()
        # handlers still sleeping (the slow endpoint) end here, not with the loop
        rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="check-endpoint", daemon=True)
    thread.start()
    assert started.wait(10), "the test endpoint did not start"
    try:
        yield f"http://127.0.0.1:{box['port']}/segment"
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@contextmanager
def serving_asgi(app: Any) -> Iterator[str]:
    """Run an ASGI app with uvicorn on 127.0.0.1 in a thread; yield its URL."""
    import time

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def check_partner(partner: Partner, **kwargs: Any) -> Report:
    with serving(partner.app) as url:
        return await run_checks(url, API_KEY, **kwargs)


def explain(report: Report) -> str:
    return "\n".join(
        f"{r.id}: {r.verdict} {r.status} {r.reason}"
        for r in report.results
        if r.verdict is not Verdict.PASS
    )


# -- the correct endpoint passes everything -----------------------------------------------


async def test_correct_endpoint_passes_every_check() -> None:
    partner = Partner()
    report = await check_partner(partner, settings={"region": "eu"})

    assert report.passed, explain(report)
    assert report.count(Verdict.WARN) == 0, explain(report)
    ids = [result.id for result in report.results]
    for type_ in SAMPLE_TYPES:  # every type, each in three forms
        assert {type_, f"{type_}.snake_case", f"{type_}.minimal"} <= set(ids)
    assert {"track.large", "type.unknown", "coverage", "https", *NEGATIVE_IDS} <= set(ids)
    assert len(ids) == len(set(ids)) == 7 * 3 + 1 + 4 + 1 + 2
    assert ids[0] == "https" and ids[-1] == "coverage"
    assert report.result("auth.missing").status == 401
    assert report.result("auth.wrong_key").message == "invalid API key"
    assert report.result("body.malformed_json").status == 400
    assert report.result("type.unknown").status == 501
    size_kb = float(report.result("track.large").request.split(", ")[-1].removesuffix(" KB"))
    assert 29 <= size_kb < 32  # ~30 KB, under Segment's 32 KB limit
    # X-Segment-Settings carried the custom settings (never the API key)
    assert partner.seen_settings
    assert all(settings == {"region": "eu"} for settings in partner.seen_settings)


async def test_a_partial_endpoint_that_answers_501_passes() -> None:
    """The seed lets a destination not support a type: 501 is a pass, delete is not optional."""
    report = await check_partner(Partner(supported=frozenset({"identify", "track", "delete"})))

    assert report.passed, explain(report)
    for type_ in ("page", "screen", "group", "alias"):
        assert report.result(type_).status == 501
        assert report.result(type_).reason.startswith(f"{type_} not supported (501)")
    assert report.result("coverage").reason == "handles identify, track"


async def test_the_requests_are_exactly_what_segue_delivers() -> None:
    """Every well-formed request has, byte for byte, the headers the delivery engine's
    build_request gives for its body; the negative ones differ only where they must."""
    settings = {"region": "eu"}
    with Endpoint(lambda _r: Reply.json(200, {})) as sink:
        await run_checks(sink.url, API_KEY, settings)
        received = sink.requests
    full = {**settings, "apiKey": API_KEY}
    good_auth = authorization_header(API_KEY)
    kinds: Counter[str] = Counter()
    for request in received:
        assert request.method == "POST"
        sent = tuple(
            (k.decode(), v.decode()) for k, v in request.raw_headers if k.lower() != b"host"
        )
        expected = build_request(sink.url, request.body, full).headers
        auth = dict(sent).get("Authorization")
        if auth is None:
            kinds["no auth"] += 1
            assert sent == tuple(h for h in expected if h[0] != "Authorization")
        elif auth != good_auth:
            kinds["other auth"] += 1
            assert [h for h in sent if h[0] != "Authorization"] == [
                h for h in expected if h[0] != "Authorization"
            ]
        else:
            kinds["exact"] += 1
            assert sent == expected
    assert kinds == {"exact": 7 * 3 + 1 + 2, "no auth": 1, "other auth": 2}


# -- each flaw fails exactly its checks ---------------------------------------------------


async def test_a_200_for_everything_endpoint_fails_the_refusal_checks() -> None:
    with serving(everything_200_app) as url:
        report = await run_checks(url, API_KEY)

    assert report.failed_ids() == {*NEGATIVE_IDS, "type.unknown"}, explain(report)
    assert "without an Authorization header was accepted" in report.result("auth.missing").reason
    assert "wrong API key was accepted" in report.result("auth.wrong_key").reason
    assert "not JSON was accepted" in report.result("body.malformed_json").reason
    assert "unknown type was accepted" in report.result("type.unknown").reason


async def test_500_on_unsupported_types_fails_the_501_checks() -> None:
    partner = Partner(supported=frozenset({"identify", "track", "delete"}), unsupported_status=500)
    report = await check_partner(partner)

    assert report.failed_ids() == {
        *rows_of("page", "screen", "group", "alias"),
        "type.unknown",
    }, explain(report)
    assert "answer 501 for a type you don't support" in report.result("page").reason
    assert report.result("type.unknown").reason.startswith("internal error (500)")


async def test_text_plain_errors_fail_the_json_message_checks() -> None:
    partner = Partner(
        supported=frozenset({"identify", "track", "delete"}), error_content_type="text/plain"
    )
    report = await check_partner(partner)

    expected = {*NEGATIVE_IDS, "type.unknown", *rows_of("page", "screen", "group", "alias")}
    assert report.failed_ids() == expected, explain(report)
    for check_id in expected:
        reason = report.result(check_id).reason
        assert "Content-Type is text/plain, not application/json" in reason, reason
    assert report.result("auth.missing").status == 401  # the status was right, the body not


async def test_an_endpoint_that_ignores_delete_fails_the_delete_checks() -> None:
    partner = Partner(supported=ALL_TYPES - {"delete"})
    report = await check_partner(partner)

    assert report.failed_ids() == rows_of("delete"), explain(report)
    assert "required to support user deletion" in report.result("delete").reason


async def test_a_slow_type_fails_its_checks_on_the_timeout() -> None:
    partner = Partner(delays={"page": 1.0})
    report = await check_partner(partner, timeout_s=0.5)

    assert report.failed_ids() == rows_of("page"), explain(report)
    assert report.result("page").reason.startswith("no response within 0.5 s")
    assert report.result("page").status is None
    assert report.result("track").elapsed_ms is not None
    assert report.result("track").elapsed_ms < 500


async def test_an_endpoint_that_supports_nothing_fails_coverage() -> None:
    report = await check_partner(Partner(supported=frozenset({"delete"})))

    assert report.failed_ids() == {"coverage"}, explain(report)
    assert ", ".join(CORE_TYPES) in report.result("coverage").reason


async def test_an_endpoint_that_only_knows_camel_case_fails_the_snake_case_checks() -> None:
    report = await check_partner(Partner(exact_keys=True))

    assert report.failed_ids() == {f"{t}.snake_case" for t in SAMPLE_TYPES}, explain(report)
    assert "accept any casing" in report.result("identify.snake_case").reason


async def test_an_unreachable_url_is_an_error_not_a_report() -> None:
    with pytest.raises(UnreachableError, match="cannot connect"):
        await run_checks(f"http://127.0.0.1:{free_port()}/", API_KEY, timeout_s=2)


# -- the SDK's example endpoint ---------------------------------------------------------


def load_example() -> Any:
    if not EXAMPLE.exists():
        pytest.skip("examples/partner_endpoint.py does not exist yet (the SDK's example)")
    import importlib.util

    spec = importlib.util.spec_from_file_location("partner_endpoint_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        pytest.skip(f"examples/partner_endpoint.py does not import yet: {exc}")
    return module


async def test_the_sdk_example_endpoint_passes() -> None:
    example = load_example()
    with serving_asgi(example.dest) as url:
        report = await run_checks(url, example.API_KEY)

    assert report.passed, explain(report)
    # The tiny CRM needs an email to create a contact, so a minimal identify (no traits)
    # gets the seed's own "Missing email address" 400: legitimate, shown as a warning.
    warned = {r.id for r in report.results if r.verdict is Verdict.WARN}
    assert warned <= {"identify.minimal"}, explain(report)
    if warned:
        assert report.result("identify.minimal").message == "Missing email address"
    assert report.result("type.unknown").status == 501
    assert report.result("delete").status == 200


# -- the command line ----------------------------------------------------------------------


def invoke(*args: str) -> Any:
    return CliRunner().invoke(check_command, list(args), catch_exceptions=False)


def test_cli_exit_0_when_every_check_passes() -> None:
    with serving(Partner().app) as url:
        result = invoke(url, "--api-key", API_KEY, "--settings", '{"region": "eu"}')

    assert result.exit_code == 0, result.output
    assert "all 29 checks passed" in result.stdout
    assert "auth.missing" not in result.stdout  # rows by name …
    assert "no Authorization" in result.stdout


def test_cli_exit_1_and_json_on_failure() -> None:
    with serving(everything_200_app) as url:
        result = invoke(url, "--api-key", API_KEY, "--json")

    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["passed"] is False
    assert data["counts"] == {"pass": 24, "warn": 0, "fail": 5}
    failed = {c["id"] for c in data["checks"] if c["verdict"] == "fail"}
    assert failed == {*NEGATIVE_IDS, "type.unknown"}
    row = next(c for c in data["checks"] if c["id"] == "track")
    assert set(row) == {
        "id",
        "name",
        "request",
        "status",
        "elapsed_ms",
        "verdict",
        "reason",
        "message",
    }
    assert row["status"] == 200 and row["verdict"] == "pass"
    assert API_KEY not in result.stdout.replace("/segment", "")  # the key is never printed


def test_cli_table_on_failure_says_how_many_failed() -> None:
    partner = Partner(supported=ALL_TYPES - {"delete"})
    with serving(partner.app) as url:
        result = invoke(url, "--api-key", API_KEY)

    assert result.exit_code == 1
    assert "3 of 29 checks failed" in result.stdout


def test_cli_timeout_option() -> None:
    with serving(Partner(delays={"page": 1.0}).app) as url:
        result = invoke(url, "--api-key", API_KEY, "--timeout", "0.5", "--json")

    assert result.exit_code == 1
    failed = {c["id"] for c in json.loads(result.stdout)["checks"] if c["verdict"] == "fail"}
    assert failed == rows_of("page")


def test_cli_exit_2_when_unreachable() -> None:
    result = invoke(f"http://127.0.0.1:{free_port()}/", "--api-key", API_KEY)

    assert result.exit_code == 2
    assert "cannot connect to http://127.0.0.1:" in result.stderr


def test_cli_unreachable_with_json_prints_an_error_object() -> None:
    result = invoke(f"http://127.0.0.1:{free_port()}/", "--api-key", API_KEY, "--json")

    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["passed"] is False and "cannot connect" in data["error"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["http://127.0.0.1:1/"], "Missing option '--api-key'"),
        (["ftp://example.com/", "--api-key", "k"], "http:// or https:// URL"),
        (["not a url", "--api-key", "k"], "http:// or https:// URL"),
        (["http://127.0.0.1:1/", "--api-key", "k", "--settings", "{nope"], "not valid JSON"),
        (["http://127.0.0.1:1/", "--api-key", "k", "--settings", "[1]"], "JSON object"),
        (["http://127.0.0.1:1/", "--api-key", "k", "--timeout", "0"], "--timeout"),
    ],
)
def test_cli_usage_errors_exit_2(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(check_command, args)

    assert result.exit_code == 2, result.output
    assert expected in result.stderr


def test_the_command_registers_on_a_group() -> None:
    """segue's own group adds it with one line: ``main.add_command(check)``."""

    @click.group()
    def main() -> None: ...

    main.add_command(check_command)
    result = CliRunner().invoke(main, ["check", "--help"])

    assert result.exit_code == 0
    assert "--api-key" in result.output and "--json" in result.output
