"""CSRF protection for the web UI's forms: a per-session token, checked on every POST.

The token is an HMAC of the session id (so it needs no storage); forms carry it in a
hidden ``csrf_token`` field, scripts in an ``X-CSRF-Token`` header. The session cookie
is also ``SameSite=Strict``: this is the second lock, not the only one.
"""

from __future__ import annotations

import hmac

from segue.devcenter.web.session import Session, SessionSigner

FIELD = "csrf_token"
HEADER = "x-csrf-token"


def csrf_ok(signer: SessionSigner, session: Session, submitted: str | None) -> bool:
    if not submitted:
        return False
    return hmac.compare_digest(submitted.encode(), signer.csrf_token(session).encode())
