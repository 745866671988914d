"""The two Tracking API routes analytics.js needs besides the event routes.

- ``GET /v1/projects/{writeKey}/settings``: the source's CDN settings, what analytics.js
  (``@segment/analytics-next``) fetches from ``{cdnURL}`` before it sends anything. They
  point its ``Segment.io`` plugin at this segue (``apiHost`` from the request's Host).
- ``POST /v1/m``: analytics.js' own telemetry (counters about the library). Accepted
  and dropped: it says nothing about the site's users, and segue has no use for it.
"""

from __future__ import annotations

import re
from typing import Any

from segue.asgi import Receive, Scope, Send, header, send_bytes, send_json
from segue.ingest.body import BodyTooLargeError, ClientDisconnectedError, read_body
from segue.ingest.cors import CORS
from segue.ingest.sources import SourceDirectory

_SETTINGS = re.compile(r"projects/([^/]+)/settings")
# a host name, an IPv4 address or a bracketed IPv6 address, with an optional port
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")
_OK = b'{"success":true}'
MAX_TELEMETRY_BYTES = 32 * 1024
# Browsers may keep the settings a minute: a page load then costs one request, not two,
# and a changed or disabled source is seen within a minute. Private: the answer depends
# on the Host header, so no shared cache may hand it to another host's pages.
SETTINGS_CACHE_CONTROL = b"private, max-age=60"


def is_browser_route(name: str) -> bool:
    """``name`` is the path after ``/v1/``: is it one of this module's routes?"""
    return name == "m" or name.startswith("projects/")


async def serve_browser_route(
    scope: Scope,
    receive: Receive,
    send: Send,
    name: str,
    sources: SourceDirectory,
    *,
    trust_forwarded: bool = False,
) -> None:
    """Answer ``/v1/{name}`` for a name :func:`is_browser_route` accepted."""
    method: str = scope["method"]
    if name == "m":
        if method != "POST":
            await _error(
                send, 405, "bad_request", "use POST for /v1/m", [(b"allow", b"POST, OPTIONS")]
            )
            return
        await _telemetry(receive, send)
        return
    match = _SETTINGS.fullmatch(name)
    if match is None:
        await _error(send, 404, "bad_request", f"no Tracking API route /v1/{name}")
        return
    if method != "GET":
        allow = [(b"allow", b"GET, OPTIONS")]
        await _error(send, 405, "bad_request", f"use GET for /v1/{name}", allow)
        return
    await _settings(scope, send, match.group(1), sources, trust_forwarded)


async def _telemetry(receive: Receive, send: Send) -> None:
    try:
        await read_body(receive, MAX_TELEMETRY_BYTES)
    except BodyTooLargeError:
        pass  # dropped anyway; answering success keeps the page's console clean
    except ClientDisconnectedError:
        return
    await send_bytes(send, 200, _OK, extra=CORS)


async def _settings(
    scope: Scope, send: Send, write_key: str, sources: SourceDirectory, trust_forwarded: bool
) -> None:
    source = await sources.by_write_key(write_key)
    if source is None:
        await _error(send, 404, "unknown_source", "unknown write key")
        return
    if not source.enabled:
        await _error(send, 404, "source_disabled", f"the source {source.name!r} is disabled")
        return
    origin = public_origin(scope, trust_forwarded)
    if origin is None:
        await _error(send, 400, "bad_request", "the Host header is not a valid host")
        return
    protocol, host = origin
    api_host = f"{host}{scope.get('root_path', '')}/v1"
    body = cdn_settings(source.write_key, api_host, protocol)
    extra = [*CORS, (b"cache-control", SETTINGS_CACHE_CONTROL)]
    await send_json(send, 200, body, extra)


def public_origin(scope: Scope, trust_forwarded: bool) -> tuple[str, str] | None:
    """``(scheme, host[:port])`` the browser used to reach segue, or None if the host is bad.

    Behind a proxy that segue trusts (``trust_forwarded_for``), ``X-Forwarded-Proto`` and
    ``X-Forwarded-Host`` name what the browser saw.
    """
    scheme = str(scope.get("scheme") or "http")
    host = header(scope, b"host")
    if trust_forwarded:
        if forwarded_proto := header(scope, b"x-forwarded-proto"):
            scheme = forwarded_proto.split(",")[0].strip().lower()
        if forwarded_host := header(scope, b"x-forwarded-host"):
            host = forwarded_host.split(",")[0].strip()
    if host is None:
        server = scope.get("server")
        if not server:
            return None
        address, port = server
        host = f"[{address}]:{port}" if ":" in str(address) else f"{address}:{port}"
    if scheme not in ("http", "https") or not _HOST.fullmatch(host):
        return None
    return scheme, host


def cdn_settings(write_key: str, api_host: str, protocol: str) -> dict[str, Any]:
    """The settings Segment's CDN serves for a source, pointed at this segue.

    What analytics.js 1.x reads from them:

    - ``integrations``: more entries than ``Segment.io`` would load device-mode
      destinations, which segue does not have; in ``Segment.io``: ``apiKey``,
      ``apiHost``, ``protocol`` (its default is https) and the bundling metadata it
      copies into each event's ``_metadata``;
    - ``middlewareSettings.routingRules``, ``enabledMiddleware``,
      ``legacyVideoPluginsEnabled``, ``remotePlugins``: each, when set, loads more code
      (segue sets none);
    - ``metrics``: its telemetry, off (below); ``plan``: tracking-plan switches for
      device-mode destinations.

    ``edgeFunction``, ``consentSettings`` and ``autoInstrumentationSettings`` are read by
    Segment's companion packages (signals, consent wrappers), ``analyticsNextEnabled``
    by the classic loader.
    """
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": api_host,
                "protocol": protocol,
                "addBundledMetadata": True,
                "unbundledIntegrations": [],
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {
            "track": {"__default": {"enabled": True, "integrations": {}}},
            "identify": {"__default": {"enabled": True}},
            "group": {"__default": {"enabled": True}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        # sampleRate 0: analytics.js sends no telemetry. (Over plain http it would send
        # it with https, its default protocol for telemetry, and log an error per page.)
        "metrics": {"host": api_host, "sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
        "consentSettings": {"allCategories": [], "hasUnmappedDestinations": False},
        "autoInstrumentationSettings": {"sampleRate": 0},
    }


async def _error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = {"success": False, "code": code, "message": message}
    await send_json(send, status, body, [*CORS, *(headers or [])])
