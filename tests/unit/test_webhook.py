"""The partner contract's request and response handling, with a fake transport."""

from __future__ import annotations

import asyncio
import base64
import json

import orjson
import pytest

from segue.delivery.policy import AttemptOutcome, FailureKind
from segue.delivery.transport import FakeTransport, TransportError
from segue.delivery.webhook import (
    MASK,
    MAX_RECORDED_BODY,
    AttemptRecord,
    WebhookRequest,
    WebhookResponse,
    authorization_header,
    build_request,
    error_message,
    masked_headers,
    send_webhook,
    settings_header,
)

URL = "https://hooks.example.com/segment"
EVENT = {
    "type": "identify",
    "userId": "5678",
    "anonymousId": "1234",
    "traits": {"firstName": "John", "email": "john.doe@email.com"},
    "context": {"ip": "8.8.8.8", "userAgent": "Mozilla/5.0"},
    "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
}
EXPECTED_HEADER_NAMES = [
    "Accept",
    "Authorization",
    "Cache-Control",
    "Connection",
    "Content-Length",
    "Content-Type",
    "User-Agent",
    "X-Segment-Settings",
]


def response(
    status: int, body: bytes = b"", content_type: str | None = None, **headers: str
) -> WebhookResponse:
    pairs = [(k.replace("_", "-"), v) for k, v in headers.items()]
    if content_type is not None:
        pairs.insert(0, ("Content-Type", content_type))
    return WebhookResponse(status=status, headers=tuple(pairs), body=body)


# -- the request -------------------------------------------------------------------
def test_authorization_is_basic_with_the_api_key_and_an_empty_password() -> None:
    assert authorization_header("segment") == "Basic c2VnbWVudDo="  # the seeds' example
    assert base64.b64decode(authorization_header("k:ey")[6:]) == b"k:ey:"
    assert authorization_header("") == "Basic " + base64.b64encode(b":").decode()


def test_settings_header_is_base64_json_of_everything_but_the_api_key() -> None:
    settings = {"apiKey": "secret", "customSetting": "custom setting value", "n": 3}
    decoded = json.loads(base64.b64decode(settings_header(settings)))
    assert decoded == {"customSetting": "custom setting value", "n": 3}
    assert json.loads(base64.b64decode(settings_header({"apiKey": "x"}))) == {}
    assert "secret" not in base64.b64decode(settings_header(settings)).decode()


def test_build_request_sends_exactly_the_partner_headers_in_order() -> None:
    body = orjson.dumps(EVENT)
    request = build_request(URL, body, {"apiKey": "segment", "region": "eu"})
    assert request.url == URL
    assert request.body == body  # the stored event bytes, untouched
    assert [name for name, _ in request.headers] == EXPECTED_HEADER_NAMES
    headers = dict(request.headers)
    assert headers["Accept"] == "*/*"
    assert headers["Authorization"] == "Basic c2VnbWVudDo="
    assert headers["Cache-Control"] == "no-cache"
    assert headers["Connection"] == "Keep-Alive"
    assert headers["Content-Length"] == str(len(body))
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "Segment.io/1.0"
    assert json.loads(base64.b64decode(headers["X-Segment-Settings"])) == {"region": "eu"}


def test_content_length_counts_bytes_not_characters() -> None:
    request = build_request(URL, {"type": "track", "event": "Café ☕"}, {"apiKey": "k"})
    assert dict(request.headers)["Content-Length"] == str(len(request.body))
    assert len(request.body) > len(request.body.decode())


def test_a_missing_api_key_still_sends_the_colon() -> None:
    request = build_request(URL, b"{}", {})
    assert base64.b64decode(dict(request.headers)["Authorization"][6:]) == b":"


def test_a_dict_event_is_encoded_as_json() -> None:
    request = build_request(URL, EVENT, {"apiKey": "k"})
    assert orjson.loads(request.body) == EVENT


def test_snake_case_option_rewrites_every_key_at_every_depth() -> None:
    event = {**EVENT, "properties": {"productList": [{"productId": "p1", "unitPrice": 2}]}}
    request = build_request(URL, orjson.dumps(event), {"apiKey": "k"}, snake_case=True)
    sent = orjson.loads(request.body)
    assert sent["user_id"] == "5678" and sent["anonymous_id"] == "1234"
    assert sent["message_id"] == EVENT["messageId"]
    assert sent["traits"] == {"first_name": "John", "email": "john.doe@email.com"}
    assert sent["context"]["user_agent"] == "Mozilla/5.0"
    assert sent["properties"] == {"product_list": [{"product_id": "p1", "unit_price": 2}]}
    assert dict(request.headers)["Content-Length"] == str(len(request.body))
    # values are never rewritten
    assert sent["traits"]["first_name"] == "John"


def test_without_snake_case_the_clients_casing_is_kept() -> None:
    request = build_request(URL, orjson.dumps(EVENT), {"apiKey": "k"})
    assert b'"userId"' in request.body and b'"firstName"' in request.body


# -- the response ----------------------------------------------------------------------
def test_json_error_message_is_read_only_from_json_responses() -> None:
    body = b'{"message": "Missing email address"}'
    assert error_message(response(400, body, "application/json")) == "Missing email address"
    assert (
        error_message(
            response(401, b'{"message":"API token expired"}', "application/json; charset=utf-8")
        )
        == "API token expired"
    )
    assert error_message(response(400, body, "Application/JSON")) == "Missing email address"
    assert error_message(response(400, body, "text/plain")) is None
    assert error_message(response(400, body)) is None  # no Content-Type at all


def test_error_message_ignores_success_and_broken_bodies() -> None:
    body = b'{"message": "ok"}'
    assert error_message(response(200, body, "application/json")) is None
    assert error_message(response(500, b"{not json", "application/json")) is None
    assert error_message(response(500, b'["message"]', "application/json")) is None
    assert error_message(response(500, b'{"error": "x"}', "application/json")) is None
    assert error_message(response(500, b'{"message": 42}', "application/json")) == "42"


def test_masked_headers_never_show_the_credentials() -> None:
    request = build_request(URL, b"{}", {"apiKey": "segment", "token": "t0p", "region": "eu"})
    shown = masked_headers(request.headers, frozenset({"apiKey", "token"}))
    assert shown["Authorization"] == f"Basic {MASK}"
    settings = json.loads(base64.b64decode(shown["X-Segment-Settings"]))
    assert settings == {"token": MASK, "region": "eu"}
    assert shown["User-Agent"] == "Segment.io/1.0"
    plain = masked_headers(request.headers)
    assert plain["Authorization"] == f"Basic {MASK}"  # always masked, even with no secrets
    assert json.loads(base64.b64decode(plain["X-Segment-Settings"]))["token"] == "t0p"


# -- one attempt -----------------------------------------------------------------------
async def test_send_webhook_records_request_response_and_outcome() -> None:
    answer = response(400, b'{"message":"Missing email address"}', "application/json")

    async def responder(request: WebhookRequest) -> WebhookResponse:
        return answer

    transport = FakeTransport(responder)
    request = build_request(URL, orjson.dumps(EVENT), {"apiKey": "segment"})
    record = await send_webhook(transport, request, timeout_s=5)
    assert transport.requests == [request]
    assert record.response == answer
    assert record.outcome.status == 400
    assert record.outcome.message == "Missing email address"
    assert record.outcome.failure is None
    assert record.error is None
    assert record.duration_ms >= 0


async def test_send_webhook_reads_retry_after() -> None:
    async def responder(request: WebhookRequest) -> WebhookResponse:
        return response(429, Retry_After="2")

    record = await send_webhook(
        FakeTransport(responder), build_request(URL, b"{}", {}), timeout_s=5
    )
    assert record.outcome.status == 429
    assert record.outcome.retry_after_s == 2.0


async def test_send_webhook_turns_a_timeout_into_an_outcome() -> None:
    never = asyncio.Event()

    async def responder(request: WebhookRequest) -> WebhookResponse:
        await never.wait()
        raise AssertionError("unreachable")

    record = await send_webhook(
        FakeTransport(responder), build_request(URL, b"{}", {}), timeout_s=0.05
    )
    assert record.response is None
    assert record.outcome.failure is FailureKind.TIMEOUT
    assert record.outcome.reason == "ETIMEDOUT"
    assert record.error is not None and "0.05" in record.error


async def test_send_webhook_never_raises_on_transport_errors() -> None:
    async def responder(request: WebhookRequest) -> WebhookResponse:
        raise TransportError(FailureKind.CONNECTION_REFUSED, "connection refused")

    record = await send_webhook(
        FakeTransport(responder), build_request(URL, b"{}", {}), timeout_s=1
    )
    assert record.outcome.reason == "ECONNREFUSED"
    assert record.error == "connection refused"
    assert record.outcome.message == "connection refused"


def test_attempt_record_json_masks_secrets_and_caps_bodies() -> None:
    request = build_request(URL, b'{"type":"track"}', {"apiKey": "sk_live_1", "pw": "hunter2"})
    big = b"x" * (MAX_RECORDED_BODY + 100)
    answer = response(503, big, "text/plain")
    record = AttemptRecord(request, answer, outcome=_outcome(503), duration_ms=12.3456, error=None)
    doc = record.as_json(frozenset({"apiKey", "pw"}))
    assert doc["request"]["method"] == "POST"
    assert doc["request"]["url"] == URL
    assert doc["request"]["body"] == '{"type":"track"}'
    assert doc["request"]["headers"]["Authorization"] == f"Basic {MASK}"
    encoded = json.dumps(doc)
    assert "sk_live_1" not in encoded
    assert "hunter2" not in encoded
    assert base64.b64encode(b"sk_live_1:").decode() not in encoded
    assert json.loads(base64.b64decode(doc["request"]["headers"]["X-Segment-Settings"])) == {
        "pw": MASK
    }
    assert doc["response"]["status"] == 503
    assert len(doc["response"]["body"]) == MAX_RECORDED_BODY + 1
    assert doc["response"]["body"].endswith("…")
    assert doc["status"] == 503 and doc["reason"] == "503"
    assert doc["duration_ms"] == 12.35


def test_attempt_record_json_without_a_response() -> None:
    request = build_request(URL, b"{}", {"apiKey": "k"})
    record = AttemptRecord(
        request,
        None,
        outcome=_outcome(None, FailureKind.TIMEOUT),
        duration_ms=5000.0,
        error="no response within 5 s",
    )
    doc = record.as_json()
    assert doc["response"] is None
    assert doc["reason"] == "ETIMEDOUT"
    assert doc["error"] == "no response within 5 s"
    assert doc["status"] is None


def _outcome(status: int | None, failure: FailureKind | None = None) -> AttemptOutcome:
    return AttemptOutcome(status=status, failure=failure)


@pytest.mark.parametrize("body", [b"\xff\xfe binary", "ünïcödé".encode()])
def test_recorded_bodies_are_text_even_when_not_utf8(body: bytes) -> None:
    record = AttemptRecord(
        build_request(URL, b"{}", {}), response(500, body), _outcome(500), duration_ms=1.0
    )
    assert isinstance(record.as_json()["response"]["body"], str)
