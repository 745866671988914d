"""segue.partner: build a Segment destination endpoint that is correct by construction.

    from segue.partner import Destination, InvalidEventPayload

    dest = Destination(api_key_check=lambda key: key == "segment")

    @dest.identify
    async def identify(event, context):
        if not event.get("traits", {}).get("email"):
            raise InvalidEventPayload("Missing email address")

``dest`` is an ASGI app (``uvicorn module:dest``, or mount it in Starlette/FastAPI);
``dest.wsgi()`` is the same endpoint for WSGI servers. The seeds' contract (POST,
Basic-auth API key, X-Segment-Settings, any key casing, the status table, JSON
``message`` bodies) is handled before and after your handler runs.

Answers, in the order they are decided:

* not POST → 405 (``Allow: POST``)
* Authorization missing or not ``Basic base64("<apiKey>:")`` → 401
* ``api_key_check`` says no → 401 (it may raise ``Unauthorized``/``Forbidden`` itself)
* X-Segment-Settings not base64 of a JSON object, body not a JSON object, or no ``type`` → 400
* no handler for the type → 501
* the handler returns ``x`` → 200 with ``x`` as JSON (``{}`` for ``None``);
  ``Accepted(x)`` → 202; raises ``InvalidEventPayload``/``ValidationError`` → 400,
  ``Unauthorized`` → 401, ``Forbidden`` → 403, ``Unavailable`` → 503 (+ Retry-After);
  anything else → 500 ``{"message": "internal error"}``, logged to ``segue.partner``.

Every response is ``application/json``; every error carries a ``message``.
"""

from segue.partner.destination import SEGMENT_TYPES, Context, Destination
from segue.partner.headers import (
    AuthorizationError,
    SettingsError,
    decode_authorization,
    decode_settings,
)
from segue.partner.outcomes import (
    Accepted,
    DestinationError,
    Forbidden,
    InvalidEventPayload,
    Unauthorized,
    Unavailable,
    ValidationError,
)
from segue.partner.wire import Request, Response
from segue.spec.casing import CaseInsensitiveDict

__all__ = [
    "SEGMENT_TYPES",
    "Accepted",
    "AuthorizationError",
    "CaseInsensitiveDict",
    "Context",
    "Destination",
    "DestinationError",
    "Forbidden",
    "InvalidEventPayload",
    "Request",
    "Response",
    "SettingsError",
    "Unauthorized",
    "Unavailable",
    "ValidationError",
    "decode_authorization",
    "decode_settings",
]
