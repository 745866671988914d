"""The WSGI side of a ``Destination``, for Flask, Django and other WSGI servers.

Pure WSGI (PEP 3333): no werkzeug needed. The rules are the ASGI ones, shared through
``Destination.respond``; an async handler (or key check) runs to completion on a
fresh event loop for that request, and plain ones run on the server's thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING

from segue.partner.wire import Request

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from segue.partner.destination import Destination

_UNPREFIXED = {"CONTENT_TYPE": "content-type", "CONTENT_LENGTH": "content-length"}


def wsgi_app(destination: Destination) -> WSGIApplication:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        body = _read_body(environ, destination.max_body_bytes)
        request = Request.build(environ.get("REQUEST_METHOD", "GET"), _headers(environ), body)
        response = asyncio.run(destination.respond(request, sync_in_thread=False))
        start_response(
            f"{response.status} {HTTPStatus(response.status).phrase}", response.all_headers
        )
        return [response.body]

    return app


def _headers(environ: WSGIEnvironment) -> list[tuple[str, str]]:
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append((key[5:].replace("_", "-").lower(), str(value)))
        elif key in _UNPREFIXED:
            headers.append((_UNPREFIXED[key], str(value)))
    return headers


def _read_body(environ: WSGIEnvironment, limit: int) -> bytes:
    """At most ``limit + 1`` bytes: enough to answer "too large" without reading it all.

    PEP 3333 forbids reading past CONTENT_LENGTH; without one, only a server that
    says the stream ends (``wsgi.input_terminated``) may be read to the end.
    """
    stream = environ["wsgi.input"]
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        length = -1
    if length < 0:
        return bytes(stream.read(limit + 1)) if environ.get("wsgi.input_terminated") else b""
    return bytes(stream.read(min(length, limit + 1)))
