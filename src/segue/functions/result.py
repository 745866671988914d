"""What one function call produced, as it crosses the sandbox boundary (JSON-able)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class CallError(StrEnum):
    """Why a call did not return a value."""

    EVENT_NOT_SUPPORTED = "EventNotSupported"
    INVALID_EVENT_PAYLOAD = "InvalidEventPayload"
    VALIDATION_ERROR = "ValidationError"
    RETRY = "RetryError"
    TIMEOUT = "Timeout"  # the wall-clock limit: the worker was killed; retried
    MEMORY = "MemoryLimit"  # the memory limit: the worker was killed; discarded
    CRASH = "WorkerCrashed"  # the worker died for another reason; retried
    ERROR = "Error"  # any other exception: discarded with its message


@dataclass(frozen=True, slots=True)
class CallResult:
    ok: bool
    value: Any = None  # what the handler returned (ok), JSON-able
    error: CallError | None = None
    message: str | None = None  # the error's message
    logs: str = ""  # everything printed / logged / console.log'ed, capped
    duration_ms: float = 0.0
    batch_results: list[dict[str, Any]] | None = field(default=None)  # on_batch, per event

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "value": self.value,
            "error": self.error.value if self.error else None,
            "message": self.message,
            "logs": self.logs,
            "duration_ms": round(self.duration_ms, 2),
            "batch_results": self.batch_results,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallResult:
        return cls(
            ok=bool(data["ok"]),
            value=data.get("value"),
            error=CallError(data["error"]) if data.get("error") else None,
            message=data.get("message"),
            logs=data.get("logs", ""),
            duration_ms=float(data.get("duration_ms", 0.0)),
            batch_results=data.get("batch_results"),
        )
