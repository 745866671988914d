"""Bearer-token guard for the admin API, as pure ASGI middleware."""

from __future__ import annotations

import hmac

from segue.asgi import ASGIApp, Receive, Scope, Send, header, send_json


class BearerTokenGuard:
    """Refuses every request without ``Authorization: Bearer <admin token>``.

    ``public`` paths (the OpenAPI document) are served without a token.
    """

    def __init__(self, app: ASGIApp, token: str, public: frozenset[str] = frozenset()) -> None:
        self.app = app
        self._token = token.encode()
        self._public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._public:
            await self.app(scope, receive, send)
            return
        value = header(scope, b"authorization") or ""
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self._token
        ):
            await send_json(
                send,
                401,
                {"message": "missing or wrong admin token: send `Authorization: Bearer <token>`"},
                [(b"www-authenticate", b'Bearer realm="segue"')],
            )
            return
        await self.app(scope, receive, send)
