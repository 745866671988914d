"""Developer Center pages for apps: edit, settings builder, Send Test Event, suite.

Everything goes through the same objects as the admin API (``segue.catalog.save_app``,
``SendTestEvent``), so the pages do nothing the API cannot. Forms are flat
``x-www-form-urlencoded`` posts (the settings builder's rows are ``setting-N-label``,
``setting-N-key``, ...); small scripts (``apps.js``, ``editor.js``) add the live key,
the live preview, row add/remove and the code editor's highlighting, and every page
also works without them.

Sensitive setting values typed for a test are used for that one request and never
rendered back: the inputs come back empty and the result shows them masked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from segue.delivery.testing import (
    SendTestError,
    SendTestEvent,
    app_test_destination,
    pick_test_event,
)
from segue.destinations.catalog import CatalogError
from segue.destinations.models import App
from segue.destinations.settings import API_KEY_FIELD, SettingField
from segue.spec.samples import SAMPLE_TYPES, sample

if TYPE_CHECKING:
    from segue.devcenter.web.app import WebUI
    from segue.devcenter.web.session import Session

MAX_ROWS = 50
RUNTIMES = ("python", "javascript")
STARTERS = {
    "python": (
        "def on_track(event, settings):\n"
        '    print("track", event.get("event"), "for", event.get("userId"))\n'
        '    return {"ok": True, "event": event.get("event")}\n'
        "\n"
        "\n"
        "def on_identify(event, settings):\n"
        '    print("identify", event.get("userId"))\n'
        '    return {"ok": True}\n'
    ),
    "javascript": (
        "async function onTrack(event, settings) {\n"
        '  console.log("track", event.event, "for", event.userId)\n'
        "  return { ok: true, event: event.event }\n"
        "}\n"
        "\n"
        "async function onIdentify(event, settings) {\n"
        '  console.log("identify", event.userId)\n'
        "  return { ok: true }\n"
        "}\n"
    ),
}
_NOTICES = {"created": "App created.", "saved": "App saved."}


@dataclass(slots=True)
class Row:
    """One row of the settings builder, as typed (the key may still be empty)."""

    label: str = ""
    key: str = ""
    description: str = ""
    required: bool = False
    sensitive: bool = False

    @classmethod
    def of(cls, f: SettingField) -> Row:
        return cls(f.label, f.key, f.description, f.required, f.sensitive)

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "label": self.label,
            "description": self.description,
            "required": self.required,
            "sensitive": self.sensitive,
        }
        if self.key:
            doc["key"] = self.key
        return doc


@dataclass(slots=True)
class Draft:
    """The edit form's values (from an app, or as posted)."""

    name: str = ""
    kind: str = "endpoint"
    endpoint: str = ""
    runtime: str = "python"
    code: str = ""
    rows: list[Row] | None = None

    @classmethod
    def of(cls, app: App) -> Draft:
        return cls(
            name=app.name,
            kind="function" if app.is_function else "endpoint",
            endpoint=app.endpoint or "",
            runtime=app.runtime or "python",
            code=app.code or "",
            rows=[Row.of(f) for f in app.settings if f != API_KEY_FIELD],
        )

    @classmethod
    def from_form(cls, form: dict[str, str]) -> Draft:
        rows = []
        for index in range(MAX_ROWS):
            prefix = f"setting-{index}-"
            if prefix + "label" not in form and prefix + "key" not in form:
                continue
            row = Row(
                label=form.get(prefix + "label", "").strip(),
                key=form.get(prefix + "key", "").strip(),
                description=form.get(prefix + "description", "").strip(),
                required=prefix + "required" in form,
                sensitive=prefix + "sensitive" in form,
            )
            if row.label or row.key or row.description:
                rows.append(row)
        runtime = form.get("runtime", "python")
        return cls(
            name=form.get("name", "").strip(),
            kind="function" if form.get("kind") == "function" else "endpoint",
            endpoint=form.get("endpoint", "").strip(),
            runtime=runtime if runtime in RUNTIMES else "python",
            code=form.get("code", "").replace("\r\n", "\n"),
            rows=rows,
        )

    def body(self) -> dict[str, Any]:
        """The JSON body for ``Catalog.save_app`` (the same as the admin API's)."""
        settings = [r.as_json() for r in self.rows or []]
        doc: dict[str, Any] = {"name": self.name, "settings": settings}
        if self.kind == "function":
            doc.update(code=self.code, runtime=self.runtime)
        else:
            doc["endpoint"] = self.endpoint or None
        return doc


class AppPages:
    def __init__(self, ui: WebUI) -> None:
        self.ui = ui
        self.catalog = ui.segue.catalog
        self.sender = SendTestEvent(ui.segue.deliverer, ui.segue.catalog)

    def routes(self) -> list[Route]:
        ui, prefix = self.ui, "/ui/apps"
        return [
            Route(f"{prefix}/new", ui.page(self.new_page), methods=["GET"]),
            Route(f"{prefix}/new", ui.action(self.create), methods=["POST"]),
            Route(f"{prefix}/{{name}}", ui.page(self.show_page), methods=["GET"]),
            Route(f"{prefix}/{{name}}/edit", ui.page(self.edit_page), methods=["GET"]),
            Route(f"{prefix}/{{name}}/edit", ui.action(self.update), methods=["POST"]),
            Route(f"{prefix}/{{name}}/test", ui.action(self.test), methods=["POST"]),
        ]

    # -- new / edit ----------------------------------------------------------
    def _edit(
        self,
        request: Request,
        session: Session,
        draft: Draft,
        *,
        app: App | None,
        error: str | None = None,
        status: int = 200,
        extra_row: bool = False,
    ) -> Response:
        rows = list(draft.rows or [])
        if extra_row or not rows:
            rows.append(Row())
        return self.ui.render(
            request,
            session,
            "app_edit.html",
            status,
            nav="apps",
            app=app,
            draft=draft,
            rows=rows,
            runtimes=RUNTIMES,
            starters=STARTERS,
            api_key=API_KEY_FIELD,
            error=error,
        )

    async def new_page(self, request: Request, session: Session) -> Response:
        draft = Draft(code=STARTERS["python"], rows=[])
        return self._edit(request, session, draft, app=None)

    async def edit_page(self, request: Request, session: Session) -> Response:
        app = self.catalog.app(request.path_params["name"])
        if app is None:
            return self._not_found(request, session)
        return self._edit(request, session, Draft.of(app), app=app)

    async def create(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        draft = Draft.from_form(form)
        if "add_row" in form:  # the no-script "Add setting" button
            return self._edit(request, session, draft, app=None, extra_row=True)
        try:
            app = await self.catalog.save_app(draft.body())
        except ValueError as exc:  # CatalogError, or a URL the catalog could not parse
            return self._edit(
                request, session, draft, app=None, error=str(exc), status=_status(exc)
            )
        return _redirect(f"/ui/apps/{quote(app.name)}?done=created")

    async def update(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        current = self.catalog.app(request.path_params["name"])
        if current is None:
            return self._not_found(request, session)
        draft = Draft.from_form(form)
        draft.name = current.name  # an app cannot be renamed
        if "add_row" in form:
            return self._edit(request, session, draft, app=current, extra_row=True)
        try:
            app = await self.catalog.save_app(draft.body(), replace=current.name)
        except ValueError as exc:
            return self._edit(
                request, session, draft, app=current, error=str(exc), status=_status(exc)
            )
        return _redirect(f"/ui/apps/{quote(app.name)}?done=saved")

    # -- the app page: Send Test Event and the suite ---------------------------
    def _show(
        self,
        request: Request,
        session: Session,
        app: App,
        *,
        type_: str = "track",
        event_text: str | None = None,
        values: dict[str, str] | None = None,
        result: dict[str, Any] | None = None,
        suite: list[dict[str, Any]] | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        samples = {t: _pretty(sample(t)) for t in SAMPLE_TYPES}
        sensitive = {f.key for f in app.settings if f.sensitive}
        shown = {k: v for k, v in (values or {}).items() if k not in sensitive}
        used_by = [d.name for d in self.catalog.destinations() if d.app == app.name]
        return self.ui.render(
            request,
            session,
            "app_show.html",
            status,
            nav="apps",
            app=app,
            used_by=used_by,
            types=SAMPLE_TYPES,
            samples=samples,
            type=type_,
            event_text=samples.get(type_, "") if event_text is None else event_text,
            values=shown,
            result=_view(result, app) if result is not None else None,
            suite=suite,
            error=error,
            notice=_NOTICES.get(request.query_params.get("done", "")),
        )

    async def show_page(self, request: Request, session: Session) -> Response:
        app = self.catalog.app(request.path_params["name"])
        if app is None:
            return self._not_found(request, session)
        return self._show(request, session, app)

    async def test(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        app = self.catalog.app(request.path_params["name"])
        if app is None:
            return self._not_found(request, session)
        type_ = form.get("type", "track")
        if type_ not in SAMPLE_TYPES:
            type_ = "track"
        event_text = form.get("event", "")
        values = {
            f.key: form[f"value-{f.key}"]
            for f in app.settings
            if form.get(f"value-{f.key}", "") != ""
        }

        def show(**context: Any) -> Response:
            return self._show(
                request, session, app, type_=type_, event_text=event_text, values=values, **context
            )

        try:
            destination = app_test_destination(app, values)
            if form.get("run") == "suite":
                return show(suite=await self.sender.suite(destination))
            event = pick_test_event({"event": _parse_event(event_text)})
        except (CatalogError, SendTestError) as exc:
            return show(error=str(exc), status=_status(exc))
        return show(result=await self.sender.send(destination, event))

    def _not_found(self, request: Request, session: Session) -> Response:
        return self.ui.render(request, session, "error.html", 404, message="No such app.")


def routes(ui: WebUI) -> list[Route]:
    """The app pages' routes (mounted by WebUI.app)."""
    return AppPages(ui).routes()


def _parse_event(text: str) -> object:
    if not text.strip():
        raise SendTestError("The event is empty: pick a type to load its sample.")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SendTestError(f"The event is not valid JSON: {exc}") from None


def _pretty(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _pretty_text(text: object) -> str:
    """A body for display: indented if it is JSON, else as it came."""
    if text is None:
        return ""
    if not isinstance(text, str):
        return _pretty(text)
    try:
        return _pretty(json.loads(text))
    except ValueError:
        return text


def _view(result: dict[str, Any], app: App) -> dict[str, Any]:
    """What the result panels show (everything already masked by ``as_json``)."""
    request = result.get("request") or {}
    response = result.get("response")
    view: dict[str, Any] = {
        "function": app.is_function,
        "outcome": result.get("outcome"),
        "status": result.get("status"),
        "reason": result.get("reason"),
        "message": result.get("message"),
        "error": result.get("error"),
        "duration_ms": result.get("duration_ms"),
    }
    if app.is_function:
        view["callback_return"] = _pretty(result.get("callback_return"))
        view["logs"] = result.get("logs") or ""
        view["settings"] = _pretty(request.get("settings") or {})
    else:
        view["request"] = {
            "line": f"{request.get('method', 'POST')} {request.get('url', '')}",
            "headers": sorted((request.get("headers") or {}).items()),
            "body": _pretty_text(request.get("body")),
        }
        view["response"] = (
            None
            if response is None
            else {
                "status": response.get("status"),
                "headers": sorted((response.get("headers") or {}).items()),
                "body": _pretty_text(response.get("body")),
            }
        )
    return view


def _status(exc: ValueError) -> int:
    return exc.status if isinstance(exc, CatalogError) else 400


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})
