"""``Destination``: register a handler per call type; get a correct Segment endpoint.

Everything the seeds ask of a partner endpoint happens here, once, before a handler
runs: POST only, the Basic-auth API key decoded and checked, X-Segment-Settings
decoded, the body parsed as a JSON object with case-insensitive keys, and every
outcome mapped onto the status table with a JSON ``message``. Handlers only say what
happened (return, ``Accepted``, or raise an outcome from ``segue.partner.outcomes``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from segue.partner.asgi import serve_asgi
from segue.partner.headers import (
    AuthorizationError,
    SettingsError,
    decode_authorization,
    decode_settings,
)
from segue.partner.outcomes import Accepted, DestinationError, Unauthorized
from segue.partner.wire import Request, Response, error_response, json_response
from segue.partner.wsgi import wsgi_app
from segue.spec.casing import CaseInsensitiveDict

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from segue.asgi import Receive, Scope, Send

logger = logging.getLogger("segue.partner")

SEGMENT_TYPES = ("identify", "track", "page", "screen", "group", "alias", "delete")
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024  # Segment's events are ≤ 32 KB; this is generous
_SHOWN_TYPE_CHARS = 64

KeyCheck = Callable[[str], "bool | Awaitable[bool]"]
H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Context:
    """What a handler knows about the request besides the event itself."""

    type: str  # the call type, lower case: "identify", "track", …
    api_key: str  # decoded from Authorization: Basic
    settings: dict[str, Any]  # decoded X-Segment-Settings; {} when absent
    headers: Mapping[str, str]  # request headers, names in any casing


class Destination:
    """An ASGI app (``await dest(scope, receive, send)``); ``dest.wsgi()`` for WSGI servers.

    ``api_key_check(api_key)`` returns (or resolves to) True to accept the key; False
    answers 401. It may also raise ``Unauthorized``/``Forbidden`` for a precise message.
    Handlers are ``handler(event, context)``, plain or ``async``. Plain ones run in a
    worker thread under ASGI (as in Starlette/FastAPI), so blocking I/O in them does
    not stall other deliveries; under WSGI they run on the server's own thread.
    """

    def __init__(
        self,
        api_key_check: KeyCheck | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.api_key_check = api_key_check
        self.max_body_bytes = max_body_bytes
        self._handlers: dict[str, Callable[..., Any]] = {}

    # -- registering handlers -------------------------------------------------------
    def on(self, type: str) -> Callable[[H], H]:
        """``@dest.on("track")``: the handler for one call type (each type at most once)."""
        kind = type.lower()
        if kind not in SEGMENT_TYPES:
            raise ValueError(f"unknown call type {type!r}; expected one of {SEGMENT_TYPES}")

        def register(handler: H) -> H:
            if kind in self._handlers:
                raise ValueError(f"a {kind} handler is already registered")
            self._handlers[kind] = handler
            return handler

        return register

    def identify(self, handler: H) -> H:
        return self.on("identify")(handler)

    def track(self, handler: H) -> H:
        return self.on("track")(handler)

    def page(self, handler: H) -> H:
        return self.on("page")(handler)

    def screen(self, handler: H) -> H:
        return self.on("screen")(handler)

    def group(self, handler: H) -> H:
        return self.on("group")(handler)

    def alias(self, handler: H) -> H:
        return self.on("alias")(handler)

    def delete(self, handler: H) -> H:
        """The user-deletion message: the seeds require partners to support it."""
        return self.on("delete")(handler)

    @property
    def supported_types(self) -> tuple[str, ...]:
        return tuple(t for t in SEGMENT_TYPES if t in self._handlers)

    # -- serving ---------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await serve_asgi(self, scope, receive, send)

    def wsgi(self) -> WSGIApplication:
        """This destination as a WSGI app (Flask: ``app.wsgi_app = dest.wsgi()``)."""
        return wsgi_app(self)

    async def respond(self, request: Request, *, sync_in_thread: bool = True) -> Response:
        """The answer to one request. Never raises for anything a handler does."""
        if request.method != "POST":
            return error_response(
                405, f"method {request.method} not allowed; use POST", (("Allow", "POST"),)
            )
        try:
            api_key = decode_authorization(request.headers.get("authorization"))
        except AuthorizationError as exc:
            return error_response(401, str(exc))
        try:
            if self.api_key_check is not None and not await _call(
                self.api_key_check, (api_key,), sync_in_thread
            ):
                raise Unauthorized()
        except DestinationError as exc:
            return error_response(exc.status, exc.message, exc.headers())
        except Exception:
            logger.exception("api_key_check failed")
            return error_response(500, "internal error")
        parsed = self._parse(request)
        if isinstance(parsed, Response):
            return parsed
        event, kind, settings = parsed
        handler = self._handlers.get(kind)
        if handler is None:
            return error_response(501, f"type {kind[:_SHOWN_TYPE_CHARS]} is not supported")
        context = Context(kind, api_key, settings, request.headers)
        try:
            result = await _call(handler, (event, context), sync_in_thread)
        except DestinationError as exc:
            return error_response(exc.status, exc.message, exc.headers())
        except Exception:
            # the partner's bug: logged in full here, never shown to the sender
            logger.exception("the %s handler failed (messageId %s)", kind, event.get("messageId"))
            return error_response(500, "internal error")
        return _success(kind, result)

    def _parse(
        self, request: Request
    ) -> Response | tuple[CaseInsensitiveDict, str, dict[str, Any]]:
        """Settings, body and type, or the 400 that says which of them is wrong."""
        try:
            settings = decode_settings(request.headers.get("x-segment-settings"))
        except SettingsError as exc:
            return error_response(400, str(exc))
        if len(request.body) > self.max_body_bytes:
            return error_response(400, f"body larger than {self.max_body_bytes} bytes")
        try:
            data = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return error_response(400, "body is not valid JSON")
        if not isinstance(data, dict):
            return error_response(400, "body must be a JSON object")
        event = _case_insensitive(data)
        kind = event.get("type")
        if kind is None:
            return error_response(400, "event has no type")
        if not isinstance(kind, str) or not kind.strip():
            return error_response(400, "event type must be a non-empty string")
        return event, kind.strip().lower(), settings


def _case_insensitive(data: dict[str, Any]) -> CaseInsensitiveDict:
    """Every object, at every depth, made case-insensitive once, up front.

    Reads alone would work lazily, but a lazy wrapper is a fresh copy on each access,
    so ``event["traits"]["avatar"] = url`` would be lost; converting once keeps nested
    objects the same objects a handler can change and return.
    """

    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            return CaseInsensitiveDict({k: convert(v) for k, v in value.items()})
        if isinstance(value, list):
            return [convert(item) for item in value]
        return value

    return CaseInsensitiveDict({k: convert(v) for k, v in data.items()})


async def _call(fn: Callable[..., Any], args: tuple[Any, ...], in_thread: bool) -> Any:
    """Call a plain or async function; plain ones in a thread when the loop must stay free."""
    if inspect.iscoroutinefunction(fn) or not in_thread:
        result = fn(*args)
    else:
        result = await asyncio.to_thread(fn, *args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _success(kind: str, result: Any) -> Response:
    """Return value → 200 with it as JSON (``{}`` for None); ``Accepted`` → 202."""
    status = 200
    if result is Accepted:
        result = Accepted()
    if isinstance(result, Accepted):
        status, result = 202, result.body
    try:
        return json_response(status, result)
    except TypeError:  # orjson.JSONEncodeError: the handler returned something unserialisable
        logger.exception("the %s handler returned a value that is not JSON", kind)
        return error_response(500, "internal error")
