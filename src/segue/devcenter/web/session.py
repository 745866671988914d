"""Signed cookie sessions for the web UI (stdlib ``hmac`` and ``secrets`` only).

A session cookie is ``<payload>.<signature>``: the payload names the session (a random
id) and when it expires; the signature is an HMAC-SHA256 under a key derived from the
admin token, so changing the token signs everyone out. Signing out revokes the id on
this node (the cookie would otherwise stay valid until it expires).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson

COOKIE = "segue_session"
MAX_AGE_S = 12 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    expires_at: int


class SessionSigner:
    """Makes and checks session cookies; ``key`` never leaves the process."""

    def __init__(self, admin_token: str, max_age_s: int = MAX_AGE_S) -> None:
        self._key = hmac.new(admin_token.encode(), b"segue-ui-session-v1", hashlib.sha256).digest()
        self._token = admin_token.encode()
        self.max_age_s = max_age_s
        self._revoked: dict[str, int] = {}  # session id -> its expiry

    def token_matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.strip().encode(), self._token)

    def new(self) -> tuple[Session, str]:
        """A fresh session and its cookie value."""
        session = Session(secrets.token_urlsafe(18), int(time.time()) + self.max_age_s)
        payload = _b64(orjson.dumps({"sid": session.id, "exp": session.expires_at}))
        return session, f"{payload}.{self._sign(payload.encode())}"

    def load(self, cookie: str | None) -> Session | None:
        """The session a cookie carries, or None when it is missing, forged or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(payload.encode())):
            return None
        try:
            data = orjson.loads(_unb64(payload))
            session = Session(str(data["sid"]), int(data["exp"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires_at < time.time() or session.id in self._revoked:
            return None
        return session

    def revoke(self, session: Session) -> None:
        now = time.time()
        self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp >= now}
        self._revoked[session.id] = session.expires_at

    def csrf_token(self, session: Session) -> str:
        """The token every form of this session must post back (see ``csrf``)."""
        return self._sign(b"csrf:" + session.id.encode())

    def _sign(self, data: bytes) -> str:
        return _b64(hmac.new(self._key, data, hashlib.sha256).digest())
