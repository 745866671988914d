"""The admin API against its own OpenAPI document, fuzzed with schemathesis (issue 10).

Every operation of ``/api/v1/openapi.json`` gets schema-valid and schema-invalid
requests, in-process (ASGI) against a fresh SQLite store that holds a few sources, an
app, destinations, events and their deliveries. The checks: no 5xx, only documented
statuses and content types, answers that match their schemas, invalid data refused
(4xx with a ``message``) and valid data accepted.

Nothing leaves the process: every webhook that Send Test Event, its suite or the
delivery worker sends goes to ``AlwaysOK``, a transport that answers 200 at once, so
no endpoint the fuzzer invents is ever called. A function app the fuzzer creates runs
in segue's own sandbox, as in production.

The document states in words (and with custom ``format`` names) a few rules that a
schema cannot: names that must exist, setting keys that the app defines, ``until``
after ``since``, two settings with one key. Valid cases are made to follow those rules
before they are sent (``follow_stated_rules``); invalid cases are sent as generated.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.specs.openapi.formats import unregister_string_format
from tests.support.transport import AlwaysOK

from segue.app import Segue
from segue.config import EgressConfig, ServerConfig
from segue.delivery.endpoint import EndpointError, normalized_endpoint
from segue.delivery.replay import ReplayError, parse_time
from segue.destinations.settings import SettingsError, key_from_label
from segue.devcenter.openapi import openapi_document

TOKEN = "fuzz-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "http://testserver/api/v1"
SOURCES = ("fuzz-web", "fuzz-backend")
APP = "fuzz-hook"
DESTINATIONS = ("fuzz-hook-prod", "fuzz-inline")
MAX_EXAMPLES = int(os.environ.get("SEGUE_FUZZ_EXAMPLES", "25"))  # more for a deeper run
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    unsupported_method,
]
FORMATS = ("source-name", "app-name", "destination-name", "server-file", "segue-endpoint")
SENT: list[str] = []
# what a `function` field names: a file segue can read (written when the server starts)
FUNCTION_FILE = Path(tempfile.gettempdir()) / f"segue_fuzz_function_{os.getpid()}.py"


class Restartable:
    """segue as one ASGI app across restarts on the same data directory.

    Schemathesis' pytest plugin ends every ASGI lifespan when a test item ends (one item
    per operation); each new lifespan builds a new ``Segue`` over the same store, like a
    restarted server, so what earlier operations stored is still there.
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.current: Segue | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            self.current = Segue.build(self.config, transport=AlwaysOK())
        assert self.current is not None, "segue has not started"
        await self.current(scope, receive, send)


def _register_formats(function_file: Path) -> None:
    hosts = st.sampled_from(["hooks.example", "127.0.0.1:9", "xn--bcher-kva.example"])
    paths = st.from_regex(r"[a-z0-9/_-]{0,16}", fullmatch=True)
    strategies: dict[str, st.SearchStrategy[str]] = {
        "source-name": st.sampled_from(SOURCES),
        "app-name": st.just(APP),
        "destination-name": st.sampled_from(DESTINATIONS),
        "server-file": st.just(str(function_file)),
        "segue-endpoint": st.builds(lambda h, p: f"https://{h}/{p}", hosts, paths),
    }
    for name, strategy in strategies.items():
        schemathesis.openapi.format(name, strategy)


def _seed(client: asgi.ASGIClient) -> None:
    """Sources, an app, two destinations, events (so deliveries exist) and a replay."""
    if True:
        base = BASE
        for name in SOURCES:
            created = client.post(f"{base}/sources", json={"name": name}, headers=AUTH)
            assert created.status_code == 201, created.text
        key = created.json()["write_key"]
        bodies = [
            ("apps", {"name": APP, "endpoint": "https://hooks.example/in"}),
            ("destinations", {"name": DESTINATIONS[0], "app": APP, "sources": list(SOURCES)}),
            (
                "destinations",
                {
                    "name": DESTINATIONS[1],
                    "endpoint": "https://in.example/",
                    "sources": list(SOURCES),
                },
            ),
        ]
        for kind, body in bodies:
            answer = client.post(f"{base}/{kind}", json=body, headers=AUTH)
            assert answer.status_code == 201, answer.text
        for n in range(3):
            event = {"userId": f"u{n}", "event": "Signed Up"}
            assert client.post("http://testserver/v1/track", json=event, auth=(key, "")).ok
        replay = {"source": SOURCES[1], "destination": DESTINATIONS[0]}
        assert client.post(f"{base}/replays", json=replay, headers=AUTH).status_code == 202


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[asgi.ASGIClient]:
    """A segue on a fresh SQLite store, started, seeded, behind an in-process client."""
    data = tmp_path_factory.mktemp("openapi-fuzz")
    FUNCTION_FILE.write_text("def on_track(event, settings):\n    return None\n", "utf-8")
    _register_formats(FUNCTION_FILE)
    config = ServerConfig(
        data_dir=data / "data",
        admin_token=TOKEN,
        egress=EgressConfig(allow=("127.0.0.0/8",), allow_http=True),
    )
    app = Restartable(config)
    started = time.monotonic()
    try:
        with asgi.get_client(app) as http:
            _seed(http)
            yield http
    finally:
        asgi.shutdown_lifespans()
        for name in FORMATS:
            unregister_string_format(name)
        FUNCTION_FILE.unlink(missing_ok=True)
        took = time.monotonic() - started
        print(f"\nschemathesis: {len(SENT)} requests in {took:.1f} s")


# The document as the server builds it (no app needed to read it); calls go in-process.
schema = schemathesis.openapi.from_dict(
    copy.deepcopy(openapi_document())
)  # the server keeps its own
# Every call carries the admin token (401s have their own tests): no generated or
# removed Authorization header that the token sent below would silently undo.
schema.config.generation.update(with_security_parameters=False)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_admin_api_agrees_with_its_openapi_document(case: Any, client: asgi.ASGIClient) -> None:
    if case.meta is not None and case.meta.generation.mode.is_positive:
        follow_stated_rules(case, client)
    SENT.append(f"{case.method} {case.formatted_path}")
    case.call_and_validate(base_url=BASE, session=client, headers=AUTH, checks=CHECKS)


# -- the rules the document states in words ------------------------------------------


def follow_stated_rules(case: Any, client: asgi.ASGIClient) -> None:
    """Make a valid case follow the rules the schemas give in words only."""
    body = case.body if isinstance(case.body, dict) else None
    if body is None:
        return
    _name_what_exists(body)
    if isinstance(body.get("settings"), list):
        body["settings"] = _one_field_per_key(body["settings"])
    if case.path == "/replays" and case.method == "POST":
        _until_after_since(body)
    fields = _app_fields(case, client)
    if fields is not None and isinstance(body.get("settings"), dict):
        body["settings"] = _only_the_apps_settings(body["settings"], fields)


def _usable_endpoint(url: object) -> bool:
    try:
        normalized_endpoint(str(url))
    except EndpointError:
        return False
    return True


def _name_what_exists(body: dict[str, Any]) -> None:
    """Fields with a custom format (coverage cases fill them from the pattern alone)."""
    rules: dict[str, tuple[Callable[[object], bool], object]] = {
        "source": (SOURCES.__contains__, SOURCES[0]),
        "destination": (DESTINATIONS.__contains__, DESTINATIONS[0]),
        "app": (lambda v: v is None or v == APP, APP),
        "function": (lambda v: v == str(FUNCTION_FILE), str(FUNCTION_FILE)),
        "endpoint": (lambda v: v is None or _usable_endpoint(v), "https://hooks.example/in"),
    }
    for key, (holds, replacement) in rules.items():
        if key in body and not holds(body[key]):
            body[key] = replacement
    if isinstance(body.get("sources"), list):
        body["sources"] = [s if s in SOURCES else SOURCES[0] for s in body["sources"]]


def _one_field_per_key(fields: list[Any]) -> list[Any]:
    seen: set[str] = set()
    kept = []
    for field in fields:
        try:
            key = field.get("key") or key_from_label(field["label"])
        except SettingsError:
            continue
        if key not in seen:
            seen.add(key)
            kept.append(field)
    return kept


def _until_after_since(body: dict[str, Any]) -> None:
    try:
        since, until = (
            parse_time(body.get("since"), "since"),
            parse_time(body.get("until"), "until"),
        )
    except ReplayError:
        return
    if since is not None and since >= (int(time.time() * 1000) if until is None else until):
        body.pop("since")  # it defaults to the start of time (0)
    if until is not None and until <= 0:
        body.pop("until")  # it defaults to now


def _app_fields(case: Any, client: asgi.ASGIClient) -> dict[str, bool] | None:
    """The setting keys (→ required) of the app whose settings the case sends, if any."""
    name = case.path_parameters.get("name") if case.path_parameters else None
    if case.path.startswith("/apps/{name}/test"):
        return _fields_of(client, f"/apps/{name}")
    if case.path.startswith("/destinations/{name}/test"):
        destination = _get(client, f"/destinations/{name}")
        if destination is None or destination["app"] is None:
            return None
        return {f["key"]: f["required"] for f in destination["fields"]}
    if case.path.startswith("/destinations") and isinstance(case.body.get("app"), str):
        return _fields_of(client, f"/apps/{case.body['app']}")
    if case.path == "/destinations/{name}" and "app" not in case.body:
        destination = _get(client, f"/destinations/{name}")
        if destination is not None and destination["app"] is not None:
            return {f["key"]: f["required"] for f in destination["fields"]}
    return None


def _fields_of(client: asgi.ASGIClient, path: str) -> dict[str, bool] | None:
    app = _get(client, path)
    return None if app is None else {f["key"]: f["required"] for f in app["settings"]}


def _get(client: asgi.ASGIClient, path: str) -> dict[str, Any] | None:
    answer = client.get(f"{BASE}{path}", headers=AUTH)
    return dict(answer.json()) if answer.status_code == 200 else None


def _only_the_apps_settings(values: dict[str, Any], fields: dict[str, bool]) -> dict[str, Any]:
    kept = {k: v for k, v in values.items() if k in fields}
    for key, required in fields.items():
        if required and kept.get(key) in (None, ""):
            kept[key] = "x"
    return kept
