"""Acceptance: a sensitive setting never shows, whoever printed it.

Functions (Python and JavaScript) that print their settings, return them, throw them in
an error and write them to stderr, and an endpoint that echoes its Authorization header
in a JSON error: after real deliveries and Send Test Events (admin API and UI), the
secret appears in no admin API answer, no Developer Center page, and not in the server's
log, in any of the forms it is commonly written (raw, JSON, base64 as Basic auth carries
it, percent-encoded).
"""

from __future__ import annotations

import base64
import html
import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from tests.support.endpoint import Endpoint, ReceivedRequest, Reply
from tests.support.server import ADMIN_TOKEN, LOOPBACK_CONFIG, WRITE_KEY, SegueProcess

SECRET = "sk_live_Zq8wX3vN5tR2pK7m"
TEST_SECRET = "sk_test_Hy6uJ4bV9cE1xL3s"  # typed into Send Test Event only
WAIT_S = 30.0

PY_SPY = """
import base64, os, sys

def on_track(event, settings):
    print("settings:", settings)
    print("basic:", base64.b64encode((settings["apiKey"] + ":").encode()).decode())
    os.write(2, ("stderr " + settings["apiKey"] + "\\n").encode())
    return {"settings": settings, "key": settings["apiKey"]}

def on_identify(event, settings):
    raise ValueError("cannot use key " + settings["apiKey"])
"""

JS_SPY = """
async function onTrack(event, settings) {
  console.log('settings', JSON.stringify(settings));
  console.log(btoa(settings.apiKey + ':'));
  return { settings, key: settings.apiKey };
}
async function onIdentify(event, settings) {
  throw new Error('cannot use key ' + settings.apiKey);
}
"""

APPS = {"echo": None, "spy-py": ("python", PY_SPY), "spy-js": ("javascript", JS_SPY)}


def forms(secret: str) -> list[str]:
    basic = base64.b64encode(f"{secret}:".encode()).decode()
    return [secret, basic, basic.rstrip("="), base64.b64encode(secret.encode()).decode()[:-2]]


def leaks(text: str) -> list[str]:
    """The forms of either secret found in ``text`` (also after HTML/URL unescaping)."""
    found = []
    for candidate in (text, html.unescape(text)):
        for secret in (SECRET, TEST_SECRET):
            found += [f for f in [*forms(secret), quote(secret)] if f in candidate]
    return found


def echo(request: ReceivedRequest) -> Reply:
    """A partner endpoint that repeats what it was given, credentials and all."""
    auth = request.header("Authorization")
    key = base64.b64decode(auth.split(" ", 1)[1]).decode().rstrip(":")
    body = {"message": f"unknown key {key}", "you_sent": auth}
    headers = (("Content-Type", "application/json"), ("X-Echo", key))
    return Reply(status=400, body=json.dumps(body).encode(), headers=headers)


def _config(endpoint: Endpoint) -> str:
    apps = ""
    for name, function in APPS.items():
        apps += f'\n[[apps]]\nname = "{name}"\n'
        if function is None:
            apps += f'endpoint = "{endpoint.url}/echo"\n'
        else:
            apps += f'runtime = "{function[0]}"\ncode = {json.dumps(function[1])}\n'
        apps += 'settings = [{ label = "API Key", key = "apiKey", sensitive = true }]\n'
        apps += (
            f'\n[[destinations]]\nname = "{name}-d"\napp = "{name}"\nsources = ["test"]\n'
            f'settings = {{ apiKey = "{SECRET}" }}\n'
        )
    return LOOPBACK_CONFIG + apps


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SegueProcess]:
    with Endpoint(echo) as endpoint:
        data = tmp_path_factory.mktemp("secrets") / "data"
        process = SegueProcess(data, config_text=_config(endpoint)).start()
        try:
            yield process
        finally:
            process.stop()


def _settled(server: SegueProcess) -> list[dict[str, Any]]:
    """Every delivery, once each destination has settled its track and identify."""
    deadline = time.monotonic() + WAIT_S
    with server.admin() as admin:
        while True:
            answer = admin.get("/deliveries", params={"limit": 100})
            assert answer.status_code == 200, answer.text
            deliveries = answer.json()["deliveries"]
            done = [d for d in deliveries if d["state"] in ("succeeded", "discarded")]
            if len(done) == 2 * len(APPS):
                return list(deliveries)
            assert time.monotonic() < deadline, deliveries
            time.sleep(0.1)


def _api_answers(server: SegueProcess) -> list[httpx.Response]:
    with server.admin() as admin:
        answers = [
            admin.get("/deliveries", params={"limit": 100}),
            admin.get("/destinations"),
            admin.get("/apps"),
            admin.get("/events", params={"limit": 100}),
        ]
        for delivery in answers[0].json()["deliveries"]:
            answers.append(admin.get(f"/deliveries/{delivery['id']}"))
        for name in APPS:
            answers.append(admin.get(f"/destinations/{name}-d/stats", params={"window": "1h"}))
            for type_ in ("track", "identify"):
                answers.append(admin.post(f"/destinations/{name}-d/test", json={"type": type_}))
                answers.append(
                    admin.post(
                        f"/apps/{name}/test",
                        json={"type": type_, "settings": {"apiKey": TEST_SECRET}},
                    )
                )
    return answers


def _ui_answers(server: SegueProcess) -> list[httpx.Response]:
    with httpx.Client(base_url=server.url, timeout=30.0) as ui:
        assert ui.post("/ui/sign-in", data={"token": ADMIN_TOKEN}).status_code == 303
        answers = []
        for name in APPS:
            answers.append(ui.get(f"/ui/destinations/{name}-d"))
            answers.append(ui.get(f"/ui/destinations/{name}-d/edit"))
            page = ui.get(f"/ui/apps/{name}")
            answers.append(page)
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert csrf, page.text[:500]
            sample = re.search(r'<option value="track" data-sample="([^"]*)"', page.text)
            assert sample
            form = {
                "csrf_token": csrf.group(1),
                "type": "track",
                "event": html.unescape(sample.group(1)),
                "value-apiKey": TEST_SECRET,
            }
            answers.append(ui.post(f"/ui/apps/{name}/test", data={**form, "run": "send"}))
            answers.append(ui.post(f"/ui/apps/{name}/test", data={**form, "run": "suite"}))
    return answers


def test_a_secret_printed_returned_or_echoed_shows_nowhere(server: SegueProcess) -> None:
    with httpx.Client(base_url=server.url, auth=(WRITE_KEY, ""), timeout=10.0) as tracking:
        for type_, extra in (("track", {"event": "Spied"}), ("identify", {})):
            body = {"type": type_, "userId": "u1", **extra}
            assert tracking.post(f"/v1/{type_}", json=body).status_code == 200
    deliveries = _settled(server)

    # the calls really happened, and really saw the secret
    states = {(d["destination"], d["event"]["type"]): d["state"] for d in deliveries}
    assert states[("spy-py-d", "track")] == "succeeded"
    assert states[("spy-js-d", "track")] == "succeeded"
    assert states[("echo-d", "track")] == "discarded"
    assert states[("spy-py-d", "identify")] == "discarded"

    answers = _api_answers(server) + _ui_answers(server)
    for answer in answers:
        assert answer.status_code < 500, (answer.request.url, answer.text[:300])
        assert not leaks(answer.text), (answer.request.url, leaks(answer.text))
    texts = "\n".join(a.text for a in answers)
    assert "••••••" in texts  # masked, not missing
    assert "cannot use key ••••••" in html.unescape(texts)
    assert "unknown key ••••••" in html.unescape(texts)
    log = server.log()
    assert "stderr ••••••" in log or "stderr" not in log
    assert not leaks(log), leaks(log)
