"""``segue fn test``: one call of a function file in the real sandbox, shown like the debugger.

The seed's Developer Center runs a function once on a test event and shows two panels,
"Callback Return" (what the function returned, or the error it threw) and "Log Output"
(what it printed). This does the same in a terminal, with the same machinery as the
server: a ``FunctionPool`` of sandboxed workers whose ``fetch`` goes through the egress
guard. By default the guard is the server's default (no private addresses, https only);
``allow_local`` lets the function call 127.0.0.0/8 and ::1 over plain http, for a
partner's endpoint running on the same machine.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console, Group
from rich.json import JSON
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from segue.delivery.egress import EgressPolicy
from segue.delivery.function_attempt import FunctionAttemptRecord, outcome_of_call
from segue.delivery.policy import RetryPolicy
from segue.delivery.testing import outcome_of
from segue.delivery.transport import HTTPTransport
from segue.destinations.catalog import RUNTIMES
from segue.functions.pool import FunctionPool
from segue.functions.proxy import FetchProxy
from segue.functions.result import CallError, CallResult
from segue.spec.samples import SAMPLE_TYPES, sample

LOCAL_NETWORKS = ("127.0.0.0/8", "::1/128")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
CLI_SCOPE = "cli"  # the pool's scope of the one call (a pool of its own anyway)

_OUTCOME_TEXT = {
    "succeeded": "[bold green]Succeeded[/]",
    "retry": "[bold yellow]Failed[/] ({reason}): would be retried",
    "discarded": "[bold red]Failed[/] ({reason}): would be discarded",
}


class UsageError(ValueError):
    """The command line or its files are wrong (exit code 2)."""


@dataclass(frozen=True, slots=True)
class FunctionFile:
    path: Path
    source: str
    runtime: str  # "python" | "javascript"

    @property
    def version(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]


def read_function(path: Path) -> FunctionFile:
    """The function's code and runtime (from its extension); UsageError if unusable."""
    runtime = RUNTIMES.get(path.suffix.lower())
    if runtime is None:
        raise UsageError(f"{path}: a function file ends in .py or .js")
    try:
        source = path.read_text("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {path}: not UTF-8 text") from None
    if not source.strip():
        raise UsageError(f"{path} is empty")
    return FunctionFile(path.resolve(), source, runtime)


def read_event(type_: str | None, event_path: Path | None) -> Any:
    """A sample of ``type_``, or the JSON event (an object, or a list for on_batch) of a file."""
    if event_path is None:
        kind = type_ or "track"
        if kind not in SAMPLE_TYPES:
            raise UsageError(f"--type must be one of {', '.join(SAMPLE_TYPES)}, not {kind!r}")
        return sample(kind)
    try:
        data = event_path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {event_path}: {exc.strerror or exc}") from None
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{event_path} is not JSON: {exc}") from None
    if isinstance(event, list):
        if not event or not all(isinstance(item, dict) for item in event):
            raise UsageError(f"{event_path}: a batch is a non-empty list of event objects")
        return event
    if not isinstance(event, dict):
        raise UsageError(f"{event_path}: the event must be a JSON object (a Segment message)")
    if not isinstance(event.get("type"), str) or not event["type"]:
        raise UsageError(f"{event_path}: the event has no `type`")
    return event


def read_settings(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        settings = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"--settings is not JSON: {exc}") from None
    if not isinstance(settings, dict):
        raise UsageError("--settings must be a JSON object of setting values")
    return settings


def handler_of(event: Any) -> str:
    return "batch" if isinstance(event, list) else str(event["type"])


def egress_policy(allow_local: bool) -> EgressPolicy:
    if allow_local:
        return EgressPolicy.from_config(LOCAL_NETWORKS, allow_http=True)
    return EgressPolicy()


async def call_once(
    function: FunctionFile,
    event: Any,
    settings: dict[str, Any],
    *,
    allow_local: bool = False,
    timeout_s: float = 5.0,
) -> CallResult:
    """One call in a fresh one-worker pool, which is shut down afterwards.

    RuntimeError if no sandbox worker can start.
    """
    transport = HTTPTransport(egress_policy(allow_local))
    pool = FunctionPool(size=1, timeout_s=timeout_s, fetch=FetchProxy(transport))
    try:
        return await pool.call(
            function.runtime,
            function.source,
            function.version,
            str(function.path),
            handler_of(event),
            event,
            settings,
            timeout_s=timeout_s,
            scope=CLI_SCOPE,
        )
    finally:
        await pool.close()
        await transport.close()


def outcome(result: CallResult, event: Any, settings: dict[str, Any]) -> str:
    """``succeeded``, ``retry`` or ``discarded``: what the delivery engine would do."""
    record = FunctionAttemptRecord(
        handler_of(event), event, settings, result, outcome_of_call(result)
    )
    return outcome_of(record, RetryPolicy())


def render(console: Console, function: FunctionFile, result: CallResult, verdict: str) -> None:
    """The debugger panel in a terminal: Callback Return, Log Output, then the status."""
    if result.ok:
        returned: Any = (
            Text("undefined" if function.runtime == "javascript" else "None", style="dim")
            if result.value is None
            else JSON.from_data(result.value, indent=2)
        )
        border = "green"
    else:
        name = (result.error or CallError.ERROR).value
        returned = Text.assemble((name, "bold red"), ": ", result.message or "")
        border = "red"
    parts: list[Any] = [returned]
    if result.ok and result.batch_results:
        failed = [row for row in result.batch_results if not row["ok"]]
        parts.append(Text(f"batch: {len(failed)} of {len(result.batch_results)} events failed"))
        parts.extend(
            Text(f"  event {row['index']}: {row['error']}: {row['message']}") for row in failed
        )
    console.print(
        Panel(Group(*parts), title="Callback Return", title_align="left", border_style=border)
    )
    logs = result.logs.rstrip("\n")
    console.print(
        Panel(
            Text(logs) if logs else Text("(nothing logged)", style="dim"),
            title="Log Output",
            title_align="left",
        )
    )
    status = _OUTCOME_TEXT[verdict].format(reason=escape(outcome_of_call(result).reason))
    console.print(f"{status} in {result.duration_ms:.0f} ms")


def run(
    file: Path,
    *,
    type_: str | None,
    event_path: Path | None,
    settings_text: str | None,
    allow_local: bool,
    timeout_s: float,
    console: Console,
    errors: Console,
) -> int:
    """The whole command; returns its exit code."""
    try:
        if type_ is not None and event_path is not None:
            raise UsageError("give --type or --event, not both")
        function = read_function(file)
        event = read_event(type_, event_path)
        settings = read_settings(settings_text)
    except UsageError as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}")
        return EXIT_USAGE
    try:
        result = asyncio.run(
            call_once(function, event, settings, allow_local=allow_local, timeout_s=timeout_s)
        )
    except RuntimeError as exc:  # no sandbox worker could start
        errors.print(f"[red]error:[/] {escape(str(exc))}")
        return EXIT_FAILED
    render(console, function, result, outcome(result, event, settings))
    return EXIT_OK if result.ok else EXIT_FAILED
