"""segue.partner: the SDK that makes a destination endpoint follow the seeds' contract.

Every test drives the SDK the way a server would (raw ASGI messages, a hand-built WSGI
environ, Starlette mounting through httpx), so what is checked is what goes on the wire.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from segue.delivery.webhook import authorization_header, build_request, settings_header
from segue.partner import (
    SEGMENT_TYPES,
    Accepted,
    AuthorizationError,
    Context,
    Destination,
    Forbidden,
    InvalidEventPayload,
    SettingsError,
    Unauthorized,
    Unavailable,
    ValidationError,
    decode_authorization,
    decode_settings,
)
from segue.spec.casing import snake_case_keys

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "partner_endpoint.py"
KEY = "segment"
AUTH = authorization_header(KEY)  # what segue sends: "Basic c2VnbWVudDo="
EVENT: dict[str, Any] = {
    "type": "identify",
    "userId": "5678",
    "anonymousId": "1234",
    "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
    "context": {"ip": "8.8.8.8", "userAgent": "Mozilla/5.0", "page": {"urlPath": "/a"}},
    "traits": {"name": "John Doe", "email": "john.doe@email.com", "firstName": "John"},
    "version": "1.1",
}


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


# -- a server, by hand ----------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def message(self) -> str:
        text = self.json()["message"]
        assert isinstance(text, str)
        return text


async def call(
    app: Destination,
    body: bytes | dict[str, Any] | None = None,
    *,
    method: str = "POST",
    headers: Iterable[tuple[str, str]] | None = None,
    chunks: int = 1,
) -> Answer:
    """One HTTP request through the raw ASGI interface, as uvicorn would make it."""
    payload = (
        json.dumps(EVENT if body is None else body).encode()
        if not isinstance(body, bytes)
        else body
    )
    sent_headers = [("authorization", AUTH), ("content-type", "application/json")]
    if headers is not None:
        sent_headers = list(headers)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in sent_headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    size = max(1, -(-len(payload) // chunks))
    parts = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    messages = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    start, *bodies = sent
    assert start["type"] == "http.response.start"
    assert all(m["type"] == "http.response.body" for m in bodies)
    answer_body = b"".join(m.get("body", b"") for m in bodies)
    names = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    assert int(names["content-length"]) == len(answer_body)
    return Answer(start["status"], names, answer_body)


def assert_json_error(answer: Answer, status: int, message: str | None = None) -> str:
    """The seeds' error shape: the status, Content-Type application/json, a ``message``."""
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert answer.message
    if message is not None:
        assert answer.message == message
    return answer.message


def with_handler(handler: Callable[..., Any], type: str = "identify", **kwargs: Any) -> Destination:
    dest = Destination(**kwargs)
    dest.on(type)(handler)
    return dest


# -- decode_authorization --------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Basic c2VnbWVudDo=", "segment"),  # the seeds' example
        (authorization_header("sk-live-1f2e"), "sk-live-1f2e"),  # what segue sends
        ("basic c2VnbWVudDo=", "segment"),  # the scheme is case-insensitive
        ("  Basic   c2VnbWVudDo=  ", "segment"),
        ("Basic c2VnbWVudDo", "segment"),  # missing padding is tolerated
        ("Basic " + b64("segment:ignored-password"), "segment"),
        ("Basic " + b64("kéy✓:"), "kéy✓"),
    ],
)
def test_decode_authorization(header: str, key: str) -> None:
    assert decode_authorization(header) == key


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        (None, "missing"),
        ("", "missing"),
        ("   ", "missing"),
        ("Bearer c2VnbWVudDo=", "Basic scheme"),
        ("c2VnbWVudDo=", "Basic scheme"),  # no scheme at all
        ("Basic", "no credentials"),
        ("Basic    ", "no credentials"),
        ("Basic !!!!", "not valid base64"),
        ("Basic c2VnbW*udDo=", "not valid base64"),
        ("Basic a", "not valid base64"),  # a length no padding can fix
        ("Basic " + b64(b"\xff\xfe:"), "not UTF-8"),
        ("Basic " + b64("segment"), "no colon"),
        ("Basic " + b64(":"), "empty API key"),
        ("Basic " + b64(":password"), "empty API key"),
    ],
)
def test_decode_authorization_rejects(header: str | None, complaint: str) -> None:
    with pytest.raises(AuthorizationError, match=complaint):
        decode_authorization(header)


# -- decode_settings -------------------------------------------------------------------


def test_decode_settings_of_the_seed_example() -> None:
    header = "eyJjdXN0b21TZXR0aW5nT25lIjoiY3VzdG9tIHNldHRpbmcgdmFsdWUifQ=="
    assert decode_settings(header) == {"customSettingOne": "custom setting value"}


def test_decode_settings_reads_what_segue_sends() -> None:
    settings = {"apiKey": "k", "region": "eu", "nested": {"a": [1, 2]}, "on": True}
    assert decode_settings(settings_header(settings)) == {
        "region": "eu",
        "nested": {"a": [1, 2]},
        "on": True,
    }


@pytest.mark.parametrize("header", [None, "", "  "])
def test_absent_settings_are_empty(header: str | None) -> None:
    assert decode_settings(header) == {}


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        ("***", "not valid base64"),
        ("eyJ$", "not valid base64"),
        (b64("not json"), "not base64-encoded JSON"),
        (b64("{'single': 'quotes'}"), "not base64-encoded JSON"),
        (b64(b"\xff\xfe"), "not base64-encoded JSON"),
        (b64("[1, 2]"), "JSON object"),
        (b64('"text"'), "JSON object"),
        (b64("null"), "JSON object"),
        (b64("42"), "JSON object"),
    ],
)
def test_decode_settings_rejects(header: str, complaint: str) -> None:
    with pytest.raises(SettingsError, match=complaint):
        decode_settings(header)


# -- the event: any casing -------------------------------------------------------------


def _casings() -> list[dict[str, Any]]:
    pascal = {
        "Type": "identify",
        "UserId": "5678",
        "Context": {"UserAgent": "Mozilla/5.0", "Page": {"UrlPath": "/a"}},
        "Traits": {"Email": "john.doe@email.com", "FirstName": "John"},
    }
    return [EVENT, snake_case_keys(EVENT), pascal]


@pytest.mark.parametrize("body", _casings(), ids=["camelCase", "snake_case", "PascalCase"])
async def test_event_keys_in_any_casing(body: dict[str, Any]) -> None:
    seen: dict[str, Any] = {}

    def identify(event: Any, context: Context) -> None:
        seen["top"] = {event["userId"], event["user_id"], event["UserId"], event.get("USERID")}
        seen["nested"] = {
            event["context"]["userAgent"],
            event["Context"]["user_agent"],
            event.get("context", {}).get("UserAgent"),
        }
        seen["deep"] = event["context"]["page"]["url_path"]
        seen["traits"] = (event["traits"]["firstName"], event["TRAITS"]["first_name"])
        seen["present"] = "userId" in event and "user_id" in event and "nope" not in event

    answer = await call(with_handler(identify), body)
    assert answer.status == 200, answer.body
    assert seen == {
        "top": {"5678"},
        "nested": {"Mozilla/5.0"},
        "deep": "/a",
        "traits": ("John", "John"),
        "present": True,
    }


async def test_nested_changes_stick_and_can_be_returned() -> None:
    def identify(event: Any, context: Context) -> Any:
        event["traits"]["avatar"] = "https://img.example/1.png"
        event["context"]["page"]["title"] = "Home"
        assert event["Traits"] is event["traits"]  # one object, whatever the casing
        return {"traits": event["traits"], "page": event["context"]["page"]}

    answer = await call(with_handler(identify))
    assert answer.json() == {
        "traits": {**EVENT["traits"], "avatar": "https://img.example/1.png"},
        "page": {"urlPath": "/a", "title": "Home"},
    }


async def test_type_value_is_matched_in_any_casing() -> None:
    answer = await call(with_handler(lambda e, c: {"type": c.type}), {**EVENT, "type": "Identify"})
    assert (answer.status, answer.json()) == (200, {"type": "identify"})


# -- the context -------------------------------------------------------------------------


async def test_context_has_key_settings_and_headers() -> None:
    seen: list[Context] = []
    request = build_request("http://p.example/", EVENT, {"apiKey": "k-1", "region": "eu"})
    dest = with_handler(lambda e, c: seen.append(c))
    answer = await call(dest, request.body, headers=request.headers)
    assert answer.status == 200
    (context,) = seen
    assert context.type == "identify"
    assert context.api_key == "k-1"
    assert context.settings == {"region": "eu"}
    assert context.headers["user-agent"] == "Segment.io/1.0"
    assert context.headers["User-Agent"] == "Segment.io/1.0"
    assert context.headers["X-SEGMENT-SETTINGS"] == settings_header({"region": "eu"})


async def test_settings_are_empty_without_the_header() -> None:
    seen: list[Context] = []
    answer = await call(with_handler(lambda e, c: seen.append(c)))
    assert answer.status == 200
    assert seen[0].settings == {}


# -- outcomes → the status table ----------------------------------------------------------


def _raises(exc: BaseException) -> Callable[..., Any]:
    def handler(*args: Any) -> None:  # a handler, or a key check
        raise exc

    return handler


@pytest.mark.parametrize(
    ("handler", "status", "body"),
    [
        (lambda e, c: None, 200, {}),
        (lambda e, c: {"id": 7, "ok": True}, 200, {"id": 7, "ok": True}),
        (lambda e, c: [1, "two"], 200, [1, "two"]),
        (lambda e, c: "done", 200, "done"),
        (lambda e, c: e, 200, EVENT),  # the event itself serialises as what arrived
        (lambda e, c: Accepted(), 202, {}),
        (lambda e, c: Accepted, 202, {}),
        (lambda e, c: Accepted({"queued": 3}), 202, {"queued": 3}),
        (_raises(InvalidEventPayload("Missing email address")), 400, None),
        (_raises(ValidationError("plan must be a string")), 400, None),
        (_raises(InvalidEventPayload()), 400, None),
        (_raises(Unauthorized("API token expired")), 401, None),
        (_raises(Forbidden("key lacks write access")), 403, None),
        (_raises(Unavailable("down for maintenance")), 503, None),
    ],
)
async def test_outcome_statuses(handler: Callable[..., Any], status: int, body: Any) -> None:
    answer = await call(with_handler(handler))
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/json"
    if body is not None:
        assert answer.json() == body
    else:
        assert set(answer.json()) == {"message"}


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (InvalidEventPayload("Missing email address"), "Missing email address"),
        (ValidationError("plan must be a string"), "plan must be a string"),
        (InvalidEventPayload(), "invalid event payload"),
        (Unauthorized("API token expired"), "API token expired"),
        (Unauthorized(), "invalid API key"),
        (Forbidden(), "permission denied"),
        (Unavailable(), "temporarily unavailable"),
    ],
)
async def test_error_messages(exc: Exception, message: str) -> None:
    answer = await call(with_handler(_raises(exc)))
    assert_json_error(answer, answer.status, message)


@pytest.mark.parametrize(("seconds", "header"), [(30, "30"), (1.5, "2"), (0, "0")])
async def test_unavailable_sends_retry_after(seconds: float, header: str) -> None:
    answer = await call(with_handler(_raises(Unavailable("maintenance", retry_after=seconds))))
    assert_json_error(answer, 503, "maintenance")
    assert answer.headers["retry-after"] == header


async def test_unavailable_without_retry_after_has_no_header() -> None:
    answer = await call(with_handler(_raises(Unavailable("maintenance"))))
    assert answer.status == 503
    assert "retry-after" not in answer.headers


@pytest.mark.parametrize("seconds", [-1, float("nan")])
def test_retry_after_must_be_a_delay(seconds: float) -> None:
    with pytest.raises(ValueError, match="retry_after"):
        Unavailable("x", retry_after=seconds)


async def test_unhandled_type_is_501() -> None:
    dest = with_handler(lambda e, c: None, "track")
    for type in ("identify", "page", "delete", "somethingNew"):
        answer = await call(dest, {**EVENT, "type": type})
        assert_json_error(answer, 501, f"type {type.lower()} is not supported")


async def test_unexpected_exception_is_a_safe_500(caplog: pytest.LogCaptureFixture) -> None:
    def identify(event: Any, context: Context) -> None:
        raise RuntimeError("password=hunter2 at db.internal:5432")

    with caplog.at_level(logging.ERROR, logger="segue.partner"):
        answer = await call(with_handler(identify))
    assert_json_error(answer, 500, "internal error")
    for leaked in (b"hunter2", b"RuntimeError", b"Traceback", b"db.internal"):
        assert leaked not in answer.body
    (record,) = caplog.records
    assert "identify handler failed" in record.getMessage()
    assert record.exc_info is not None
    assert "hunter2" in str(record.exc_info[1])  # the partner sees it in their logs


async def test_unserialisable_return_is_a_safe_500(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="segue.partner"):
        answer = await call(with_handler(lambda e, c: {"when": object()}))
    assert_json_error(answer, 500, "internal error")
    assert "not JSON" in caplog.records[0].getMessage()


# -- sync and async handlers --------------------------------------------------------------


async def test_async_handler_runs_on_the_event_loop() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    async def identify(event: Any, context: Context) -> dict[str, str]:
        await asyncio.sleep(0)
        seen.append(threading.get_ident())
        return {"user": event["user_id"]}

    answer = await call(with_handler(identify))
    assert (answer.status, answer.json()) == (200, {"user": "5678"})
    assert seen == [loop_thread]


async def test_sync_handler_runs_in_a_worker_thread() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def identify(event: Any, context: Context) -> dict[str, str]:
        seen.append(threading.get_ident())
        return {"user": event["UserId"]}

    answer = await call(with_handler(identify))
    assert (answer.status, answer.json()) == (200, {"user": "5678"})
    assert seen and seen[0] != loop_thread


async def test_async_handler_outcomes() -> None:
    async def identify(event: Any, context: Context) -> Any:
        await asyncio.sleep(0)
        if event["traits"].get("email") is None:
            raise InvalidEventPayload("Missing email address")
        return Accepted()

    dest = with_handler(identify)
    assert (await call(dest)).status == 202
    no_email = {**EVENT, "traits": {"name": "x"}}
    assert_json_error(await call(dest, no_email), 400, "Missing email address")


async def test_all_decorators_register_their_type() -> None:
    dest = Destination()
    for type in SEGMENT_TYPES:
        decorator = getattr(dest, type)

        def handler(event: Any, context: Context, type: str = type) -> dict[str, str]:
            return {"handled": type}

        assert decorator(handler) is handler  # the function stays usable
    assert dest.supported_types == SEGMENT_TYPES
    for type in SEGMENT_TYPES:
        answer = await call(dest, {"type": type, "userId": "u"})
        assert answer.json() == {"handled": type}


def test_registering_an_unknown_or_repeated_type_fails() -> None:
    dest = Destination()
    with pytest.raises(ValueError, match="unknown call type"):
        dest.on("trak")
    dest.on("Track")(lambda e, c: None)
    assert dest.supported_types == ("track",)
    with pytest.raises(ValueError, match="already registered"):
        dest.track(lambda e, c: None)


# -- the API key check ----------------------------------------------------------------------


async def test_key_check_gets_the_decoded_key() -> None:
    keys: list[str] = []

    def check(key: str) -> bool:
        keys.append(key)
        return key == KEY

    dest = with_handler(lambda e, c: None, api_key_check=check)
    assert (await call(dest)).status == 200
    wrong = [("authorization", authorization_header("wrong")), ("content-type", "application/json")]
    assert_json_error(await call(dest, headers=wrong), 401, "invalid API key")
    assert keys == [KEY, "wrong"]


async def test_async_key_check() -> None:
    async def check(key: str) -> bool:
        await asyncio.sleep(0)
        return key == KEY

    dest = with_handler(lambda e, c: None, api_key_check=check)
    assert (await call(dest)).status == 200
    wrong = [("authorization", authorization_header("nope"))]
    assert (await call(dest, headers=wrong)).status == 401


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (Unauthorized("API token expired"), 401, "API token expired"),
        (Forbidden("read-only key"), 403, "read-only key"),
        (Unavailable("auth service down", retry_after=5), 503, "auth service down"),
        (RuntimeError("ldap://secret"), 500, "internal error"),
    ],
)
async def test_key_check_may_raise(exc: Exception, status: int, message: str) -> None:
    called: list[bool] = []
    dest = with_handler(lambda e, c: called.append(True), api_key_check=_raises(exc))
    assert_json_error(await call(dest), status, message)
    assert called == []  # the handler never runs for a rejected key


async def test_rejected_key_is_checked_before_the_body() -> None:
    dest = with_handler(lambda e, c: None, api_key_check=lambda key: False)
    assert_json_error(await call(dest, b"{not json"), 401, "invalid API key")


# -- request validation ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"])
async def test_only_post_is_allowed(method: str) -> None:
    answer = await call(with_handler(lambda e, c: None), method=method)
    assert_json_error(answer, 405)
    assert method in answer.message
    assert answer.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"", "not valid JSON"),
        (b"{not json", "not valid JSON"),
        (b'{"type": "identify",}', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'"identify"', "JSON object"),
        (b"null", "JSON object"),
        (b"{}", "event has no type"),
        (b'{"userId": "u"}', "event has no type"),
        (b'{"type": null}', "event has no type"),
        (b'{"type": 7}', "non-empty string"),
        (b'{"type": ""}', "non-empty string"),
        (b'{"type": ["track"]}', "non-empty string"),
    ],
)
async def test_bad_bodies_are_400(body: bytes, complaint: str) -> None:
    answer = await call(with_handler(lambda e, c: None), body)
    assert complaint in assert_json_error(answer, 400)


async def test_too_large_body_is_400_without_reading_it_all() -> None:
    dest = with_handler(lambda e, c: None, max_body_bytes=1000)
    big = {**EVENT, "properties": {"blob": "x" * 5000}}
    answer = await call(dest, big, chunks=50)
    assert "larger than 1000 bytes" in assert_json_error(answer, 400)
    assert (await call(dest, EVENT, chunks=3)).status == 200  # chunked but small is fine


@pytest.mark.parametrize(
    ("authorization", "complaint"),
    [
        (None, "missing Authorization"),
        ("Bearer c2VnbWVudDo=", "Basic scheme"),
        ("Basic", "no credentials"),
        ("Basic %%%", "not valid base64"),
        ("Basic " + b64("segment"), "no colon"),
        ("Basic " + b64(":"), "empty API key"),
    ],
)
async def test_bad_authorization_is_401(authorization: str | None, complaint: str) -> None:
    called: list[bool] = []
    headers = [("content-type", "application/json")]
    if authorization is not None:
        headers.append(("authorization", authorization))
    answer = await call(with_handler(lambda e, c: called.append(True)), headers=headers)
    assert complaint in assert_json_error(answer, 401)
    assert called == []


@pytest.mark.parametrize(
    "settings", ["%%%", b64("not json"), b64("[1]"), b64('"x"')], ids=["b64", "json", "list", "str"]
)
async def test_bad_settings_header_is_400(settings: str) -> None:
    headers = [("authorization", AUTH), ("x-segment-settings", settings)]
    answer = await call(with_handler(lambda e, c: None), headers=headers)
    assert "X-Segment-Settings" in assert_json_error(answer, 400)


# -- ASGI plumbing --------------------------------------------------------------------------


async def test_lifespan_completes_startup_and_shutdown() -> None:
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    await asyncio.wait_for(Destination()({"type": "lifespan"}, receive, send), 5)
    assert sent == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]


async def test_websocket_is_refused() -> None:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    await Destination()({"type": "websocket", "headers": []}, receive, send)
    assert [m["type"] for m in sent] == ["websocket.close"]


async def test_client_disconnect_before_the_body_sends_nothing() -> None:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": [], "path": "/"}
    await with_handler(lambda e, c: None)(scope, receive, send)
    assert sent == []


async def test_mounted_in_starlette() -> None:
    dest = with_handler(lambda e, c: {"user": e["user_id"], "key": c.api_key})
    app = Starlette(routes=[Mount("/segment", app=dest)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://partner") as client:
        response = await client.post(
            "/segment/v1", json=EVENT, headers={"Authorization": AUTH, "X-Segment-Settings": ""}
        )
        assert (response.status_code, response.json()) == (200, {"user": "5678", "key": KEY})
        response = await client.get("/segment/v1")
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"


# -- WSGI ------------------------------------------------------------------------------------


def wsgi_call(
    dest: Destination,
    body: bytes,
    *,
    method: str = "POST",
    extra: dict[str, Any] | None = None,
    length: bool = True,
) -> tuple[str, dict[str, str], bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": "/segment",
        "QUERY_STRING": "",
        "SERVER_NAME": "partner.example",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",
        "HTTP_AUTHORIZATION": AUTH,
        "HTTP_USER_AGENT": "Segment.io/1.0",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        **(extra or {}),
    }
    if length:
        environ["CONTENT_LENGTH"] = str(len(body))
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append((status, headers))
        return lambda data: None

    chunks = dest.wsgi()(environ, start_response)
    ((status, headers),) = started
    answer = b"".join(chunks)
    names = {k.lower(): v for k, v in headers}
    assert names["content-type"] == "application/json"
    assert int(names["content-length"]) == len(answer)
    return status, names, answer


def test_wsgi_sync_handler_on_the_calling_thread() -> None:
    seen: list[Any] = []

    def identify(event: Any, context: Context) -> dict[str, Any]:
        seen.append((threading.get_ident(), context.api_key, context.headers["User-Agent"]))
        return {"user": event["UserId"], "settings": context.settings}

    settings = settings_header({"region": "eu"})
    status, _, body = wsgi_call(
        with_handler(identify),
        json.dumps(snake_case_keys(EVENT)).encode(),
        extra={"HTTP_X_SEGMENT_SETTINGS": settings},
    )
    assert status == "200 OK"
    assert json.loads(body) == {"user": "5678", "settings": {"region": "eu"}}
    assert seen == [(threading.get_ident(), KEY, "Segment.io/1.0")]


def test_wsgi_async_handler_and_async_key_check() -> None:
    async def check(key: str) -> bool:
        await asyncio.sleep(0)
        return key == KEY

    async def identify(event: Any, context: Context) -> Any:
        await asyncio.sleep(0.001)
        raise Unavailable("maintenance", retry_after=10)

    dest = with_handler(identify, api_key_check=check)
    status, headers, body = wsgi_call(dest, json.dumps(EVENT).encode())
    assert status == "503 Service Unavailable"
    assert headers["retry-after"] == "10"
    assert json.loads(body) == {"message": "maintenance"}
    bad = {"HTTP_AUTHORIZATION": authorization_header("wrong")}
    status, _, body = wsgi_call(dest, json.dumps(EVENT).encode(), extra=bad)
    assert (status, json.loads(body)) == ("401 Unauthorized", {"message": "invalid API key"})


@pytest.mark.parametrize(
    ("kwargs", "status", "complaint"),
    [
        ({"method": "GET"}, "405 Method Not Allowed", "use POST"),
        ({"extra": {"HTTP_AUTHORIZATION": "Basic"}}, "401 Unauthorized", "no credentials"),
        ({"extra": {"HTTP_X_SEGMENT_SETTINGS": "%"}}, "400 Bad Request", "X-Segment-Settings"),
        ({"length": False}, "400 Bad Request", "not valid JSON"),  # no length: nothing read
        ({"length": False, "extra": {"CONTENT_LENGTH": "x"}}, "400 Bad Request", "not valid JSON"),
    ],
)
def test_wsgi_errors(kwargs: dict[str, Any], status: str, complaint: str) -> None:
    got, headers, body = wsgi_call(
        with_handler(lambda e, c: None), json.dumps(EVENT).encode(), **kwargs
    )
    assert got == status
    assert complaint in json.loads(body)["message"]
    if status.startswith("405"):
        assert headers["allow"] == "POST"


def test_wsgi_unsupported_type_and_crash() -> None:
    dest = with_handler(_raises(KeyError("secret")), "identify")
    status, _, body = wsgi_call(dest, json.dumps(EVENT).encode())
    assert (status, json.loads(body)) == (
        "500 Internal Server Error",
        {"message": "internal error"},
    )
    status, _, body = wsgi_call(dest, json.dumps({**EVENT, "type": "page"}).encode())
    assert status == "501 Not Implemented"
    assert json.loads(body) == {"message": "type page is not supported"}


def test_wsgi_reads_a_terminated_stream_without_length() -> None:
    status, _, _ = wsgi_call(
        with_handler(lambda e, c: None),
        json.dumps(EVENT).encode(),
        length=False,
        extra={"wsgi.input_terminated": True},
    )
    assert status == "200 OK"


def test_wsgi_through_httpx() -> None:
    dest = with_handler(lambda e, c: Accepted({"user": e["userId"]}))
    with httpx.Client(
        transport=httpx.WSGITransport(app=dest.wsgi()), base_url="http://p"
    ) as client:
        response = client.post("/", json=EVENT, headers={"Authorization": AUTH})
    assert (response.status_code, response.json()) == (202, {"user": "5678"})
    assert response.headers["content-type"] == "application/json"


# -- the example: a tiny CRM -------------------------------------------------------------------


@pytest.fixture
def crm(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """examples/partner_endpoint.py, freshly loaded (its API key from the environment)."""
    monkeypatch.setenv("CRM_API_KEY", "crm-key")
    spec = importlib.util.spec_from_file_location("partner_endpoint_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_example_crm(crm: ModuleType) -> None:
    dest: Destination = crm.dest
    auth = [("authorization", authorization_header("crm-key"))]
    assert dest.supported_types == ("identify", "track", "delete")

    answer = await call(dest, EVENT, headers=auth)
    assert (answer.status, answer.json()) == (200, {"contact": "5678"})
    assert crm.contacts["5678"]["email"] == "john.doe@email.com"
    for body in ({"type": "track", "userId": "5678"}, {"type": "track", "user_id": "5678"}):
        assert (await call(dest, body, headers=auth)).status == 200
    assert crm.tracks["5678"] == 2

    no_email = {"type": "identify", "userId": "9", "traits": {"name": "x"}}
    assert_json_error(await call(dest, no_email, headers=auth), 400, "Missing email address")
    nobody = {"type": "track", "event": "x"}
    assert_json_error(await call(dest, nobody, headers=auth), 400)
    assert_json_error(await call(dest, {"type": "page", "userId": "5678"}, headers=auth), 501)
    assert_json_error(await call(dest, EVENT), 401, "invalid API key")  # "segment" is not it

    deleted = await call(dest, {"type": "delete", "userId": "5678"}, headers=auth)
    assert deleted.status == 200
    assert "5678" not in crm.contacts
    assert "5678" not in crm.tracks
