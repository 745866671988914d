"""What an ``on_batch`` / ``onBatch`` handler said of each event, in one shape.

A batch handler may return one ``{"status": …, "errormessage": …}`` per event; both
runtimes turn that into ``{"index", "ok", "error", "message"}`` rows here.
"""

from __future__ import annotations

from typing import Any

from segue.functions.result import CallError

_OK_WORDS = frozenset({"ok", "success", "succeeded"})
_KIND_WORDS = {kind.value: kind for kind in CallError}


def classify_status(status: Any) -> CallError | None:
    """None when one result means success, else why that event failed.

    2xx, True, "ok"/"success" succeed; 429, 5xx and "retry" are retried; an error
    kind's name ("RetryError", "ValidationError"…) is taken as it is; the rest fail.
    """
    if isinstance(status, bool):
        return None if status else CallError.ERROR
    if isinstance(status, str):
        word = status.strip()
        if word.lower() in _OK_WORDS:
            return None
        if word.lower() == "retry":
            return CallError.RETRY
        if word in _KIND_WORDS:
            return _KIND_WORDS[word]
        if not word.isdigit():
            return CallError.ERROR
        status = int(word)
    if isinstance(status, int | float):
        code = int(status)
        if 200 <= code < 300:
            return None
        if code == 429 or code >= 500:
            return CallError.RETRY
    return CallError.ERROR


def batch_results(value: Any, count: int | None = None) -> list[dict[str, Any]] | None:
    """Per-event rows when the handler returned ``[{"status": …}, …]``, else None
    (any other value: the whole batch succeeded). An event without a row failed."""
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(item, dict) and "status" in item for item in value):
        return None
    rows: list[dict[str, Any]] = []
    for index in range(len(value) if count is None else count):
        if index >= len(value):
            error: CallError | None = CallError.ERROR
            message: str | None = "the batch handler returned no result for this event"
        else:
            item = value[index]
            error = classify_status(item["status"])
            text = item.get("errormessage") or item.get("errorMessage") or item.get("message")
            message = None if error is None else str(text or f"status {item['status']}")
        rows.append(
            {
                "index": index,
                "ok": error is None,
                "error": error.value if error else None,
                "message": message,
            }
        )
    return rows
