"""The catalog: apps and destinations, validated, with secrets sealed at rest.

Workers and the ingest router read an in-memory copy (no store round trip per
event); every change goes through here, so the copy is refreshed on change, and on
a timer for changes made by other nodes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segue.delivery.endpoint import EndpointError, normalized_endpoint
from segue.destinations.models import APP, DESTINATION, App, DeliveryOptions, Destination
from segue.destinations.redaction import Redactor
from segue.destinations.secrets import SecretBox
from segue.destinations.settings import (
    MASK,
    SettingField,
    SettingsError,
    check_values,
    parse_fields,
    sensitive_keys,
)
from segue.store import Source, Store
from segue.timeutil import now_ms

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_APP_KEYS = {"name", "endpoint", "function", "code", "runtime", "settings"}
RUNTIMES = {".py": "python", ".js": "javascript"}
_DESTINATION_KEYS = {"name", "app", "endpoint", "sources", "settings", "enabled", "options"}


class CatalogError(ValueError):
    """Invalid input (400) — or, with ``status``, a conflict (409) or absence (404)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


_RESERVED_NAMES = frozenset({"new"})  # /ui/apps/new and /ui/destinations/new are forms


def check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name or not set(name) <= _NAME_CHARS:
        raise CatalogError(f"{what} `name` is required: lower-case letters, digits, - and _")
    if name in _RESERVED_NAMES:
        raise CatalogError(f"{name!r} is reserved: choose another {what} name")
    return name


def check_endpoint(endpoint: object) -> str:
    """The endpoint as it is stored and sent (IDNA host), or a CatalogError saying why not."""
    if not isinstance(endpoint, str):
        raise CatalogError("`endpoint` must be an http(s) URL")
    try:
        return normalized_endpoint(endpoint)
    except EndpointError as exc:
        raise CatalogError(f"`endpoint`: {exc}") from None


def _function_source(function: object, code: object, runtime: object) -> tuple[str, str]:
    """The code and runtime of a function app: posted ``code``, or read from ``function``."""
    if function is not None and not isinstance(function, str):
        raise CatalogError("`function` must be the path of a .py or .js file")
    if code is None:
        path = Path(str(function))
        try:
            code = path.read_text("utf-8")
        except OSError as exc:
            raise CatalogError(f"cannot read the function {function!r}: {exc.strerror}") from None
    if not isinstance(code, str) or not code.strip():
        raise CatalogError("`code` must be the function's source text")
    if runtime is None and function:
        runtime = RUNTIMES.get(Path(str(function)).suffix)
    if runtime not in ("python", "javascript"):
        raise CatalogError("`runtime` must be python or javascript (or name a .py / .js file)")
    return code, str(runtime)


class Catalog:
    def __init__(
        self,
        store: Store,
        secrets: SecretBox,
        *,
        max_age: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._max_age = max_age
        self._clock = clock
        self._apps: dict[str, App] = {}
        self._destinations: dict[str, Destination] = {}
        self._by_id: dict[str, Destination] = {}
        self._by_source: dict[str, tuple[Destination, ...]] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()
        self.listeners: list[Callable[[], None]] = []

    # -- reading -------------------------------------------------------------
    async def refresh(self) -> None:
        async with self._lock:
            apps = {d["name"]: App.from_doc(d) for d in await self._store.list_objects(APP)}
            destinations = {
                d["name"]: self._destination_from_doc(d, apps)
                for d in await self._store.list_objects(DESTINATION)
            }
            by_source: dict[str, list[Destination]] = {}
            for destination in destinations.values():
                if destination.enabled:
                    for source in destination.sources:
                        by_source.setdefault(source, []).append(destination)
            self._apps, self._destinations = apps, destinations
            self._by_id = {d.id: d for d in destinations.values()}
            self._by_source = {k: tuple(v) for k, v in by_source.items()}
            self._loaded_at = self._clock()
        for listener in self.listeners:
            listener()

    async def refresh_if_stale(self) -> None:
        if self._clock() - self._loaded_at > self._max_age:
            await self.refresh()

    def apps(self) -> list[App]:
        return sorted(self._apps.values(), key=lambda a: a.name)

    def app(self, name: str) -> App | None:
        return self._apps.get(name)

    def destinations(self) -> list[Destination]:
        return sorted(self._destinations.values(), key=lambda d: d.name)

    def destination(self, name: str) -> Destination | None:
        return self._destinations.get(name)

    def destination_by_id(self, destination_id: str) -> Destination | None:
        return self._by_id.get(destination_id)

    def fields_of(self, destination: Destination) -> tuple[SettingField, ...]:
        app = self._apps.get(destination.app) if destination.app else None
        return app.settings if app else parse_fields([])

    def endpoint_of(self, destination: Destination) -> str | None:
        if destination.endpoint:
            return destination.endpoint
        app = self._apps.get(destination.app) if destination.app else None
        return app.endpoint if app else None

    def redactor(self, destination: Destination) -> Redactor:
        """Masks the destination's sensitive values in whatever a call printed or returned."""
        return Redactor.for_settings(destination.settings, self.sensitive_keys(destination))

    def sensitive_keys(self, destination: Destination) -> frozenset[str]:
        """Keys whose values must never be shown (masked by key, whatever their type)."""
        return sensitive_keys(self.fields_of(destination))

    def route(self, source: Source, message: dict[str, Any]) -> tuple[str, ...]:
        """Destination ids for an event, honouring its ``integrations`` object."""
        candidates = self._by_source.get(source.name)
        if not candidates:
            return ()
        integrations = message.get("integrations")
        if not integrations:
            return tuple(d.id for d in candidates)
        default = integrations.get("All", True) is not False
        chosen = []
        for destination in candidates:
            flag = integrations.get(destination.name)
            if flag is None and destination.app:
                flag = integrations.get(destination.app)
            if flag is None:
                flag = default
            if flag is not False:
                chosen.append(destination.id)
        return tuple(chosen)

    # -- apps ----------------------------------------------------------------
    async def save_app(self, body: dict[str, Any], *, replace: str | None = None) -> App:
        """Create (``replace`` None) or update the app named ``replace`` from JSON input."""
        if unknown := set(body) - _APP_KEYS:
            raise CatalogError(f"unknown field(s): {', '.join(sorted(unknown))}")
        current = self._apps.get(replace) if replace else None
        if replace and current is None:
            raise CatalogError(f"no app named {replace!r}", 404)
        old = current.doc() if current else {}
        if body.get("endpoint"):  # switching to an endpoint drops the function
            old.update(function=None, code=None, runtime=None)
        elif body.get("code") or body.get("function"):
            old.update(endpoint=None)
            if body.get("function") and not body.get("code"):
                old.update(code=None)  # read the (new) file again
        merged = {**old, **body}
        name = check_name(merged.get("name"), "app")
        if current is None and name in self._apps:
            raise CatalogError(f"an app named {name!r} exists", 409)
        if current is not None and name != current.name:
            raise CatalogError("an app cannot be renamed")
        endpoint, function, code = (
            merged.get("endpoint"),
            merged.get("function"),
            merged.get("code"),
        )
        if endpoint is not None:
            endpoint = check_endpoint(endpoint)
        if (function or code) and endpoint:
            raise CatalogError("an app has an `endpoint` or a `function`, not both")
        if not (endpoint or function or code):
            raise CatalogError("an app needs an `endpoint`, or a `function` (or its `code`)")
        runtime = None
        if function or code:
            code, runtime = _function_source(function, code, merged.get("runtime"))
        try:
            fields = parse_fields(merged.get("settings"))
        except SettingsError as exc:
            raise CatalogError(str(exc)) from None
        app = App(
            id=current.id if current else f"app_{uuid.uuid4().hex[:16]}",
            name=name,
            endpoint=endpoint,
            function=function,
            code=code,
            runtime=runtime,
            settings=fields,
            created_at_ms=current.created_at_ms if current else now_ms(),
        )
        await self._store.put_object(APP, name, app.doc())
        await self.refresh()
        return app

    async def delete_app(self, name: str) -> None:
        if name not in self._apps:
            raise CatalogError(f"no app named {name!r}", 404)
        users = [d.name for d in self._destinations.values() if d.app == name]
        if users:
            raise CatalogError(f"the app is used by destination(s) {', '.join(users)}", 409)
        await self._store.delete_object(APP, name)
        await self.refresh()

    # -- destinations --------------------------------------------------------
    async def save_destination(
        self, body: dict[str, Any], *, replace: str | None = None
    ) -> Destination:
        if unknown := set(body) - _DESTINATION_KEYS:
            raise CatalogError(f"unknown field(s): {', '.join(sorted(unknown))}")
        current = self._destinations.get(replace) if replace else None
        if replace and current is None:
            raise CatalogError(f"no destination named {replace!r}", 404)
        name = check_name(body.get("name", current.name if current else None), "destination")
        if current is None and name in self._destinations:
            raise CatalogError(f"a destination named {name!r} exists", 409)
        if current is not None and name != current.name:
            raise CatalogError("a destination cannot be renamed")
        app_name = body.get("app", current.app if current else None)
        endpoint = body.get("endpoint", current.endpoint if current else None)
        app = self._check_app_or_endpoint(app_name, endpoint)
        if endpoint is not None:
            endpoint = check_endpoint(endpoint)
        sources = await self._check_sources(body.get("sources", current.sources if current else []))
        fields = app.settings if app else parse_fields([])
        values = self._merge_settings(body.get("settings"), current, fields, strict=app is not None)
        enabled = body.get("enabled", current.enabled if current else True)
        if not isinstance(enabled, bool):
            raise CatalogError("`enabled` must be true or false")
        try:
            options = (
                DeliveryOptions.from_doc(body["options"])
                if "options" in body
                else (current.options if current else DeliveryOptions())
            )
        except SettingsError as exc:
            raise CatalogError(str(exc)) from None
        destination = Destination(
            id=current.id if current else f"dst_{uuid.uuid4().hex[:16]}",
            name=name,
            app=app_name,
            endpoint=endpoint,
            sources=sources,
            settings=values,
            enabled=enabled,
            options=options,
            created_at_ms=current.created_at_ms if current else now_ms(),
        )
        await self._store.put_object(DESTINATION, name, self._destination_doc(destination, fields))
        await self.refresh()
        return destination

    async def delete_destination(self, name: str) -> None:
        if not await self._store.delete_object(DESTINATION, name):
            raise CatalogError(f"no destination named {name!r}", 404)
        await self.refresh()

    def _check_app_or_endpoint(self, app_name: object, endpoint: object) -> App | None:
        if app_name is None and endpoint is None:
            raise CatalogError("a destination needs an `app` or an `endpoint`")
        if endpoint is not None:
            check_endpoint(endpoint)
        if app_name is None:
            return None
        if not isinstance(app_name, str) or app_name not in self._apps:
            raise CatalogError(f"no app named {app_name!r}")
        return self._apps[app_name]

    async def _check_sources(self, sources: object) -> tuple[str, ...]:
        if not isinstance(sources, list | tuple) or not all(isinstance(s, str) for s in sources):
            raise CatalogError("`sources` must be a list of source names")
        known = {s.name for s in await self._store.list_sources()}
        if unknown := [s for s in sources if s not in known]:
            raise CatalogError(f"unknown source(s): {', '.join(unknown)}")
        return tuple(dict.fromkeys(sources))

    def _merge_settings(
        self,
        given: object,
        current: Destination | None,
        fields: tuple[SettingField, ...],
        *,
        strict: bool,
    ) -> dict[str, Any]:
        old = dict(current.settings) if current else {}
        if given is None:
            merged = old
        elif isinstance(given, dict):
            # the masked value coming back from a form means "unchanged"
            merged = {k: (old.get(k) if v == MASK else v) for k, v in given.items()}
        else:
            raise CatalogError("`settings` must be an object of setting values")
        try:
            return check_values(fields, merged, strict=strict)
        except SettingsError as exc:
            raise CatalogError(str(exc)) from None

    def _destination_doc(
        self, destination: Destination, fields: tuple[SettingField, ...]
    ) -> dict[str, Any]:
        secret = sensitive_keys(fields)
        return {
            "id": destination.id,
            "name": destination.name,
            "app": destination.app,
            "endpoint": destination.endpoint,
            "sources": list(destination.sources),
            "settings": {
                k: (self._secrets.seal(v) if k in secret and v not in (None, "") else v)
                for k, v in destination.settings.items()
            },
            "enabled": destination.enabled,
            "options": destination.options.doc(),
            "created_at_ms": destination.created_at_ms,
        }

    def _destination_from_doc(self, doc: dict[str, Any], apps: dict[str, App]) -> Destination:
        app = apps.get(doc.get("app") or "")
        secret = sensitive_keys(app.settings if app else parse_fields([]))
        return Destination(
            id=doc["id"],
            name=doc["name"],
            app=doc.get("app"),
            endpoint=doc.get("endpoint"),
            sources=tuple(doc.get("sources", ())),
            settings={
                k: (self._secrets.open(v) if k in secret else v)
                for k, v in doc.get("settings", {}).items()
            },
            enabled=doc.get("enabled", True),
            options=DeliveryOptions.from_doc(doc.get("options")),
            created_at_ms=doc.get("created_at_ms", 0),
        )
