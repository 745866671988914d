"""Admin API for apps and destinations (CRUD by name), the settings builder's key,
and Send Test Event / the test suite for both.

Sensitive setting values never leave segue: every response shows them masked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from segue.delivery.testing import (
    SendTestError,
    SendTestEvent,
    app_test_destination,
    destination_with_settings,
    pick_test_event,
)
from segue.destinations.catalog import Catalog, CatalogError
from segue.destinations.models import App, Destination
from segue.destinations.settings import SettingsError, key_from_label, masked, sensitive_keys
from segue.devcenter.responses import Handler, JSONResponse, checked_body, error


def app_json(app: App, used_by: list[str]) -> dict[str, Any]:
    return {
        "id": app.id,
        "name": app.name,
        "endpoint": app.endpoint,
        "settings": [f.as_json() for f in app.settings],
        "destinations": used_by,
        "created_at_ms": app.created_at_ms,
    }


def destination_json(catalog: Catalog, destination: Destination) -> dict[str, Any]:
    fields = catalog.fields_of(destination)
    return {
        "id": destination.id,
        "name": destination.name,
        "app": destination.app,
        "endpoint": destination.endpoint,
        "effective_endpoint": catalog.endpoint_of(destination),
        "sources": list(destination.sources),
        "settings": masked(destination.settings, sensitive_keys(fields)),
        "fields": [f.as_json() for f in fields],
        "enabled": destination.enabled,
        "options": destination.options.doc(),
        "created_at_ms": destination.created_at_ms,
    }


class CatalogAPI:
    def __init__(self, catalog: Catalog, sender: SendTestEvent) -> None:
        self.catalog = catalog
        self.sender = sender

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("/apps", "GET", self.list_apps),
            ("/apps", "POST", self.create_app),
            ("/apps/{name}", "GET", self.get_app),
            ("/apps/{name}", "PATCH", self.update_app),
            ("/apps/{name}", "DELETE", self.delete_app),
            ("/apps/{name}/test", "POST", self.test_app),
            ("/apps/{name}/test/suite", "POST", self.test_app_suite),
            ("/settings/key", "POST", self.settings_key),
            ("/destinations", "GET", self.list_destinations),
            ("/destinations", "POST", self.create_destination),
            ("/destinations/{name}", "GET", self.get_destination),
            ("/destinations/{name}", "PATCH", self.update_destination),
            ("/destinations/{name}", "DELETE", self.delete_destination),
            ("/destinations/{name}/test", "POST", self.test_destination),
            ("/destinations/{name}/test/suite", "POST", self.test_destination_suite),
        ]

    # -- apps ----------------------------------------------------------------
    def _app_json(self, app: App) -> dict[str, Any]:
        users = [d.name for d in self.catalog.destinations() if d.app == app.name]
        return app_json(app, users)

    async def list_apps(self, request: Request) -> Response:
        return JSONResponse({"apps": [self._app_json(a) for a in self.catalog.apps()]})

    async def create_app(self, request: Request) -> Response:
        body = await checked_body(request, "AppCreate")
        try:
            app = await self.catalog.save_app(body)
        except ValueError as exc:  # CatalogError, or a URL the catalog could not parse
            return error(_status(exc), str(exc))
        return JSONResponse(self._app_json(app), status_code=201)

    async def get_app(self, request: Request) -> Response:
        name = request.path_params["name"]
        app = self.catalog.app(name)
        if app is None:
            return error(404, f"no app named {name!r}")
        return JSONResponse(self._app_json(app))

    async def update_app(self, request: Request) -> Response:
        body = await checked_body(request, "AppPatch")
        try:
            app = await self.catalog.save_app(body, replace=request.path_params["name"])
        except ValueError as exc:  # CatalogError, or a URL the catalog could not parse
            return error(_status(exc), str(exc))
        return JSONResponse(self._app_json(app))

    async def delete_app(self, request: Request) -> Response:
        try:
            await self.catalog.delete_app(request.path_params["name"])
        except ValueError as exc:  # CatalogError, or a URL the catalog could not parse
            return error(_status(exc), str(exc))
        return Response(status_code=204)

    async def settings_key(self, request: Request) -> Response:
        body = await checked_body(request, "SettingKeyRequest")
        label: str = body["label"]
        try:
            return JSONResponse({"label": label.strip(), "key": key_from_label(label)})
        except SettingsError as exc:
            return error(400, str(exc))

    # -- destinations --------------------------------------------------------
    async def list_destinations(self, request: Request) -> Response:
        destinations = self.catalog.destinations()
        return JSONResponse(
            {"destinations": [destination_json(self.catalog, d) for d in destinations]}
        )

    async def create_destination(self, request: Request) -> Response:
        body = _whole_numbers(await checked_body(request, "DestinationCreate"))
        try:
            destination = await self.catalog.save_destination(body)
        except ValueError as exc:  # CatalogError, or a URL the catalog could not parse
            return error(_status(exc), str(exc))
        return JSONResponse(destination_json(self.catalog, destination), status_code=201)

    async def get_destination(self, request: Request) -> Response:
        name = request.path_params["name"]
        destination = self.catalog.destination(name)
        if destination is None:
            return error(404, f"no destination named {name!r}")
        return JSONResponse(destination_json(self.catalog, destination))

    async def update_destination(self, request: Request) -> Response:
        body = _whole_numbers(await checked_body(request, "DestinationPatch"))
        try:
            destination = await self.catalog.save_destination(
                body, replace=request.path_params["name"]
            )
        except ValueError as exc:  # CatalogError, or a URL the catalog could not parse
            return error(_status(exc), str(exc))
        return JSONResponse(destination_json(self.catalog, destination))

    async def delete_destination(self, request: Request) -> Response:
        try:
            await self.catalog.delete_destination(request.path_params["name"])
        except ValueError as exc:  # CatalogError, or a URL the catalog could not parse
            return error(_status(exc), str(exc))
        return Response(status_code=204)

    # -- Send Test Event and the suite ------------------------------------------
    async def test_app(self, request: Request) -> Response:
        return await self._test(request, self._app_target, suite=False)

    async def test_app_suite(self, request: Request) -> Response:
        return await self._test(request, self._app_target, suite=True)

    async def test_destination(self, request: Request) -> Response:
        return await self._test(request, self._destination_target, suite=False)

    async def test_destination_suite(self, request: Request) -> Response:
        return await self._test(request, self._destination_target, suite=True)

    def _app_target(self, name: str, settings: object) -> Destination:
        app = self.catalog.app(name)
        if app is None:
            raise CatalogError(f"no app named {name!r}", 404)
        return app_test_destination(app, settings)

    def _destination_target(self, name: str, settings: object) -> Destination:
        destination = self.catalog.destination(name)
        if destination is None:
            raise CatalogError(f"no destination named {name!r}", 404)
        return destination_with_settings(destination, self.catalog.fields_of(destination), settings)

    async def _test(
        self, request: Request, target: Callable[[str, object], Destination], *, suite: bool
    ) -> Response:
        body = await checked_body(
            request, "SuiteRequest" if suite else "TestRequest", empty_ok=suite
        )
        try:
            destination = target(request.path_params["name"], body.get("settings"))
            if suite:
                return JSONResponse({"results": await self.sender.suite(destination)})
            event = pick_test_event(body)
        except (CatalogError, SendTestError) as exc:
            return error(_status(exc), str(exc))
        return JSONResponse(await self.sender.send(destination, event))


def _whole_numbers(body: dict[str, Any]) -> dict[str, Any]:
    """JSON has no integers apart: ``32.0`` is the integer 32, as the document says."""
    options = body.get("options")
    if isinstance(options, dict) and isinstance(options.get("concurrency"), float):
        body["options"] = {**options, "concurrency": int(options["concurrency"])}
    return body


def _status(exc: ValueError) -> int:
    return exc.status if isinstance(exc, CatalogError) else 400
