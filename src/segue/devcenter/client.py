"""A small, synchronous client of the admin API for the ``segue`` command.

Standard library only (urllib): the command talks to a running ``segue serve``.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

from segue.bootstrap import TOKEN_FILE


class AdminClientError(Exception):
    """The API refused (``status`` set) or could not be reached (``status`` None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def find_token(token: str | None, data_dir: Path, environ: Mapping[str, str] = os.environ) -> str:
    """``--token``, else ``SEGUE_ADMIN_TOKEN``, else the data directory's admin_token file."""
    if token:
        return token
    if from_env := environ.get("SEGUE_ADMIN_TOKEN"):
        return from_env
    path = data_dir / TOKEN_FILE
    try:
        return path.read_text("utf-8").strip()
    except OSError:
        raise AdminClientError(
            f"no admin token: pass --token, set SEGUE_ADMIN_TOKEN, or run where {path} exists"
        ) from None


class AdminClient:
    def __init__(self, url: str, token: str, *, timeout_s: float = 30.0) -> None:
        self.base = url.rstrip("/") + "/api/v1"
        self.token = token
        self.timeout_s = timeout_s

    def get(self, path: str, **params: str | int) -> Any:
        query = f"?{urlencode(params)}" if params else ""
        return self._call("GET", path + query, None)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, body)

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=None if body is None else orjson.dumps(body),
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise AdminClientError(_message(exc.read(), exc.code), exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AdminClientError(f"cannot reach segue at {self.base}: {reason}") from None
        return orjson.loads(raw) if raw else None


def _message(raw: bytes, status: int) -> str:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return f"{data['message']} (HTTP {status})"
    return f"HTTP {status}"
