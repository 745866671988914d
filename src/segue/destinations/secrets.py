"""Encryption at rest for sensitive setting values.

The key comes from ``SEGUE_SECRET_KEY`` (any string; several nodes must share it)
or from ``<data dir>/secret.key``, made on first use with mode 0600.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

SECRET_FILE = "secret.key"
MARKER = "$secret"


class SecretError(ValueError):
    """A stored secret cannot be decrypted with this key."""


class SecretBox:
    def __init__(self, key: str) -> None:
        digest = hashlib.sha256(key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    @classmethod
    def from_environment(cls, data_dir: Path, environ: dict[str, str] | None = None) -> SecretBox:
        env = os.environ if environ is None else environ
        if key := env.get("SEGUE_SECRET_KEY"):
            return cls(key)
        path = data_dir / SECRET_FILE
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(base64.urlsafe_b64encode(os.urandom(32)).decode() + "\n")
        return cls(path.read_text("utf-8").strip())

    def seal(self, value: object) -> dict[str, str]:
        """``{"$secret": token}``: how a sensitive value is stored."""
        import orjson

        return {MARKER: self._fernet.encrypt(orjson.dumps(value)).decode("ascii")}

    def open(self, stored: object) -> object:
        """The plain value of a sealed one; other values pass through."""
        if not is_sealed(stored):
            return stored
        import orjson

        token = stored[MARKER]  # type: ignore[index]
        try:
            return orjson.loads(self._fernet.decrypt(token.encode("ascii")))
        except InvalidToken:
            raise SecretError(
                "a sensitive setting cannot be decrypted: SEGUE_SECRET_KEY or secret.key changed"
            ) from None


def is_sealed(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and MARKER in value
