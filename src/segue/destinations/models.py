"""Apps and destinations as records, and their JSON documents in the store."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from segue.delivery.policy import RetryPolicy
from segue.destinations.settings import SettingField, SettingsError, parse_fields

APP = "app"
DESTINATION = "destination"


@dataclass(frozen=True, slots=True)
class App:
    """A reusable destination definition: the partner's component."""

    id: str
    name: str
    endpoint: str | None = None
    function: str | None = None  # where the code was read from (a .py or .js file)
    code: str | None = None  # the function's source (read from ``function`` or posted)
    runtime: str | None = None  # "python" | "javascript"
    settings: tuple[SettingField, ...] = field(default_factory=lambda: parse_fields([]))
    created_at_ms: int = 0

    @property
    def is_function(self) -> bool:
        return self.code is not None

    @property
    def version(self) -> str:
        """Identifies the code: a runtime keeps one warm module / isolate per version."""
        return hashlib.sha256((self.code or "").encode()).hexdigest()[:16]

    def doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "endpoint": self.endpoint,
            "function": self.function,
            "code": self.code,
            "runtime": self.runtime,
            "settings": [f.as_json() for f in self.settings],
            "created_at_ms": self.created_at_ms,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> App:
        return cls(
            id=doc["id"],
            name=doc["name"],
            endpoint=doc.get("endpoint"),
            function=doc.get("function"),
            code=doc.get("code"),
            runtime=doc.get("runtime"),
            settings=parse_fields(doc.get("settings")),
            created_at_ms=doc.get("created_at_ms", 0),
        )


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """Per-destination knobs of the delivery engine."""

    timeout_s: float = 5.0
    concurrency: int = 32
    snake_case: bool = False
    allow_http: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def doc(self) -> dict[str, Any]:
        return {
            "timeout_s": self.timeout_s,
            "concurrency": self.concurrency,
            "snake_case": self.snake_case,
            "allow_http": self.allow_http,
            "first_backoff_s": self.retry.first_backoff_s,
            "max_backoff_s": self.retry.max_backoff_s,
            "retry_window_s": self.retry.window_s,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> DeliveryOptions:
        doc = doc or {}
        known = {
            "timeout_s",
            "concurrency",
            "snake_case",
            "allow_http",
            "first_backoff_s",
            "max_backoff_s",
            "retry_window_s",
        }
        if unknown := set(doc) - known:
            raise SettingsError(f"unknown option(s) {', '.join(sorted(unknown))}")
        numbers = {k: doc[k] for k in known & set(doc) if k not in ("snake_case", "allow_http")}
        for key, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise SettingsError(f"option `{key}` must be a positive number")
        concurrency = doc.get("concurrency", 32)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise SettingsError("option `concurrency` must be a whole number ≥ 1")
        for key in ("snake_case", "allow_http"):
            if not isinstance(doc.get(key, False), bool):
                raise SettingsError(f"option `{key}` must be true or false")
        defaults = RetryPolicy()
        return cls(
            timeout_s=float(doc.get("timeout_s", 5.0)),
            concurrency=int(doc.get("concurrency", 32)),
            snake_case=doc.get("snake_case", False),
            allow_http=doc.get("allow_http", False),
            retry=RetryPolicy(
                first_backoff_s=float(doc.get("first_backoff_s", defaults.first_backoff_s)),
                max_backoff_s=float(doc.get("max_backoff_s", defaults.max_backoff_s)),
                window_s=float(doc.get("retry_window_s", defaults.window_s)),
            ),
        )


@dataclass(frozen=True, slots=True)
class Destination:
    """An instance: an app (or an inline endpoint), sources, setting values, on/off.

    ``settings`` holds plain values in memory; the store keeps sensitive ones sealed.
    """

    id: str
    name: str
    app: str | None = None
    endpoint: str | None = None
    sources: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    options: DeliveryOptions = field(default_factory=DeliveryOptions)
    created_at_ms: int = 0
