"""``segue check``: grade a partner's endpoint against the seeds' contract.

The seeds ("Building a Subscription / Direct Destination") say what an endpoint that
accepts Segment data must do: take a POST of the event JSON with Basic auth and
``X-Segment-Settings``, accept any key casing, answer with a status from their table
(200/202 accepted, 400 malformed, 401 bad key, 403 valid key without permission, 501
a type you don't support, 503 down for now) and put a diagnostic in a JSON
``message`` on errors. A partner is also required to handle ``delete``.

This module sends a suite of requests built exactly as segue's delivery engine
builds them (:func:`segue.delivery.webhook.build_request`), then grades each answer.
The grading is pure (:func:`grade`, :func:`grade_coverage`, :func:`grade_https`);
:func:`run_checks` is the async runner that does the HTTP.

Grading rules (docs/partners.md has them for partners):

- **event types** (identify, track, page, screen, group, alias; realistic samples):
  200/202 pass; 501 passes (the seed lets a destination not support a type).
- **delete**: must be 2xx; 501 fails (partners are required to support deletion).
- **variants** of every type (snake_case keys, a minimal event, ~30 KB properties on
  track): graded like their type, but when the realistic event of that type was
  accepted, the variant must be accepted too (a 501 then fails). A 400 on a minimal
  event is a warning (a tool may legitimately require a field, like the seed's
  "Missing email address"); on snake_case or large events it fails.
- **coverage**: at least one of identify, track, page, screen, group must be accepted
  (an endpoint that answers 501 to everything handles nothing).
- **no Authorization**, **malformed Authorization**: 401 only.
- **wrong API key**: 401 or 403.
- **malformed JSON**: 400.
- **unknown type**: 501; 400 is a warning; 2xx or 500 fail.
- **every 4xx/5xx** must carry ``Content-Type: application/json`` and a JSON object
  with a ``message`` (the seed calls the message optional; segue requires it because
  without it the debugger shows nothing): otherwise the check fails.
- **every response** within the timeout (5 s by default), else the check fails.
- **HTTPS**: https passes, plain http to a loopback address passes (local development),
  plain http elsewhere is a warning.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import aiohttp
import orjson
from yarl import URL

from segue.delivery.transport import read_capped
from segue.delivery.webhook import WebhookRequest, authorization_header, build_request
from segue.spec.normalize import IngestContext, normalize
from segue.spec.samples import SAMPLE_SOURCE_ID, SAMPLE_TYPES, sample

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_CONCURRENCY = 4
CORE_TYPES: tuple[str, ...] = ("identify", "track", "page", "screen", "group")
EVENT_TYPES: tuple[str, ...] = SAMPLE_TYPES  # the six spec types and delete
PROBE_ORDER: tuple[str, ...] = ("track", "identify", "page", "screen", "group", "alias")
LARGE_EVENT_BYTES = 30 * 1024  # Segment delivers events up to 32 KB
UNKNOWN_TYPE = "x-segue-check"
WRONG_KEY_SUFFIX = "-wrong"
MALFORMED_AUTHORIZATION = "Basic %%%not-base64%%%"
MALFORMED_JSON = b'{"type": "track", "event": "Order Completed", "userId": "'
MAX_RESPONSE_BYTES = 64 * 1024
MAX_SHOWN_MESSAGE = 200


class Verdict(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


class Kind(StrEnum):
    """What a check sends, which decides the statuses it allows."""

    EVENT = "event"  # a realistic sample of a type, camelCase as segue delivers it
    SNAKE_CASE = "snake_case"  # the same with every key in snake_case (legacy form)
    MINIMAL = "minimal"  # only the fields every event has: no traits, no properties
    LARGE = "large"  # ~30 KB of properties
    NO_AUTH = "no_auth"
    BAD_AUTH = "bad_auth"
    WRONG_KEY = "wrong_key"
    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"


VARIANTS = frozenset({Kind.SNAKE_CASE, Kind.MINIMAL, Kind.LARGE})
TYPE_KINDS = VARIANTS | {Kind.EVENT}


class CheckUsageError(ValueError):
    """The command line is wrong: bad URL, bad settings (exit code 2)."""


class UnreachableError(ConnectionError):
    """No request reached the endpoint at all (exit code 2)."""


@dataclass(frozen=True, slots=True)
class Check:
    id: str  # stable: "track", "track.snake_case", "auth.missing" …
    name: str  # for people: "track snake_case"
    kind: Kind
    event_type: str  # the type in the body (the probe type for negative checks)
    summary: str  # what was sent, in a few words (never the key)
    request: WebhookRequest


@dataclass(frozen=True, slots=True)
class Observation:
    """What came back for one request, or why nothing did."""

    status: int | None = None
    content_type: str = ""
    body: bytes = b""
    elapsed_s: float = 0.0
    error: str | None = None
    timed_out: bool = False
    unreachable: bool = False  # the connection itself failed (refused, DNS, TLS)


@dataclass(frozen=True, slots=True)
class Grade:
    verdict: Verdict
    reason: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    id: str
    name: str
    request: str
    status: int | None
    elapsed_ms: float | None
    verdict: Verdict
    reason: str
    message: str | None = None  # the endpoint's JSON `message`, when it sent one

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "request": self.request,
            "status": self.status,
            "elapsed_ms": None if self.elapsed_ms is None else round(self.elapsed_ms, 1),
            "verdict": self.verdict.value,
            "reason": self.reason,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Report:
    url: str
    timeout_s: float
    results: tuple[CheckResult, ...]

    def count(self, verdict: Verdict) -> int:
        return sum(1 for result in self.results if result.verdict is verdict)

    @property
    def passed(self) -> bool:
        """True when no check failed (warnings are allowed)."""
        return self.count(Verdict.FAIL) == 0

    def result(self, check_id: str) -> CheckResult:
        for result in self.results:
            if result.id == check_id:
                return result
        raise KeyError(check_id)

    def failed_ids(self) -> set[str]:
        return {result.id for result in self.results if result.verdict is Verdict.FAIL}

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "timeout_s": self.timeout_s,
            "passed": self.passed,
            "counts": {verdict.value: self.count(verdict) for verdict in Verdict},
            "checks": [result.as_json() for result in self.results],
        }


# -- the response body ---------------------------------------------------------------


def json_message(content_type: str, body: bytes) -> tuple[str | None, str | None]:
    """``(message, problem)`` of an error body, per the seed's "Response Body" section.

    ``problem`` is None when the body is JSON (``Content-Type: application/json``) with a
    ``message`` property; otherwise it says what is wrong.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        shown = media_type or "missing"
        return None, (
            f"Content-Type is {shown}, not application/json: "
            "the error's `message` is lost (it is only read from JSON)"
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, "the body is not valid JSON although Content-Type says application/json"
    if not isinstance(data, dict) or "message" not in data:
        return None, "the JSON body has no `message` property to show in the debugger"
    message = data["message"]
    if not isinstance(message, str) or not message.strip():
        return None, "`message` must be a non-empty string"
    return message, None


def _shown(message: str) -> str:
    one_line = " ".join(message.split())
    if len(one_line) > MAX_SHOWN_MESSAGE:
        one_line = one_line[: MAX_SHOWN_MESSAGE - 1] + "…"
    return one_line


# -- grading (pure) ----------------------------------------------------------------------


def _ok(status: int) -> bool:
    return 200 <= status < 300


def _accepted(status: int) -> str:
    return "accepted, not yet processed (202)" if status == 202 else f"accepted ({status})"


def _unexpected(status: int, expected: str) -> str:
    if 300 <= status < 400:
        return f"redirect ({status}): redirects are not followed, give the final URL"
    if status == 404:
        return "not found (404): is the URL right?"
    if status == 405:
        return "method not allowed (405): the endpoint must accept POST"
    return f"{status} is not what the seed asks for here: expected {expected}"


def _type_grade(check: Check, status: int, base_status: int | None) -> Grade:
    """Realistic events of a type and their variants."""
    type_ = check.event_type
    is_delete = type_ == "delete"
    if _ok(status):
        return Grade(Verdict.PASS, _accepted(status))
    if status == 501:
        if is_delete:
            return Grade(
                Verdict.FAIL,
                "delete answered 501: partners are required to support user deletion",
            )
        if check.kind is not Kind.EVENT and base_status is not None and _ok(base_status):
            return Grade(
                Verdict.FAIL,
                f"501, but the realistic {type_} was accepted: every form of a type "
                "you support must be accepted",
            )
        return Grade(Verdict.PASS, f"{type_} not supported (501)")
    if status == 400:
        if check.kind is Kind.MINIMAL:
            return Grade(
                Verdict.WARN,
                f"a minimal {type_} (no traits, properties or context) was rejected (400), "
                "fine only if your tool requires a field it lacks",
            )
        if check.kind is Kind.SNAKE_CASE:
            return Grade(
                Verdict.FAIL,
                "keys in snake_case were rejected: the seed says be ready to accept any casing",
            )
        if check.kind is Kind.LARGE:
            return Grade(
                Verdict.FAIL, "a ~30 KB event was rejected: Segment delivers events up to 32 KB"
            )
        return Grade(Verdict.FAIL, f"a valid {type_} was rejected as malformed (400)")
    if status in (401, 403):
        return Grade(Verdict.FAIL, f"{status}: the API key given with --api-key was rejected")
    if status == 413:
        return Grade(Verdict.FAIL, "payload too large (413): Segment delivers events up to 32 KB")
    if status == 500:
        hint = "" if is_delete else ": answer 501 for a type you don't support"
        return Grade(Verdict.FAIL, f"internal error (500){hint}")
    if status == 503:
        return Grade(Verdict.FAIL, "temporarily unavailable (503): Segment would retry later")
    expected = "200 or 202" if is_delete else "200, 202, or 501 if unsupported"
    return Grade(Verdict.FAIL, _unexpected(status, expected))


def _auth_grade(check: Check, status: int) -> Grade:
    if check.kind is Kind.WRONG_KEY:
        if status in (401, 403):
            return Grade(Verdict.PASS, f"wrong key rejected ({status})")
        if _ok(status):
            return Grade(Verdict.FAIL, f"a wrong API key was accepted ({status}): expected 401")
        return Grade(Verdict.FAIL, _unexpected(status, "401 (or 403)"))
    what = (
        "without an Authorization header"
        if check.kind is Kind.NO_AUTH
        else "with a malformed Authorization header"
    )
    if status == 401:
        return Grade(Verdict.PASS, "rejected (401)")
    if _ok(status):
        return Grade(Verdict.FAIL, f"a request {what} was accepted ({status}): expected 401")
    if status == 403:
        return Grade(
            Verdict.FAIL,
            "403 means a valid key with inadequate permissions; a missing or malformed key is 401",
        )
    return Grade(Verdict.FAIL, _unexpected(status, "401"))


def _bad_json_grade(status: int) -> Grade:
    if status == 400:
        return Grade(Verdict.PASS, "rejected as malformed (400)")
    if _ok(status):
        return Grade(Verdict.FAIL, f"a body that is not JSON was accepted ({status}): expected 400")
    if status == 500:
        return Grade(Verdict.FAIL, "internal error (500) on a body that is not JSON: expected 400")
    return Grade(Verdict.FAIL, _unexpected(status, "400"))


def _unknown_type_grade(status: int) -> Grade:
    if status == 501:
        return Grade(Verdict.PASS, "unknown type answered as unsupported (501)")
    if status == 400:
        return Grade(
            Verdict.WARN,
            "400 for an unknown type: the seed asks for 501 for types you don't support",
        )
    if _ok(status):
        return Grade(
            Verdict.FAIL,
            f"an unknown type was accepted ({status}): answer 501 for types you don't support",
        )
    if status == 500:
        return Grade(Verdict.FAIL, "internal error (500) on an unknown type: expected 501")
    return Grade(Verdict.FAIL, _unexpected(status, "501"))


def grade(
    check: Check, observation: Observation, *, timeout_s: float, base_status: int | None = None
) -> Grade:
    """The verdict on one answer. ``base_status``: what the realistic event of the same
    type got, for variants (a supported type must accept its variants)."""
    if observation.timed_out:
        return Grade(
            Verdict.FAIL,
            f"no response within {timeout_s:g} s: answer quickly (202 if you process later)",
        )
    if observation.error is not None or observation.status is None:
        return Grade(Verdict.FAIL, f"no HTTP response: {observation.error or 'no status'}")
    status = observation.status
    if check.kind in TYPE_KINDS:
        result = _type_grade(check, status, base_status)
    elif check.kind in (Kind.NO_AUTH, Kind.BAD_AUTH, Kind.WRONG_KEY):
        result = _auth_grade(check, status)
    elif check.kind is Kind.BAD_JSON:
        result = _bad_json_grade(status)
    else:
        result = _unknown_type_grade(status)
    if status < 400:
        return result
    message, problem = json_message(observation.content_type, observation.body)
    if problem is not None:
        joint = "; also" if result.verdict is Verdict.FAIL else ", but"
        return Grade(Verdict.FAIL, f"{result.reason}{joint} {problem}")
    return Grade(result.verdict, f'{result.reason}: "{_shown(message or "")}"')


def grade_coverage(base: Mapping[str, int | None]) -> Grade:
    """At least one core type must be accepted: a destination that takes nothing is broken."""
    supported = [type_ for type_ in CORE_TYPES if (status := base.get(type_)) and _ok(status)]
    if supported:
        return Grade(Verdict.PASS, "handles " + ", ".join(supported))
    return Grade(
        Verdict.FAIL,
        f"none of {', '.join(CORE_TYPES)} was accepted: a destination must handle at least one",
    )


def is_local_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def grade_https(url: str) -> Grade:
    parsed = URL(url)
    if parsed.scheme == "https":
        return Grade(Verdict.PASS, "HTTPS")
    if is_local_host(parsed.host):
        return Grade(
            Verdict.PASS, "plain http on a loopback address: fine locally, production needs HTTPS"
        )
    return Grade(
        Verdict.WARN,
        "plain http: the seeds require HTTPS (segue refuses http unless allow_http is set)",
    )


# -- the requests ------------------------------------------------------------------------


def validate_url(url: str) -> str:
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise CheckUsageError(f"not a URL: {url!r} ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise CheckUsageError(f"the endpoint must be an http:// or https:// URL, not {url!r}")
    return url


def parse_settings(text: str | None) -> dict[str, Any]:
    """``--settings``: a JSON object of custom settings (sent in X-Segment-Settings)."""
    if text is None or not text.strip():
        return {}
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise CheckUsageError(f"--settings is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CheckUsageError('--settings must be a JSON object, like \'{"region": "eu"}\'')
    return data


def _size(body: bytes) -> str:
    return f"{len(body)} B" if len(body) < 1024 else f"{len(body) / 1024:.1f} KB"


def _minimal_event(type_: str, now: datetime) -> dict[str, Any]:
    """What segue delivers for a bare server-side call: only the fields every event has."""
    raw: dict[str, Any] = {"type": type_, "userId": f"user-{uuid.uuid4().hex[:12]}"}
    if type_ == "track":
        raw["event"] = "Signed Up"
    elif type_ == "group":
        raw["groupId"] = f"grp-{uuid.uuid4().hex[:8]}"
    elif type_ == "alias":
        raw["previousId"] = str(uuid.uuid4())
    return normalize(raw, IngestContext(source_id=SAMPLE_SOURCE_ID, received_at=now))


def _large_track(now: datetime) -> dict[str, Any]:
    """A realistic track whose properties bring the event to ~30 KB."""
    event = sample("track", now=now)
    recommendations: list[dict[str, Any]] = []
    event["properties"]["recommendations"] = recommendations
    index = 0
    while len(orjson.dumps(event)) < LARGE_EVENT_BYTES:
        for _ in range(16):
            index += 1
            recommendations.append(
                {
                    "product_id": f"{index:024x}",
                    "sku": f"R-{index:04d}",
                    "name": f"Recommended board game #{index}",
                    "score": round(1 - index / 1000, 3),
                    "url": f"https://shop.example.com/products/r-{index:04d}",
                }
            )
    while len(orjson.dumps(event)) > LARGE_EVENT_BYTES:  # back under the target
        recommendations.pop()
    return event


def _headers_with(
    request: WebhookRequest, authorization: str | None, body: bytes | None = None
) -> WebhookRequest:
    """The same request with another (or no) Authorization header, or another body."""
    new_body = request.body if body is None else body
    headers: list[tuple[str, str]] = []
    for name, value in request.headers:
        lower = name.lower()
        if lower == "authorization":
            if authorization is not None:
                headers.append((name, authorization))
        elif lower == "content-length":
            headers.append((name, str(len(new_body))))
        else:
            headers.append((name, value))
    return replace(request, headers=tuple(headers), body=new_body)


def type_checks(url: str, settings: Mapping[str, Any], *, now: datetime) -> list[Check]:
    """Phase one: one realistic sample of every type."""
    checks = []
    for type_ in EVENT_TYPES:
        request = build_request(url, sample(type_, now=now), settings)
        checks.append(
            Check(
                type_,
                type_,
                Kind.EVENT,
                type_,
                f"{type_}, camelCase, {_size(request.body)}",
                request,
            )
        )
    return checks


def variant_checks(url: str, settings: Mapping[str, Any], *, now: datetime) -> list[Check]:
    """Phase two: every type in snake_case and minimal; track with large properties."""
    checks = []
    for type_ in EVENT_TYPES:
        snake = build_request(url, sample(type_, now=now), settings, snake_case=True)
        checks.append(
            Check(
                f"{type_}.snake_case",
                f"{type_} snake_case",
                Kind.SNAKE_CASE,
                type_,
                f"{type_}, every key snake_case, {_size(snake.body)}",
                snake,
            )
        )
        minimal = build_request(url, _minimal_event(type_, now), settings)
        checks.append(
            Check(
                f"{type_}.minimal",
                f"{type_} minimal",
                Kind.MINIMAL,
                type_,
                f"{type_}, no optional fields, {_size(minimal.body)}",
                minimal,
            )
        )
        if type_ == "track":
            large = build_request(url, _large_track(now), settings)
            checks.append(
                Check(
                    "track.large",
                    "track large",
                    Kind.LARGE,
                    "track",
                    f"track, large properties, {_size(large.body)}",
                    large,
                )
            )
    return checks


def negative_checks(
    url: str, settings: Mapping[str, Any], *, probe_type: str, now: datetime
) -> list[Check]:
    """Requests that must be refused. They carry an event of a type the endpoint accepts,
    so the only thing wrong with them is the one thing each check is about."""
    good = build_request(url, sample(probe_type, now=now), settings)
    api_key = str(settings.get("apiKey", ""))
    unknown = sample(probe_type, now=now)
    unknown["type"] = UNKNOWN_TYPE
    unknown_request = build_request(url, unknown, settings)
    return [
        Check(
            "auth.missing",
            "no Authorization",
            Kind.NO_AUTH,
            probe_type,
            f"{probe_type}, no Authorization header",
            _headers_with(good, None),
        ),
        Check(
            "auth.malformed",
            "malformed Authorization",
            Kind.BAD_AUTH,
            probe_type,
            f"{probe_type}, Authorization: {MALFORMED_AUTHORIZATION}",
            _headers_with(good, MALFORMED_AUTHORIZATION),
        ),
        Check(
            "auth.wrong_key",
            "wrong API key",
            Kind.WRONG_KEY,
            probe_type,
            f'{probe_type}, the API key + "{WRONG_KEY_SUFFIX}"',
            _headers_with(good, authorization_header(api_key + WRONG_KEY_SUFFIX)),
        ),
        Check(
            "body.malformed_json",
            "malformed JSON",
            Kind.BAD_JSON,
            probe_type,
            f"truncated JSON, {_size(MALFORMED_JSON)}, valid key",
            _headers_with(good, authorization_header(api_key), body=MALFORMED_JSON),
        ),
        Check(
            "type.unknown",
            "unknown type",
            Kind.UNKNOWN_TYPE,
            UNKNOWN_TYPE,
            f'type "{UNKNOWN_TYPE}", {_size(unknown_request.body)}',
            unknown_request,
        ),
    ]


def pick_probe_type(base: Mapping[str, int | None]) -> str:
    """A type the endpoint accepted, to carry the negative checks (track if none was)."""
    for type_ in PROBE_ORDER:
        status = base.get(type_)
        if status is not None and _ok(status):
            return type_
    return "track"


# -- running -------------------------------------------------------------------------------


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    return await read_capped(response, MAX_RESPONSE_BYTES)


async def send(
    session: aiohttp.ClientSession, request: WebhookRequest, *, timeout_s: float
) -> Observation:
    """One POST, exactly as built; never raises for what the endpoint does."""
    started = time.perf_counter()
    try:
        async with session.post(
            request.url,
            data=request.body,
            headers=list(request.headers),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as response:
            body = await _read_capped(response)
            return Observation(
                status=response.status,
                content_type=response.headers.get("Content-Type", ""),
                body=body,
                elapsed_s=time.perf_counter() - started,
            )
    except TimeoutError:
        return Observation(
            error=f"no response within {timeout_s:g} s",
            timed_out=True,
            elapsed_s=time.perf_counter() - started,
        )
    except aiohttp.ClientConnectorError as exc:
        return Observation(
            error=str(exc) or type(exc).__name__,
            unreachable=True,
            elapsed_s=time.perf_counter() - started,
        )
    except aiohttp.ClientError as exc:
        return Observation(
            error=f"{type(exc).__name__}: {exc}", elapsed_s=time.perf_counter() - started
        )


async def _send_all(
    session: aiohttp.ClientSession,
    checks: Sequence[Check],
    *,
    timeout_s: float,
    concurrency: int,
) -> list[Observation]:
    gate = asyncio.Semaphore(concurrency)

    async def one(check: Check) -> Observation:
        async with gate:
            return await send(session, check.request, timeout_s=timeout_s)

    return list(await asyncio.gather(*(one(check) for check in checks)))


def _result(check: Check, observation: Observation, grade_: Grade) -> CheckResult:
    message = None
    if observation.status is not None and observation.status >= 400:
        message, _ = json_message(observation.content_type, observation.body)
    return CheckResult(
        id=check.id,
        name=check.name,
        request=check.summary,
        status=observation.status,
        elapsed_ms=observation.elapsed_s * 1000,
        verdict=grade_.verdict,
        reason=grade_.reason,
        message=message,
    )


def assemble(
    url: str,
    graded: Iterable[tuple[Check, Observation]],
    *,
    timeout_s: float,
) -> Report:
    """Grade every (check, observation) pair and order the rows for display: HTTPS, each
    type with its variants, the negative checks, coverage."""
    pairs = list(graded)
    base = {
        check.event_type: observation.status
        for check, observation in pairs
        if check.kind is Kind.EVENT
    }
    rows: dict[str, CheckResult] = {}
    for check, observation in pairs:
        base_status = base.get(check.event_type) if check.kind in VARIANTS else None
        rows[check.id] = _result(
            check,
            observation,
            grade(check, observation, timeout_s=timeout_s, base_status=base_status),
        )
    https = grade_https(url)
    coverage = grade_coverage(base)
    first = CheckResult("https", "HTTPS", url, None, None, https.verdict, https.reason)
    last = CheckResult(
        "coverage",
        "core type supported",
        "(the answers above)",
        None,
        None,
        coverage.verdict,
        coverage.reason,
    )
    type_rows = sorted(
        (check for check, _ in pairs if check.kind in TYPE_KINDS),
        key=lambda check: (EVENT_TYPES.index(check.event_type), _VARIANT_ORDER[check.kind]),
    )
    other_rows = [check for check, _ in pairs if check.kind not in TYPE_KINDS]
    ordered = [rows[check.id] for check in (*type_rows, *other_rows)]
    return Report(url=url, timeout_s=timeout_s, results=(first, *ordered, last))


_VARIANT_ORDER = {Kind.EVENT: 0, Kind.SNAKE_CASE: 1, Kind.MINIMAL: 2, Kind.LARGE: 3}


async def run_checks(
    url: str,
    api_key: str,
    settings: Mapping[str, Any] | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> Report:
    """Send the whole suite to ``url`` and grade it.

    Raises :class:`CheckUsageError` for a bad URL and :class:`UnreachableError` when not
    one request of the first phase could connect.
    """
    validate_url(url)
    full_settings = {**(settings or {}), "apiKey": api_key}
    now = datetime.now(UTC)
    async with aiohttp.ClientSession(skip_auto_headers=("Accept-Encoding",)) as session:
        first = type_checks(url, full_settings, now=now)
        first_seen = await _send_all(session, first, timeout_s=timeout_s, concurrency=concurrency)
        if all(observation.unreachable for observation in first_seen):
            raise UnreachableError(f"cannot connect to {url}: {first_seen[0].error}")
        base = {
            check.event_type: seen.status for check, seen in zip(first, first_seen, strict=True)
        }
        second = variant_checks(url, full_settings, now=now) + negative_checks(
            url, full_settings, probe_type=pick_probe_type(base), now=now
        )
        second_seen = await _send_all(session, second, timeout_s=timeout_s, concurrency=concurrency)
    return assemble(
        url,
        [*zip(first, first_seen, strict=True), *zip(second, second_seen, strict=True)],
        timeout_s=timeout_s,
    )


__all__ = [
    "CORE_TYPES",
    "DEFAULT_TIMEOUT_S",
    "Check",
    "CheckResult",
    "CheckUsageError",
    "Grade",
    "Kind",
    "Observation",
    "Report",
    "UnreachableError",
    "Verdict",
    "assemble",
    "grade",
    "grade_coverage",
    "grade_https",
    "json_message",
    "parse_settings",
    "run_checks",
    "validate_url",
]
