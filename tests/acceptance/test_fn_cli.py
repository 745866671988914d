"""Acceptance: ``segue fn test`` as a partner runs it, the debugger panel in a terminal.

Each test runs the real command in a subprocess (COLUMNS=200 and NO_COLOR=1 keep rich's
panels readable) on a function file written here; the function runs in the real
sandbox and its ``fetch`` goes through the egress guard to a local endpoint.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from tests.support.endpoint import Endpoint, ReceivedRequest, Reply

CLI_TIMEOUT_S = 30.0
ENDPOINT_TEXT = "thanks from the request bin"

SEED_ENDPOINT_LINE = 'const endpoint = "https://REDACTED.x.pipedream.net"'
SEED_EXAMPLES = """\
const endpoint = "https://REDACTED.x.pipedream.net"

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

async function onGroup(event, settings) {
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


def segue_fn_test(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    env.update(COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "segue", "fn", "test", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def panel(output: str, title: str) -> str:
    """The text inside the rich panel titled ``title`` (borders stripped)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"╭─ {title} "))
    body = []
    for line in lines[start + 1 :]:
        if line.startswith("╰"):
            break
        body.append(line.strip().removeprefix("│").removesuffix("│").strip())
    return "\n".join(body)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    def respond(_request: ReceivedRequest) -> Reply:
        return Reply(200, ENDPOINT_TEXT.encode(), (("Content-Type", "text/plain"),))

    with Endpoint(respond) as server:
        yield server


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), "utf-8")
    return path


def seed_file(folder: Path, url: str) -> Path:
    text = SEED_EXAMPLES.replace(SEED_ENDPOINT_LINE, f"const endpoint = {json.dumps(url)}")
    assert text != SEED_EXAMPLES
    return write(folder, "seed.js", text)


def test_the_seed_example_posts_to_a_local_endpoint(tmp_path: Path, endpoint: Endpoint) -> None:
    fn = seed_file(tmp_path, f"{endpoint.url}/bin")
    run = segue_fn_test(fn, "--allow-local", "--settings", '{"apiKey": "segment"}', cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert panel(run.stdout, "Callback Return") == json.dumps(ENDPOINT_TEXT)
    assert panel(run.stdout, "Log Output") == "(nothing logged)"
    assert run.stdout.splitlines()[-1].startswith("Succeeded")
    [request] = endpoint.requests
    assert request.method == "POST"
    event = request.json()
    assert event["type"] == "track"  # the default: a sample track event
    assert urlsplit(request.path).path == "/bin"
    assert parse_qs(urlsplit(request.path).query) == {"ts": [event["timestamp"]]}
    assert request.header("Authentication") == "Basic " + base64.b64encode(b"segment:").decode()


@pytest.mark.parametrize(
    ("type_", "error", "outcome"),
    [
        (
            "group",
            "InvalidEventPayload: company is required",
            "(MESSAGE_REJECTED): would be discarded",
        ),
        (
            "page",
            "ValidationError: Account ID is required",
            "(MESSAGE_REJECTED): would be discarded",
        ),
        ("alias", "EventNotSupported: alias is not supported", "(UNSUPPORTED): would be discarded"),
        (
            "identify",
            "EventNotSupported: no onIdentify handler",
            "(UNSUPPORTED): would be discarded",
        ),
    ],
)
def test_the_seed_examples_errors_are_shown(
    tmp_path: Path, endpoint: Endpoint, type_: str, error: str, outcome: str
) -> None:
    fn = seed_file(tmp_path, f"{endpoint.url}/bin")
    run = segue_fn_test(fn, "--type", type_, "--allow-local", cwd=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert panel(run.stdout, "Callback Return") == error
    assert f"Failed {outcome}" in run.stdout.splitlines()[-1]
    assert endpoint.requests == []


def test_a_python_function_raising_invalid_event_payload(tmp_path: Path) -> None:
    fn = write(
        tmp_path,
        "strict.py",
        """\
        from segue.functions import InvalidEventPayload

        def on_track(event, settings):
            print("checking", event["event"], "for", settings["plan"])
            raise InvalidEventPayload("the order has no total")
        """,
    )
    event = write(
        tmp_path,
        "event.json",
        json.dumps({"type": "track", "event": "Order Completed", "userId": "u1"}),
    )
    run = segue_fn_test(fn, "--event", event, "--settings", '{"plan": "gold"}', cwd=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert panel(run.stdout, "Callback Return") == "InvalidEventPayload: the order has no total"
    assert panel(run.stdout, "Log Output") == "checking Order Completed for gold"
    assert "would be discarded" in run.stdout.splitlines()[-1]


def test_a_python_function_returning_a_value(tmp_path: Path) -> None:
    fn = write(
        tmp_path,
        "echo.py",
        """\
        import logging

        async def on_identify(event, settings):
            logging.getLogger("echo").warning("identify %s", event["type"])
            return {"success": True, "traits": sorted(event["traits"])[:1]}
        """,
    )
    run = segue_fn_test(fn, "--type", "identify", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    returned = json.loads(panel(run.stdout, "Callback Return"))
    assert returned["success"] is True and len(returned["traits"]) == 1
    assert panel(run.stdout, "Log Output") == "WARNING echo: identify identify"


def test_retry_error_and_timeout_would_be_retried(tmp_path: Path) -> None:
    retry = write(
        tmp_path,
        "retry.py",
        """\
        from segue.functions import RetryError

        def on_track(event, settings):
            raise RetryError("rate limited")
        """,
    )
    loop = write(
        tmp_path, "loop.py", "def on_track(event, settings):\n    while True:\n        pass\n"
    )
    retried = segue_fn_test(retry, cwd=tmp_path)
    stopped = segue_fn_test(loop, "--timeout", "0.5", cwd=tmp_path)
    assert retried.returncode == 1, retried.stdout + retried.stderr
    assert panel(retried.stdout, "Callback Return") == "RetryError: rate limited"
    assert "(RETRY): would be retried" in retried.stdout.splitlines()[-1]
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    assert panel(stopped.stdout, "Callback Return") == "Timeout: the function ran longer than 0.5 s"
    assert "(ETIMEDOUT): would be retried" in stopped.stdout.splitlines()[-1]


def test_without_allow_local_the_egress_guard_refuses_127_0_0_1(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    https = write(
        tmp_path,
        "local.py",
        f"""\
        from segue.functions import fetch

        async def on_track(event, settings):
            res = await fetch("https://127.0.0.1:{endpoint.port}/bin", method="POST", json=event)
            return await res.text()
        """,
    )
    run = segue_fn_test(https, cwd=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    shown = " ".join(panel(run.stdout, "Callback Return").split())
    assert shown.startswith("Error: FetchError: request to https://127.0.0.1:"), shown
    assert "127.0.0.1 is a loopback address" in shown
    # the seed's example, plain http to 127.0.0.1: refused as well
    seed = segue_fn_test(seed_file(tmp_path, f"{endpoint.url}/bin"), cwd=tmp_path)
    assert seed.returncode == 1, seed.stdout + seed.stderr
    shown = " ".join(panel(seed.stdout, "Callback Return").split())
    assert "FetchError: request to http://127.0.0.1:" in shown
    assert "plain http is not allowed" in shown
    assert endpoint.requests == []  # nothing got through


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.py"], "cannot read missing.py"),
        (["fn.txt"], "ends in .py or .js"),
        (["fn.py", "--settings", "{not json"], "--settings is not JSON"),
        (["fn.py", "--settings", "[1]"], "--settings must be a JSON object"),
        (["fn.py", "--event", "bad.json"], "bad.json is not JSON"),
        (["fn.py", "--event", "nothing.json"], "cannot read nothing.json"),
        (["fn.py", "--type", "track", "--event", "bad.json"], "not both"),
        (["fn.py", "--type", "purchase"], "Invalid value for '--type'"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    write(tmp_path, "fn.py", "def on_track(event, settings):\n    return 1\n")
    write(tmp_path, "fn.txt", "def on_track(event, settings):\n    return 1\n")
    write(tmp_path, "bad.json", "{not json")
    run = segue_fn_test(*args, cwd=tmp_path)
    assert run.returncode == 2, run.stdout + run.stderr
    assert message in run.stderr, run.stderr
    assert "Callback Return" not in run.stdout


def test_a_list_of_events_calls_on_batch(tmp_path: Path) -> None:
    fn = write(
        tmp_path,
        "batch.py",
        """\
        def on_batch(events, settings):
            print("batch of", len(events))
            return [{"status": 200}, {"status": 503, "errormessage": "try later"}]
        """,
    )
    events = write(
        tmp_path,
        "events.json",
        json.dumps([{"type": "track", "event": "A"}, {"type": "track", "event": "B"}]),
    )
    run = segue_fn_test(fn, "--event", events, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    shown = panel(run.stdout, "Callback Return")
    assert "batch: 1 of 2 events failed" in shown
    assert "event 1: RetryError: try later" in shown
    assert panel(run.stdout, "Log Output") == "batch of 2"
