"""CORS answers of the Tracking API: browsers on any origin may send events.

Every ``/v1/`` response carries :data:`CORS`; ``OPTIONS`` on any ``/v1/`` path answers
:data:`PREFLIGHT`. Credentials (cookies) are never allowed, so ``*`` is safe for the
origin; the write key is what authenticates a request.
"""

from __future__ import annotations

# Request headers analytics.js (``@segment/analytics-next``) sends: ``Content-Type:
# text/plain`` and ``Authorization: Basic`` on every event, ``X-Retry-Count`` on every
# retry after a 429, a 5xx or a network error. ``Content-Encoding`` is for clients that
# gzip their batches. A site may add its own headers through analytics.js'
# ``deliveryStrategy.config.headers``: ``*`` lets those through too (without
# credentials ``*`` means any header, except ``Authorization``, which is listed by name).
ALLOWED_HEADERS = (
    "authorization",
    "content-type",
    "content-encoding",
    "x-retry-count",
    "*",
)
# Response headers a page's script may read: ``Retry-After`` on a 429, which
# analytics.js waits for before it retries (without it, it guesses with a backoff).
EXPOSED_HEADERS = ("retry-after",)
ALLOWED_METHODS = ("POST", "GET", "OPTIONS")
MAX_AGE_S = 86400  # Chromium caps this at 2 hours, Firefox at 24

CORS: list[tuple[bytes, bytes]] = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-credentials", b"false"),
    (b"access-control-expose-headers", ", ".join(EXPOSED_HEADERS).encode()),
]
PREFLIGHT: list[tuple[bytes, bytes]] = [
    *CORS,
    (b"access-control-allow-methods", ", ".join(ALLOWED_METHODS).encode()),
    (b"access-control-allow-headers", ", ".join(ALLOWED_HEADERS).encode()),
    (b"access-control-max-age", str(MAX_AGE_S).encode()),
]
