"""The grading of ``segue check``: a check and an answer in, a verdict and a reason out.

Pure functions, no HTTP. The tables below are the rules of docs/partners.md.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson
import pytest

from segue.delivery.webhook import WebhookRequest, authorization_header
from segue.partner.check import (
    LARGE_EVENT_BYTES,
    MALFORMED_AUTHORIZATION,
    Check,
    CheckUsageError,
    Kind,
    Observation,
    Verdict,
    assemble,
    grade,
    grade_coverage,
    grade_https,
    json_message,
    negative_checks,
    parse_settings,
    pick_probe_type,
    type_checks,
    validate_url,
    variant_checks,
)

PASS, WARN, FAIL = Verdict.PASS, Verdict.WARN, Verdict.FAIL
JSON = "application/json"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
URL = "https://partner.example/segment"
SETTINGS = {"apiKey": "segment", "region": "eu"}


def make_check(kind: Kind, type_: str = "track") -> Check:
    return Check(f"{type_}.{kind}", type_, kind, type_, "", WebhookRequest(URL, (), b"{}"))


def answer(status: int, message: str | None = "why", content_type: str = JSON) -> Observation:
    body = b"" if message is None else orjson.dumps({"message": message})
    return Observation(status=status, content_type=content_type, body=body, elapsed_s=0.01)


def verdict_of(
    kind: Kind, type_: str, status: int, *, base: int | None = None, message: str | None = "why"
) -> Verdict:
    observation = answer(status, message)
    return grade(make_check(kind, type_), observation, timeout_s=5, base_status=base).verdict


# -- event types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "status", "expected"),
    [
        ("track", 200, PASS),
        ("track", 202, PASS),
        ("identify", 501, PASS),  # the seed: a type you don't support
        ("alias", 501, PASS),
        ("track", 400, FAIL),  # a valid realistic event is not malformed
        ("track", 401, FAIL),  # the right key was rejected
        ("track", 403, FAIL),
        ("track", 404, FAIL),
        ("track", 405, FAIL),
        ("track", 301, FAIL),
        ("track", 413, FAIL),
        ("track", 500, FAIL),  # unsupported must be 501, not 500
        ("track", 503, FAIL),
        ("track", 418, FAIL),  # not in the table
        ("delete", 200, PASS),
        ("delete", 202, PASS),
        ("delete", 501, FAIL),  # partners are required to support delete
        ("delete", 500, FAIL),
    ],
)
def test_realistic_events(type_: str, status: int, expected: Verdict) -> None:
    assert verdict_of(Kind.EVENT, type_, status) is expected


def test_reasons_say_what_to_do() -> None:
    def reason(kind: Kind, type_: str, status: int, base: int | None = None) -> str:
        return grade(make_check(kind, type_), answer(status), timeout_s=5, base_status=base).reason

    assert reason(Kind.EVENT, "page", 500).startswith(
        "internal error (500): answer 501 for a type you don't support"
    )
    assert "required to support user deletion" in reason(Kind.EVENT, "delete", 501)
    assert "--api-key" in reason(Kind.EVENT, "track", 401)
    assert "redirects are not followed" in reason(Kind.EVENT, "track", 302)
    assert "must accept POST" in reason(Kind.EVENT, "track", 405)
    assert reason(Kind.EVENT, "page", 501) == 'page not supported (501): "why"'
    assert reason(Kind.EVENT, "track", 202) == "accepted, not yet processed (202)"
    assert "accept any casing" in reason(Kind.SNAKE_CASE, "track", 400, 200)


@pytest.mark.parametrize(
    ("kind", "status", "base", "expected"),
    [
        # a supported type must accept every form of it
        (Kind.SNAKE_CASE, 200, 200, PASS),
        (Kind.SNAKE_CASE, 501, 200, FAIL),
        (Kind.SNAKE_CASE, 400, 200, FAIL),
        (Kind.MINIMAL, 202, 200, PASS),
        (Kind.MINIMAL, 501, 202, FAIL),
        (Kind.MINIMAL, 400, 200, WARN),  # "Missing email address" is legitimate
        (Kind.LARGE, 200, 200, PASS),
        (Kind.LARGE, 400, 200, FAIL),
        (Kind.LARGE, 413, 200, FAIL),
        # an unsupported type stays unsupported in every form
        (Kind.SNAKE_CASE, 501, 501, PASS),
        (Kind.MINIMAL, 501, 501, PASS),
        (Kind.LARGE, 501, 501, PASS),
        # the realistic event got no answer: the variant is graded on its own
        (Kind.MINIMAL, 501, None, PASS),
        (Kind.SNAKE_CASE, 500, 500, FAIL),
    ],
)
def test_variants_follow_their_type(
    kind: Kind, status: int, base: int | None, expected: Verdict
) -> None:
    assert verdict_of(kind, "track", status, base=base) is expected


def test_delete_variants_must_be_handled_too() -> None:
    assert verdict_of(Kind.MINIMAL, "delete", 200, base=200) is PASS
    assert verdict_of(Kind.SNAKE_CASE, "delete", 501, base=501) is FAIL


# -- the refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        (Kind.NO_AUTH, 401, PASS),
        (Kind.NO_AUTH, 403, FAIL),  # 403 is a valid key without permission
        (Kind.NO_AUTH, 200, FAIL),
        (Kind.NO_AUTH, 400, FAIL),
        (Kind.NO_AUTH, 500, FAIL),
        (Kind.BAD_AUTH, 401, PASS),
        (Kind.BAD_AUTH, 403, FAIL),
        (Kind.BAD_AUTH, 202, FAIL),
        (Kind.WRONG_KEY, 401, PASS),
        (Kind.WRONG_KEY, 403, PASS),  # either reading of "wrong" is fine
        (Kind.WRONG_KEY, 200, FAIL),
        (Kind.WRONG_KEY, 400, FAIL),
        (Kind.BAD_JSON, 400, PASS),
        (Kind.BAD_JSON, 200, FAIL),
        (Kind.BAD_JSON, 500, FAIL),
        (Kind.BAD_JSON, 501, FAIL),
        (Kind.BAD_JSON, 401, FAIL),  # the key was right
        (Kind.UNKNOWN_TYPE, 501, PASS),
        (Kind.UNKNOWN_TYPE, 400, WARN),
        (Kind.UNKNOWN_TYPE, 200, FAIL),
        (Kind.UNKNOWN_TYPE, 500, FAIL),
    ],
)
def test_refusals(kind: Kind, status: int, expected: Verdict) -> None:
    assert verdict_of(kind, "track", status) is expected


# -- the error body -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "problem"),
    [
        ("application/json", b'{"message": "API token expired"}', None),
        ("application/json; charset=utf-8", b'{"message": "x"}', None),
        ("Application/JSON", b'{"message": "x"}', None),
        ("text/plain", b"API token expired", "Content-Type is text/plain"),
        ("", b'{"message": "x"}', "Content-Type is missing"),
        ("application/json", b"oops", "not valid JSON"),
        ("application/json", b"", "not valid JSON"),
        ("application/json", b'{"error": "x"}', "no `message`"),
        ("application/json", b'["message"]', "no `message`"),
        ("application/json", b'{"message": ""}', "non-empty string"),
        ("application/json", b'{"message": 5}', "non-empty string"),
    ],
)
def test_json_message(content_type: str, body: bytes, problem: str | None) -> None:
    message, found = json_message(content_type, body)
    if problem is None:
        assert found is None and message
    else:
        assert found is not None and problem in found and message is None


def test_an_error_with_the_right_status_but_a_text_body_fails() -> None:
    observation = Observation(401, "text/plain", b"no key")
    result = grade(make_check(Kind.NO_AUTH), observation, timeout_s=5)
    assert result.verdict is FAIL
    assert result.reason.startswith("rejected (401), but Content-Type is text/plain")


def test_a_wrong_status_and_a_text_body_say_both() -> None:
    result = grade(
        make_check(Kind.EVENT, "page"), Observation(500, "text/html", b"<h1>"), timeout_s=5
    )
    assert result.verdict is FAIL
    assert "answer 501" in result.reason and "; also Content-Type is text/html" in result.reason


def test_a_warning_without_a_json_message_fails() -> None:
    assert verdict_of(Kind.MINIMAL, "identify", 400, base=200, message=None) is FAIL
    assert verdict_of(Kind.UNKNOWN_TYPE, "track", 400, message=None) is FAIL


def test_successes_need_no_body() -> None:
    assert grade(make_check(Kind.EVENT), Observation(200), timeout_s=5).verdict is PASS
    assert (
        grade(make_check(Kind.EVENT), Observation(202, "text/plain"), timeout_s=5).verdict is PASS
    )


def test_the_message_is_shown_in_the_reason() -> None:
    result = grade(make_check(Kind.WRONG_KEY), answer(401, "API token expired"), timeout_s=5)
    assert result.reason == 'wrong key rejected (401): "API token expired"'


# -- no answer -------------------------------------------------------------------------------


def test_a_timeout_fails() -> None:
    observation = Observation(error="no response within 0.5 s", timed_out=True, elapsed_s=0.5)
    result = grade(make_check(Kind.EVENT), observation, timeout_s=0.5)
    assert result.verdict is FAIL
    assert result.reason.startswith("no response within 0.5 s")


def test_a_reset_connection_fails() -> None:
    observation = Observation(error="ServerDisconnectedError: Server disconnected")
    result = grade(make_check(Kind.BAD_JSON), observation, timeout_s=5)
    assert result.verdict is FAIL
    assert result.reason == "no HTTP response: ServerDisconnectedError: Server disconnected"


# -- coverage and HTTPS -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ({"track": 200, "identify": 501}, PASS),
        ({"identify": 202}, PASS),
        ({"screen": 200}, PASS),
        ({"track": 501, "identify": 501, "page": 501, "screen": 501, "group": 501}, FAIL),
        ({"alias": 200, "delete": 200, "track": 501}, FAIL),  # alias alone is no destination
        ({"track": 500, "identify": None}, FAIL),
        ({}, FAIL),
    ],
)
def test_coverage(base: dict[str, int | None], expected: Verdict) -> None:
    assert grade_coverage(base).verdict is expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://partner.example/segment", PASS),
        ("http://127.0.0.1:9000/", PASS),
        ("http://localhost:9000/", PASS),
        ("http://[::1]:9000/", PASS),
        ("http://partner.example/segment", WARN),
        ("http://10.0.0.5/", WARN),
    ],
)
def test_https(url: str, expected: Verdict) -> None:
    assert grade_https(url).verdict is expected


# -- the suite and its inputs -----------------------------------------------------------------


def test_the_suite_sends_every_type_in_every_form() -> None:
    first = type_checks(URL, SETTINGS, now=NOW)
    second = variant_checks(URL, SETTINGS, now=NOW)
    assert [c.event_type for c in first] == [
        "identify",
        "track",
        "page",
        "screen",
        "group",
        "alias",
        "delete",
    ]
    assert {c.kind for c in second} == {Kind.SNAKE_CASE, Kind.MINIMAL, Kind.LARGE}
    assert len(second) == 7 * 2 + 1
    for check in first + second:
        body = orjson.loads(check.request.body)
        assert body["type"] == check.event_type
        headers = dict(check.request.headers)
        assert headers["Authorization"] == "Basic c2VnbWVudDo="
        assert base64.b64decode(headers["X-Segment-Settings"]) == b'{"region":"eu"}'
        assert headers["Content-Length"] == str(len(check.request.body))
        if check.kind is Kind.SNAKE_CASE:
            assert "user_id" in body and "userId" not in body
        if check.kind is Kind.MINIMAL:
            assert not {"traits", "properties", "anonymousId"} & set(body)
            assert body["userId"] and body["messageId"]
        if check.kind is Kind.LARGE:
            assert 29 * 1024 < len(check.request.body) <= LARGE_EVENT_BYTES


def test_negative_checks_differ_in_one_thing_only() -> None:
    checks = {c.id: c for c in negative_checks(URL, SETTINGS, probe_type="identify", now=NOW)}
    assert set(checks) == {
        "auth.missing",
        "auth.malformed",
        "auth.wrong_key",
        "body.malformed_json",
        "type.unknown",
    }

    def header(check_id: str, name: str) -> str | None:
        return dict(checks[check_id].request.headers).get(name)

    assert header("auth.missing", "Authorization") is None
    assert header("auth.malformed", "Authorization") == MALFORMED_AUTHORIZATION
    assert header("auth.wrong_key", "Authorization") == authorization_header("segment-wrong")
    assert header("body.malformed_json", "Authorization") == authorization_header("segment")
    bad = checks["body.malformed_json"].request
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(bad.body)
    assert header("body.malformed_json", "Content-Length") == str(len(bad.body))
    assert orjson.loads(checks["auth.missing"].request.body)["type"] == "identify"
    assert orjson.loads(checks["type.unknown"].request.body)["type"] == "x-segue-check"
    for check in checks.values():  # never the key in clear
        assert "segment" not in check.summary


@pytest.mark.parametrize(
    ("base", "probe"),
    [
        ({"track": 200, "identify": 200}, "track"),
        ({"track": 501, "identify": 202}, "identify"),
        ({"track": 501, "identify": 501, "alias": 200}, "alias"),
        ({"track": 501, "delete": 200}, "track"),
        ({}, "track"),
    ],
)
def test_the_probe_type_is_one_the_endpoint_accepts(base: dict[str, int], probe: str) -> None:
    assert pick_probe_type(base) == probe


def test_assemble_orders_rows_and_grades_variants_against_their_type() -> None:
    checks = type_checks(URL, SETTINGS, now=NOW) + variant_checks(URL, SETTINGS, now=NOW)
    checks += negative_checks(URL, SETTINGS, probe_type="track", now=NOW)

    def status(check: Check) -> int:
        if check.event_type == "page":
            return 501 if check.kind is Kind.EVENT else 200  # odd, but not wrong
        if check.event_type == "group":
            return 200 if check.kind is Kind.EVENT else 501  # a supported type, half handled
        return {
            Kind.NO_AUTH: 401,
            Kind.BAD_AUTH: 401,
            Kind.WRONG_KEY: 403,
            Kind.BAD_JSON: 400,
            Kind.UNKNOWN_TYPE: 501,
        }.get(check.kind, 200)

    report = assemble(URL, [(c, answer(status(c))) for c in checks], timeout_s=5)

    ids = [r.id for r in report.results]
    assert ids[:5] == ["https", "identify", "identify.snake_case", "identify.minimal", "track"]
    assert ids[5:8] == ["track.snake_case", "track.minimal", "track.large"]
    assert ids[-1] == "coverage"
    assert report.failed_ids() == {"group.snake_case", "group.minimal"}
    assert report.result("page.minimal").verdict is PASS
    assert not report.passed
    data = report.as_json()
    assert data["counts"] == {"pass": 27, "warn": 0, "fail": 2}
    assert data["checks"][0]["id"] == "https"


def test_validate_url() -> None:
    assert validate_url("http://127.0.0.1:9000/x") == "http://127.0.0.1:9000/x"
    for bad in ("ftp://x/", "127.0.0.1:9000", "", "http://"):
        with pytest.raises(CheckUsageError):
            validate_url(bad)


def test_parse_settings() -> None:
    assert parse_settings(None) == {}
    assert parse_settings("  ") == {}
    assert parse_settings('{"region": "eu"}') == {"region": "eu"}
    with pytest.raises(CheckUsageError, match="not valid JSON"):
        parse_settings("{region: eu}")
    with pytest.raises(CheckUsageError, match="JSON object"):
        parse_settings('"eu"')
