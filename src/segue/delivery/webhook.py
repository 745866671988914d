"""The partner contract: how segue POSTs an event to a destination's HTTP endpoint.

Byte for byte what the seeds describe: body = the event JSON; Accept, Basic auth
with the API key as username and an empty password (colon always present),
Cache-Control, Connection, Content-Length, Content-Type, User-Agent, and
X-Segment-Settings = base64(JSON of every setting but apiKey).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from segue.delivery.policy import AttemptOutcome, FailureKind, parse_retry_after
from segue.delivery.transport import Transport, TransportError
from segue.destinations.redaction import Redactor
from segue.spec.casing import snake_case_keys

USER_AGENT = "Segment.io/1.0"
MAX_RECORDED_BODY = 4096
MASK = "••••••"


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt as the debugger shows it: what was sent, what came back."""

    request: WebhookRequest
    response: WebhookResponse | None
    outcome: AttemptOutcome
    duration_ms: float
    error: str | None = None

    def as_json(
        self, sensitive_keys: frozenset[str] = frozenset(), redactor: Redactor | None = None
    ) -> dict[str, Any]:
        """For the API and the store: secrets masked (also where an endpoint echoed them),
        bodies capped."""
        redact = redactor or Redactor()
        return {
            "request": {
                "method": "POST",
                "url": self.request.url,
                "headers": redact.value(masked_headers(self.request.headers, sensitive_keys)),
                "body": _text(self.request.body),
            },
            "response": None
            if self.response is None
            else {
                "status": self.response.status,
                "headers": redact.value(dict(self.response.headers)),
                "body": redact.text(_text(self.response.body)),
            },
            "status": self.outcome.status,
            "reason": self.outcome.reason,
            "message": redact.value(self.outcome.message),
            "error": redact.value(self.error),
            "duration_ms": round(self.duration_ms, 2),
        }


def settings_header(settings: Mapping[str, Any]) -> str:
    """base64(JSON of every setting except apiKey)."""
    others = {key: value for key, value in settings.items() if key != "apiKey"}
    return base64.b64encode(orjson.dumps(others)).decode("ascii")


def authorization_header(api_key: str) -> str:
    return "Basic " + base64.b64encode(f"{api_key}:".encode()).decode("ascii")


def build_request(
    url: str,
    event: bytes | Mapping[str, Any],
    settings: Mapping[str, Any],
    *,
    snake_case: bool = False,
) -> WebhookRequest:
    if snake_case:
        data = orjson.loads(event) if isinstance(event, bytes) else event
        body = orjson.dumps(snake_case_keys(data))
    else:
        body = event if isinstance(event, bytes) else orjson.dumps(event)
    api_key = settings.get("apiKey")
    headers = (
        ("Accept", "*/*"),
        ("Authorization", authorization_header("" if api_key is None else str(api_key))),
        ("Cache-Control", "no-cache"),
        ("Connection", "Keep-Alive"),
        ("Content-Length", str(len(body))),
        ("Content-Type", "application/json"),
        ("User-Agent", USER_AGENT),
        ("X-Segment-Settings", settings_header(settings)),
    )
    return WebhookRequest(url=url, headers=headers, body=body)


def masked_headers(
    headers: tuple[tuple[str, str], ...], sensitive_keys: frozenset[str] = frozenset()
) -> dict[str, str]:
    """Headers for display: credentials and encoded secrets never leave segue."""
    shown = {}
    for name, value in headers:
        lower = name.lower()
        if lower == "authorization":
            shown[name] = value.split(" ", 1)[0] + " " + MASK
        elif lower == "x-segment-settings" and sensitive_keys:
            shown[name] = _masked_settings(value, sensitive_keys)
        else:
            shown[name] = value
    return shown


def _masked_settings(encoded: str, sensitive_keys: frozenset[str]) -> str:
    try:
        settings = orjson.loads(base64.b64decode(encoded))
    except (ValueError, orjson.JSONDecodeError):
        return MASK  # not what segue sends: show nothing rather than a secret
    if not isinstance(settings, dict):
        return MASK
    masked = {k: (MASK if k in sensitive_keys else v) for k, v in settings.items()}
    return base64.b64encode(orjson.dumps(masked)).decode("ascii")


def error_message(response: WebhookResponse) -> str | None:
    """The ``message`` of a JSON error body; only when Content-Type says JSON (the seeds)."""
    if response.status < 400:
        return None
    content_type = next((v for k, v in response.headers if k.lower() == "content-type"), "")
    if "application/json" not in content_type.lower():
        return None
    try:
        data = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return None
    message = data.get("message") if isinstance(data, dict) else None
    return str(message) if message is not None else None


async def send_webhook(
    transport: Transport, request: WebhookRequest, *, timeout_s: float, allow_http: bool = False
) -> AttemptRecord:
    """One attempt. Never raises: every failure becomes an outcome the policy can judge."""
    started = time.perf_counter()
    try:
        response = await transport.post(request, timeout_s=timeout_s, allow_http=allow_http)
    except TransportError as exc:
        outcome = AttemptOutcome(failure=exc.kind, message=str(exc))
        return AttemptRecord(request, None, outcome, _ms_since(started), error=str(exc))
    retry_after = next((v for k, v in response.headers if k.lower() == "retry-after"), None)
    outcome = AttemptOutcome(
        status=response.status,
        retry_after_s=parse_retry_after(retry_after, time.time()),
        message=error_message(response),
    )
    return AttemptRecord(request, response, outcome, _ms_since(started))


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _text(body: bytes) -> str:
    text = body[:MAX_RECORDED_BODY].decode("utf-8", "replace")
    return text + "…" if len(body) > MAX_RECORDED_BODY else text


__all__ = [
    "MASK",
    "USER_AGENT",
    "AttemptRecord",
    "FailureKind",
    "WebhookRequest",
    "WebhookResponse",
    "build_request",
    "send_webhook",
]
