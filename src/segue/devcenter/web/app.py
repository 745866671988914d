"""The web UI's Starlette app: sign-in, sources, live events, apps and destinations.

Pages are rendered on the server with Jinja2 (autoescaped). Every page needs a
session (else 303 to the sign-in page); every POST needs a session and its CSRF token
(else 403). The UI works on the same objects as the admin API (``segue.store``,
``segue.catalog``) and does nothing the API cannot do.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from segue.bootstrap import new_write_key
from segue.devcenter.admin import event_json
from segue.devcenter.responses import JSONResponse, allow_every_method
from segue.devcenter.web import app_pages, destination_pages
from segue.devcenter.web.csrf import FIELD, HEADER, csrf_ok
from segue.devcenter.web.session import COOKIE, Session, SessionSigner
from segue.devcenter.web.snippets import snippets
from segue.ingest.rejections import RejectionEntry
from segue.store import EventQuery, Source, SourceExistsError, SourceKind, StoredEvent

if TYPE_CHECKING:
    from segue.app import Segue

HERE = Path(__file__).parent
PREFIX = "/ui"
SIGN_IN = f"{PREFIX}/sign-in"
MAX_FORM_BYTES = 64 * 1024
LIVE_PAGE = 50
UNKNOWN_KEY_WINDOW_MS = 15 * 60 * 1000  # the live page's note on unknown write keys
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")
_NOTICES = {
    "created": "Source created.",
    "rotated": "Write key rotated: the old key no longer works.",
    "enabled": "Source enabled.",
    "disabled": "Source disabled: its events are refused.",
}
_SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}

Handler = Callable[[Request], Awaitable[Response]]
PageHandler = Callable[[Request, Session], Awaitable[Response]]
ActionHandler = Callable[[Request, Session, dict[str, str]], Awaitable[Response]]


class FormError(Exception):
    pass


class WebUI:
    """Builds the UI app for a running :class:`~segue.app.Segue`."""

    def __init__(self, segue: Segue, admin_token: str) -> None:
        self.segue = segue
        self.signer = SessionSigner(admin_token)
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["time"] = _format_time

    def app(self) -> Starlette:
        routes = [
            Route("/", self.home, methods=["GET"]),
            Route(PREFIX, self.home, methods=["GET"]),
            Route(f"{PREFIX}/", self.home, methods=["GET"]),
            Route(SIGN_IN, self.sign_in_page, methods=["GET"]),
            Route(SIGN_IN, self.sign_in, methods=["POST"]),
            Route(f"{PREFIX}/sign-out", self.action(self.sign_out), methods=["POST"]),
            Route(f"{PREFIX}/sources", self.page(self.sources_page), methods=["GET"]),
            Route(f"{PREFIX}/sources", self.action(self.create_source), methods=["POST"]),
            Route(f"{PREFIX}/sources/{{name}}", self.page(self.source_page), methods=["GET"]),
            Route(
                f"{PREFIX}/sources/{{name}}/rotate",
                self.action(self.rotate_key),
                methods=["POST"],
            ),
            Route(
                f"{PREFIX}/sources/{{name}}/enabled",
                self.action(self.set_enabled),
                methods=["POST"],
            ),
            Route(f"{PREFIX}/live", self.page(self.live_any), methods=["GET"]),
            Route(f"{PREFIX}/sources/{{name}}/live", self.page(self.live_page), methods=["GET"]),
            Route(f"{PREFIX}/sources/{{name}}/live.json", self.live_json, methods=["GET"]),
            Route(f"{PREFIX}/apps", self.page(self.apps_page), methods=["GET"]),
            Route(f"{PREFIX}/destinations", self.page(self.destinations_page), methods=["GET"]),
            *app_pages.routes(self),
            *destination_pages.routes(self),
            Mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        # one path, several Routes (a page and its form): a 405 names all their methods
        return Starlette(routes=routes, exception_handlers={405: allow_every_method(routes)})

    # -- sessions, CSRF, rendering -------------------------------------------------

    def session_of(self, request: Request) -> Session | None:
        return self.signer.load(request.cookies.get(COOKIE))

    def page(self, handler: PageHandler) -> Handler:
        """A GET page: without a session, 303 to the sign-in page (and back after)."""

        async def guarded(request: Request) -> Response:
            session = self.session_of(request)
            if session is None:
                return _redirect(f"{SIGN_IN}?next={quote(request.url.path)}")
            return await handler(request, session)

        return guarded

    def action(self, handler: ActionHandler) -> Handler:
        """A form POST: refused (403) without a session or without its CSRF token."""

        async def guarded(request: Request) -> Response:
            session = self.session_of(request)
            if session is None:
                return self.render(request, None, "error.html", 403, message="Sign in first.")
            try:
                form = await _form(request)
            except FormError as exc:
                return self.render(request, session, "error.html", 400, message=str(exc))
            submitted = form.get(FIELD) or request.headers.get(HEADER)
            if not csrf_ok(self.signer, session, submitted):
                return self.render(
                    request,
                    session,
                    "error.html",
                    403,
                    message="This form expired or did not come from segue. Reload and retry.",
                )
            return await handler(request, session, form)

        return guarded

    def render(
        self,
        request: Request,
        session: Session | None,
        template: str,
        status: int = 200,
        **context: Any,
    ) -> Response:
        html = self.env.get_template(template).render(
            request=request,
            signed_in=session is not None,
            csrf_field=FIELD,
            csrf_token=self.signer.csrf_token(session) if session else "",
            static=f"{PREFIX}/static",
            prefix=PREFIX,
            **context,
        )
        return Response(html, status, headers=_SECURITY_HEADERS, media_type="text/html")

    # -- sign-in ---------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        if self.session_of(request) is None:
            return _redirect(SIGN_IN)
        return _redirect(f"{PREFIX}/sources")

    async def sign_in_page(self, request: Request) -> Response:
        if self.session_of(request) is not None:
            return _redirect(_next(request.query_params.get("next")))
        return self.render(request, None, "sign_in.html", next=request.query_params.get("next"))

    async def sign_in(self, request: Request) -> Response:
        if not _same_origin(request):
            return self.render(request, None, "error.html", 403, message="Cross-site sign-in.")
        try:
            form = await _form(request)
        except FormError as exc:
            return self.render(request, None, "error.html", 400, message=str(exc))
        if not self.signer.token_matches(form.get("token", "")):
            await asyncio.sleep(0.25)  # no fast guessing
            return self.render(
                request,
                None,
                "sign_in.html",
                401,
                error="That is not this server's admin token.",
                next=form.get("next"),
            )
        _, cookie = self.signer.new()
        response = _redirect(_next(form.get("next")))
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=self.signer.max_age_s,
            path="/",
            httponly=True,
            samesite="strict",
            secure=self._https(request),
        )
        return response

    async def sign_out(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        self.signer.revoke(session)
        response = _redirect(SIGN_IN)
        response.delete_cookie(
            COOKIE, path="/", httponly=True, samesite="strict", secure=self._https(request)
        )
        return response

    def _https(self, request: Request) -> bool:
        if request.url.scheme == "https":
            return True
        forwarded = request.headers.get("x-forwarded-proto", "")
        return self.segue.config.trust_forwarded_for and forwarded.lower() == "https"

    # -- sources ---------------------------------------------------------------------

    async def sources_page(
        self, request: Request, session: Session, *, error: str | None = None, status: int = 200
    ) -> Response:
        store = self.segue.store
        sources = await store.list_sources()
        counts = [await store.count_events(s.id) for s in sources]
        return self.render(
            request,
            session,
            "sources.html",
            status,
            nav="sources",
            sources=list(zip(sources, counts, strict=True)),
            error=error,
            notice=_NOTICES.get(request.query_params.get("done", "")),
        )

    async def create_source(
        self, request: Request, session: Session, form: dict[str, str]
    ) -> Response:
        name = form.get("name", "").strip()
        if not name or not set(name) <= _NAME_CHARS:
            return await self.sources_page(
                request,
                session,
                error="A name is required: lower-case letters, digits, - and _.",
                status=400,
            )
        try:
            kind = SourceKind(form.get("kind", "standard"))
        except ValueError:
            return await self.sources_page(
                request, session, error="The kind is standard or stream.", status=400
            )
        try:
            await self.segue.store.create_source(name, new_write_key(), kind, None)
        except SourceExistsError as exc:
            return await self.sources_page(request, session, error=str(exc), status=409)
        self.segue.sources.invalidate()
        return _redirect(f"{PREFIX}/sources/{quote(name)}?done=created")

    async def _source(self, request: Request) -> Source | None:
        return await self.segue.store.get_source(request.path_params["name"])

    async def source_page(self, request: Request, session: Session) -> Response:
        source = await self._source(request)
        if source is None:
            return self._not_found(request, session)
        base = str(request.base_url).rstrip("/")
        host = base.split("://", 1)[1]
        scheme = "https" if self._https(request) else request.url.scheme
        return self.render(
            request,
            session,
            "source.html",
            nav="sources",
            source=source,
            count=await self.segue.store.count_events(source.id),
            notice=_NOTICES.get(request.query_params.get("done", "")),
            snippets=snippets(source.write_key, f"{scheme}://{host}"),
            destinations=[d for d in self.segue.catalog.destinations() if source.name in d.sources],
        )

    async def rotate_key(
        self, request: Request, session: Session, form: dict[str, str]
    ) -> Response:
        name = request.path_params["name"]
        source = await self.segue.store.update_source(name, write_key=new_write_key())
        if source is None:
            return self._not_found(request, session)
        self.segue.sources.invalidate()
        return _redirect(f"{PREFIX}/sources/{quote(name)}?done=rotated")

    async def set_enabled(
        self, request: Request, session: Session, form: dict[str, str]
    ) -> Response:
        name = request.path_params["name"]
        enabled = form.get("enabled") == "true"
        source = await self.segue.store.update_source(name, enabled=enabled)
        if source is None:
            return self._not_found(request, session)
        self.segue.sources.invalidate()
        done = "enabled" if enabled else "disabled"
        return _redirect(f"{PREFIX}/sources/{quote(name)}?done={done}")

    # -- live events -----------------------------------------------------------------

    async def live_any(self, request: Request, session: Session) -> Response:
        """The nav's "Live events": the first source's feed (each source has its own)."""
        sources = await self.segue.store.list_sources()
        if not sources:
            return _redirect(f"{PREFIX}/sources")
        return _redirect(f"{PREFIX}/sources/{quote(sources[0].name)}/live")

    async def live_page(self, request: Request, session: Session) -> Response:
        source = await self._source(request)
        if source is None:
            return self._not_found(request, session)
        events = await self.segue.store.list_events(
            EventQuery(source_id=source.id, limit=LIVE_PAGE)
        )
        log = self.segue.tracking.rejections
        rejections = log.for_source(source.id)
        since = int(time.time() * 1000) - UNKNOWN_KEY_WINDOW_MS
        unknown = [e for e in log.unknown_source() if e.time_ms >= since]
        return self.render(
            request,
            session,
            "live.html",
            nav="live",
            source=source,
            events=[_live_row(e) for e in events],
            latest=events[0].id if events else 0,
            rejections=[_rejection_row(e) for e in rejections],
            rejected_latest=rejections[0].seq if rejections else log.last_seq,
            unknown_count=len(unknown),
            unknown_latest=_rejection_row(unknown[0]) if unknown else None,
            unknown_minutes=UNKNOWN_KEY_WINDOW_MS // 60_000,
            others=[s.name for s in await self.segue.store.list_sources() if s.id != source.id],
        )

    async def live_json(self, request: Request) -> Response:
        """The newest events of a source after ``after`` (an event id), for polling."""
        if self.session_of(request) is None:
            return JSONResponse({"message": "sign in first"}, status_code=401)
        source = await self._source(request)
        if source is None:
            return JSONResponse({"message": "no such source"}, status_code=404)
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            return JSONResponse({"message": "`after` must be an event id"}, status_code=400)
        events = await self.segue.store.list_events(
            EventQuery(source_id=source.id, limit=LIVE_PAGE)
        )
        rows = [_live_row(e) for e in events if e.id > after]
        body: dict[str, Any] = {"events": rows}
        # recent ingest rejections (in this process's memory) after a `rejected_after` cursor;
        # the key is there when asked for or when there are any
        cursor = request.query_params.get("rejected_after")
        try:
            rejected_after = int(cursor or "0")
        except ValueError:
            return JSONResponse({"message": "`rejected_after` must be a number"}, status_code=400)
        rejected = self.segue.tracking.rejections.for_source(source.id, rejected_after)
        if rejected or cursor is not None:
            body["rejections"] = [_rejection_row(e) for e in rejected]
        return JSONResponse(body, headers={"cache-control": "no-store"})

    # -- apps and destinations -------------------------------------------------------

    async def apps_page(self, request: Request, session: Session) -> Response:
        catalog = self.segue.catalog
        used: dict[str, list[str]] = {}
        for destination in catalog.destinations():
            if destination.app:
                used.setdefault(destination.app, []).append(destination.name)
        return self.render(
            request, session, "apps.html", nav="apps", apps=catalog.apps(), used=used
        )

    async def destinations_page(self, request: Request, session: Session) -> Response:
        # only names, sources and state: setting values (sensitive or not) stay out of HTML
        return self.render(
            request,
            session,
            "destinations.html",
            nav="destinations",
            destinations=self.segue.catalog.destinations(),
        )

    def _not_found(self, request: Request, session: Session) -> Response:
        return self.render(request, session, "error.html", 404, message="Nothing here.")


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})


def _next(target: str | None) -> str:
    """Where to go after signing in: only a UI path of this server (no open redirect)."""
    if target and target.startswith(f"{PREFIX}/") and "\\" not in target and SIGN_IN not in target:
        return target
    return f"{PREFIX}/sources"


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise FormError("Forms are posted as application/x-www-form-urlencoded.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError("This form is too large.")
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        raise FormError("This form could not be read.") from None


def _live_row(event: StoredEvent) -> dict[str, Any]:
    data = event_json(event)
    payload = data["event"] if isinstance(data["event"], dict) else {}
    name = payload.get("event") or payload.get("name") or payload.get("groupId") or ""
    return {
        "id": event.id,
        "type": event.type,
        "received_at_ms": event.received_at_ms,
        "time": _format_time(event.received_at_ms),
        "user": event.user_id or event.anonymous_id or "",
        "user_kind": "userId" if event.user_id else "anonymousId",
        "name": str(name),
        "json": json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True),
    }


def _rejection_row(entry: RejectionEntry) -> dict[str, Any]:
    return {**entry.as_json(), "time": _format_time(entry.time_ms)}


def _format_time(ms: int) -> str:
    import datetime as dt

    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} UTC"
