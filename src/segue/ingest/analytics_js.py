"""analytics.js itself, served from an installed ``@segment/analytics-next`` npm package.

Optional: segue ships no copy of analytics.js and never fetches one. When the package
is installed (``npm install @segment/analytics-next`` in the directory segue starts in,
or anywhere, named by ``SEGUE_ANALYTICS_NEXT_DIR``), segue serves its browser build
at the paths Segment's CDN uses, so a page can load it with the standard snippet and
``analytics._cdn`` set to segue:

- ``/analytics.js/v1/{writeKey}/analytics.min.js``: the package's ``dist/umd/standalone.js``;
- ``/analytics-next/bundles/{file}``: the code it loads on demand (``dist/umd/*.bundle.*.js``),
  from ``{_cdn}/analytics-next/bundles/``.

Without the package these paths answer 404 with a JSON message saying how to install it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from segue.asgi import Scope, Send, header, send_bytes, send_json

ENV_DIR = "SEGUE_ANALYTICS_NEXT_DIR"
PACKAGE = Path("node_modules") / "@segment" / "analytics-next"
PREFIXES = ("/analytics.js/", "/analytics-next/")

_LOADER = re.compile(r"/analytics\.js/v1/[^/]+/analytics(?:\.min)?\.js")
_BUNDLE = re.compile(r"/analytics-next/bundles/([A-Za-z0-9_.-]+\.js(?:\.map)?)")
_JS = b"application/javascript; charset=utf-8"
_JSON = b"application/json"
# the loader's name never changes between versions: browsers check again after 5 minutes;
# bundle names carry a hash of their content, so they can be kept for good
_LOADER_CACHE = b"public, max-age=300"
_BUNDLE_CACHE = b"public, max-age=31536000, immutable"


def is_analytics_js_path(path: str) -> bool:
    return path.startswith(PREFIXES)


def package_dir() -> Path | None:
    """The installed package's directory, or None when it is not installed."""
    configured = os.environ.get(ENV_DIR)
    candidate = Path(configured) if configured else Path.cwd() / PACKAGE
    return candidate if (candidate / "dist" / "umd" / "standalone.js").is_file() else None


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    gzipped: bool
    mtime_ns: int


_cache: dict[tuple[Path, bool], _File] = {}


async def serve_analytics_js(scope: Scope, send: Send) -> None:
    """Answer a request under :data:`PREFIXES` from the installed package."""
    path: str = scope["path"]
    if scope["method"] not in ("GET", "HEAD"):  # the server leaves out a HEAD's body
        allow = [(b"allow", b"GET, HEAD")]
        await send_json(send, 405, {"message": f"use GET for {path}"}, allow)
        return
    if _LOADER.fullmatch(path):
        name, cache_control = "standalone.js", _LOADER_CACHE
    elif match := _BUNDLE.fullmatch(path):
        name, cache_control = match.group(1), _BUNDLE_CACHE
    else:
        await send_json(send, 404, {"message": f"nothing at {path}"})
        return
    root = package_dir()
    if root is None:
        message = (
            "analytics.js is not installed here: run `npm install @segment/analytics-next`"
            f" in the directory segue starts in, or set {ENV_DIR} to the package's directory"
        )
        await send_json(send, 404, {"message": message})
        return
    gzip_ok = "gzip" in (header(scope, b"accept-encoding") or "")
    found = _read(root / "dist" / "umd" / name, gzip_ok)
    if found is None:
        await send_json(send, 404, {"message": f"the installed analytics.js has no {name}"})
        return
    extra = [
        (b"cache-control", cache_control),
        (b"access-control-allow-origin", b"*"),
        (b"vary", b"accept-encoding"),
    ]
    if found.gzipped:
        extra.append((b"content-encoding", b"gzip"))
    content_type = _JSON if name.endswith(".map") else _JS
    await send_bytes(send, 200, found.body, content_type, extra)


def _read(file: Path, gzip_ok: bool) -> _File | None:
    """The file (its ``.gz`` twin when the client takes gzip), cached until it changes."""
    if gzip_ok:
        gzipped = _read_one(file.with_name(file.name + ".gz"), gzipped=True)
        if gzipped is not None:
            return gzipped
    return _read_one(file, gzipped=False)


def _read_one(file: Path, *, gzipped: bool) -> _File | None:
    try:
        mtime_ns = file.stat().st_mtime_ns
    except OSError:
        return None
    cached = _cache.get((file, gzipped))
    if cached is not None and cached.mtime_ns == mtime_ns:
        return cached
    try:
        loaded = _File(file.read_bytes(), gzipped, mtime_ns)
    except OSError:
        return None
    _cache[(file, gzipped)] = loaded
    return loaded
