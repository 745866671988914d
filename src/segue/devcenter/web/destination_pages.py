"""Developer Center pages for destinations: configure, Event Delivery, retry, replay.

Every page works on the objects the admin API uses: destinations are saved through
``segue.catalog.save_destination`` (sensitive values come back masked, and the mask
posted back means "unchanged"), the Event Delivery numbers are the admin API's
``/destinations/{name}/stats`` document, retries and replays go through the store and
``segue.replays`` like ``/deliveries/retry`` and ``/replays``.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from segue.delivery.replay import ReplayError, parse_time, public
from segue.destinations.catalog import CatalogError
from segue.destinations.models import App, Destination
from segue.destinations.settings import MASK, SettingField
from segue.devcenter.delivery_api import DeliveryAPI
from segue.devcenter.responses import JSONResponse
from segue.store import DeliveryState, RetryFilter
from segue.timeutil import now_ms

if TYPE_CHECKING:
    from segue.devcenter.web.app import WebUI
    from segue.devcenter.web.session import Session

PREFIX = "/ui/destinations"
WINDOWS = ("5m", "1h", "24h", "7d")
CHART_W, CHART_H = 720, 220
PAD_L, PAD_R, PAD_T, PAD_B = 48, 8, 10, 28
_NOTICES = {
    "created": "Destination saved: matching events are delivered to it now.",
    "saved": "Destination saved.",
}


@dataclass(frozen=True, slots=True)
class FieldView:
    """One settings input: what the form shows (sensitive values only as the mask)."""

    field: SettingField
    value: str
    input_type: str


def routes(ui: WebUI) -> list[Route]:
    """The destination pages' routes (mounted by WebUI.app)."""
    pages = DestinationPages(ui)
    return [
        Route(f"{PREFIX}/new", ui.page(pages.new_page), methods=["GET"]),
        Route(f"{PREFIX}/new", ui.action(pages.create), methods=["POST"]),
        Route(f"{PREFIX}/{{name}}", ui.page(pages.delivery_page), methods=["GET"]),
        Route(f"{PREFIX}/{{name}}/edit", ui.page(pages.edit_page), methods=["GET"]),
        Route(f"{PREFIX}/{{name}}/edit", ui.action(pages.update), methods=["POST"]),
        Route(f"{PREFIX}/{{name}}/retry", ui.action(pages.retry), methods=["POST"]),
        Route(f"{PREFIX}/{{name}}/replays", ui.action(pages.start_replay), methods=["POST"]),
        Route(f"{PREFIX}/{{name}}/replays/{{id}}.json", pages.replay_json, methods=["GET"]),
    ]


class DestinationPages:
    def __init__(self, ui: WebUI) -> None:
        self.ui = ui
        segue = ui.segue
        self.api = DeliveryAPI(segue.store, segue.catalog, segue.replays, segue.wake_worker)

    # -- configure -------------------------------------------------------------------
    async def new_page(self, request: Request, session: Session) -> Response:
        app = self.ui.segue.catalog.app(request.query_params.get("app", ""))
        return await self._form_page(request, session, app=app, current=None)

    async def edit_page(self, request: Request, session: Session) -> Response:
        destination = self._destination(request)
        if destination is None:
            return self.ui._not_found(request, session)
        app = self.ui.segue.catalog.app(destination.app) if destination.app else None
        return await self._form_page(request, session, app=app, current=destination)

    async def create(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        app = self.ui.segue.catalog.app(form.get("app", ""))
        if app is None:
            return await self._form_page(
                request, session, app=None, current=None, error="Pick an app.", status=400
            )
        body = await self._body(form, app)
        body["name"] = form.get("name", "").strip()
        body["app"] = app.name
        try:
            destination = await self.ui.segue.catalog.save_destination(body)
        except ValueError as exc:  # CatalogError, or a URL the catalog could not parse
            return await self._form_page(
                request, session, app=app, current=None, form=form, error=str(exc), status=400
            )
        return _redirect(f"{PREFIX}/{quote(destination.name)}?done=created")

    async def update(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        current = self._destination(request)
        if current is None:
            return self.ui._not_found(request, session)
        catalog = self.ui.segue.catalog
        app = catalog.app(current.app) if current.app else None
        body = await self._body(form, app, current)
        try:
            destination = await catalog.save_destination(body, replace=current.name)
        except ValueError as exc:
            status = exc.status if isinstance(exc, CatalogError) else 400
            return await self._form_page(
                request, session, app=app, current=current, form=form, error=str(exc),
                status=status,
            )  # fmt: skip
        return _redirect(f"{PREFIX}/{quote(destination.name)}?done=saved")

    async def _body(
        self, form: dict[str, str], app: App | None, current: Destination | None = None
    ) -> dict[str, Any]:
        sources = [s.name for s in await self.ui.segue.store.list_sources()]
        fields = (
            app.settings if app else self.ui.segue.catalog.fields_of(current) if current else ()
        )
        settings: dict[str, Any] = {}
        for field in fields:
            value = form.get(f"setting:{field.key}", "")
            if field.sensitive:
                value = value.strip()
            if value != "":
                settings[field.key] = value
        if app is None and current is not None:
            # an inline endpoint's settings outside the form: the mask keeps them as they are
            shown = {f.key for f in fields}
            settings.update({k: MASK for k in current.settings if k not in shown})
        return {
            "sources": [s for s in sources if form.get(f"source:{s}") == "on"],
            "settings": settings,
            "enabled": form.get("enabled") == "true",
        }

    def _fields(self, app: App | None, current: Destination | None) -> tuple[SettingField, ...]:
        if app is not None:
            return app.settings
        return self.ui.segue.catalog.fields_of(current) if current else ()

    async def _form_page(
        self,
        request: Request,
        session: Session,
        *,
        app: App | None,
        current: Destination | None,
        form: dict[str, str] | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        catalog = self.ui.segue.catalog
        fields = self._fields(app, current)
        stored = dict(current.settings) if current else {}
        views = []
        for field in fields:
            if form is not None:
                value = form.get(f"setting:{field.key}", "")
                # a secret typed into a refused form is not echoed: only the mask is
                if field.sensitive and value != MASK:
                    value = ""
            else:
                raw = stored.get(field.key)
                if field.sensitive:
                    value = MASK if raw not in (None, "") else ""
                else:
                    value = "" if raw is None else raw if isinstance(raw, str) else json.dumps(raw)
            views.append(FieldView(field, value, "password" if field.sensitive else "text"))
        sources = [s.name for s in await self.ui.segue.store.list_sources()]
        if form is not None:
            chosen = {s for s in sources if form.get(f"source:{s}") == "on"}
            enabled = form.get("enabled") == "true"
            name = form.get("name", "")
        else:
            chosen = set(current.sources) if current else set()
            enabled = current.enabled if current else True
            name = current.name if current else ""
        return self.ui.render(
            request,
            session,
            "destination_form.html",
            status,
            nav="destinations",
            apps=catalog.apps(),
            app=app,
            current=current,
            fields=views,
            sources=sources,
            chosen=chosen,
            enabled=enabled,
            name=name,
            form_error=error,
        )

    # -- Event Delivery --------------------------------------------------------------
    async def delivery_page(self, request: Request, session: Session) -> Response:
        destination = self._destination(request)
        if destination is None:
            return self.ui._not_found(request, session)
        window = request.query_params.get("window", "1h")
        if window not in WINDOWS:
            window = "1h"
        stats = await self.api.stats_doc(destination, window)
        reasons = [{**r, "panes": _panes(r.get("sample"))} for r in stats.get("reasons", [])]
        replay = None
        if replay_id := request.query_params.get("replay"):
            replay = await self._replay_doc(destination, replay_id)
        notice = _NOTICES.get(request.query_params.get("done", ""))
        if (retried := request.query_params.get("retried")) is not None and retried.isdigit():
            notice = f"{retried} failed deliveries queued for retry."
        return self.ui.render(
            request,
            session,
            "destination_delivery.html",
            nav="destinations",
            destination=destination,
            window=window,
            windows=WINDOWS,
            stats=stats,
            chart=_chart(stats),
            reasons=reasons,
            replay=replay,
            replay_error=request.query_params.get("replay_error"),
            notice=notice,
        )

    async def retry(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        destination = self._destination(request)
        if destination is None:
            return self.ui._not_found(request, session)
        retried = await self.ui.segue.store.retry_deliveries(
            RetryFilter(
                destination_id=destination.id,
                states=(DeliveryState.DISCARDED, DeliveryState.EXPIRED),
                reason=None,
                since_ms=None,
            ),
            now_ms(),
        )
        if retried:
            self.ui.segue.wake_worker()
        window = form.get("window", "1h") if form.get("window") in WINDOWS else "1h"
        return _redirect(f"{PREFIX}/{quote(destination.name)}?window={window}&retried={retried}")

    async def start_replay(
        self, request: Request, session: Session, form: dict[str, str]
    ) -> Response:
        destination = self._destination(request)
        if destination is None:
            return self.ui._not_found(request, session)
        base = f"{PREFIX}/{quote(destination.name)}"
        source = await self.ui.segue.store.get_source(form.get("source", ""))
        problem = None
        if source is None or source.name not in destination.sources:
            problem = "Pick one of the destination's sources."
        elif not destination.enabled:
            problem = "The destination is disabled: enable it before replaying."
        if problem is None and source is not None:
            try:
                doc = await self.ui.segue.replays.start(
                    source=(source.name, source.id),
                    destination=(destination.name, destination.id),
                    since_ms=parse_time(form.get("since", "").strip(), "since"),
                    until_ms=parse_time(form.get("until", "").strip(), "until"),
                )
            except ReplayError as exc:
                problem = str(exc)
            else:
                return _redirect(f"{base}?replay={quote(doc['id'])}#replay")
        return _redirect(f"{base}?{urlencode({'replay_error': problem})}#replay")

    async def replay_json(self, request: Request) -> Response:
        """A replay's progress for the page's <progress> (polled; needs the UI session)."""
        if self.ui.session_of(request) is None:
            return JSONResponse({"message": "sign in first"}, status_code=401)
        destination = self._destination(request)
        if destination is None:
            return JSONResponse({"message": "no such destination"}, status_code=404)
        doc = await self._replay_doc(destination, request.path_params["id"])
        if doc is None:
            return JSONResponse({"message": "no such replay"}, status_code=404)
        return JSONResponse(doc, headers={"cache-control": "no-store"})

    async def _replay_doc(self, destination: Destination, replay_id: str) -> dict[str, Any] | None:
        doc = await self.ui.segue.replays.get(replay_id)
        if doc is None or doc.get("destination_id") != destination.id:
            return None
        return {**public(doc), "progress": await self.ui.segue.replays.progress(doc)}

    def _destination(self, request: Request) -> Destination | None:
        return self.ui.segue.catalog.destination(request.path_params["name"])


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})


def _pretty(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict) and isinstance(value.get("body"), str):
        # a JSON body reads better parsed
        with contextlib.suppress(ValueError):
            value = {**value, "body": json.loads(value["body"])}
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _panes(sample: Any) -> list[tuple[str, str]]:
    if not isinstance(sample, dict):
        return []
    return [
        ("You sent", _pretty(sample.get("you_sent"))),
        ("Request to destination", _pretty(sample.get("request"))),
        ("Response from destination", _pretty(sample.get("response"))),
    ]


def _chart(stats: dict[str, Any]) -> dict[str, Any]:
    """Geometry of the stacked bar chart (succeeded below, failed above) per bucket."""
    buckets = stats.get("buckets", [])
    totals = [b["succeeded"] + b["discarded"] + b["expired"] for b in buckets]
    top = max([*totals, 1])
    plot_w, plot_h = CHART_W - PAD_L - PAD_R, CHART_H - PAD_T - PAD_B
    slot = plot_w / max(len(buckets), 1)
    width = max(slot * 0.8, 1.0)
    bars = []
    for index, bucket in enumerate(buckets):
        ok = bucket["succeeded"]
        failed = bucket["discarded"] + bucket["expired"]
        ok_h = ok / top * plot_h
        failed_h = failed / top * plot_h
        x = PAD_L + index * slot + (slot - width) / 2
        label = _clock(bucket["start"], stats.get("bucket_ms", 0))
        bars.append(
            {
                "x": round(x, 2),
                "w": round(width, 2),
                "ok_y": round(PAD_T + plot_h - ok_h, 2),
                "ok_h": round(ok_h, 2),
                "failed_y": round(PAD_T + plot_h - ok_h - failed_h, 2),
                "failed_h": round(failed_h, 2),
                "title": f"{label}: {ok} delivered, {failed} failed",
                "empty": ok == 0 and failed == 0,
            }
        )
    ticks = []
    if buckets:
        for index in sorted({0, len(buckets) // 2, len(buckets) - 1}):
            ticks.append(
                {
                    "x": round(PAD_L + index * slot + slot / 2, 2),
                    "label": _clock(buckets[index]["start"], stats.get("bucket_ms", 0)),
                }
            )
    return {
        "w": CHART_W,
        "h": CHART_H,
        "left": PAD_L,
        "right": CHART_W - PAD_R,
        "top": PAD_T,
        "base": PAD_T + plot_h,
        "mid": round(PAD_T + plot_h / 2, 2),
        "max": top,
        "half": top / 2,
        "bars": bars,
        "ticks": ticks,
        "any": any(totals),
    }


def _clock(start: str | None, bucket_ms: int) -> str:
    """``2026-11-22T18:05:00.000Z`` → ``18:05`` (or ``11-22 18:00`` for day-long windows)."""
    if not start or "T" not in start:
        return start or ""
    day, time = start.split("T", 1)
    hm = time[:8] if bucket_ms < 60_000 else time[:5]
    return f"{day[5:]} {hm}" if bucket_ms >= 3_600_000 else hm
