"""The ``segue`` command."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.markup import escape

from segue import __version__
from segue.config import (
    ROLES,
    ConfigError,
    ServerConfig,
    apply_environment,
    check_config,
    load_config,
)

console = Console(stderr=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="segue")
def main() -> None:
    """segue: a self-hostable event router that speaks Segment's protocols."""


@main.command()
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="segue.toml to apply."
)
@click.option(
    "--data", "data_dir", type=click.Path(path_type=Path), help="Data directory [./.segue]."
)
@click.option("--database", "database_url", help="Database URL [sqlite in the data directory].")
@click.option("--host", help="Interface to listen on [127.0.0.1].")
@click.option("--port", type=int, help="Port for every API and the UI [8088].")
@click.option("--role", type=click.Choice(ROLES), help="Which parts to run [all].")
def serve(
    config_path: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    host: str | None,
    port: int | None,
    role: str | None,
) -> None:
    """Run the Tracking API, the admin API and the delivery workers on one port."""
    from segue.serve import run

    try:
        config = load_config(config_path) if config_path else ServerConfig()
        config = apply_environment(config)
    except ConfigError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        sys.exit(2)
    config = replace(
        config,
        data_dir=data_dir or config.data_dir,
        database_url=database_url or config.database_url,
        host=host or config.host,
        port=port or config.port,
        role=role or config.role,
    )
    try:
        check_config(config, "command line")
    except ConfigError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        sys.exit(2)
    run(config, Console())


@main.command()
@click.argument(
    "type_",
    metavar="TYPE",
    type=click.Choice(["identify", "track", "page", "screen", "group", "alias", "delete"]),
)
@click.option("--seed", type=int, help="Make the sample reproducible.")
def sample(type_: str, seed: int | None) -> None:
    """Print a realistic sample event of TYPE as JSON."""
    from segue.spec.samples import sample as make_sample

    click.echo(orjson.dumps(make_sample(type_, seed=seed), option=orjson.OPT_INDENT_2).decode())


@main.command()
@click.option("--source", required=True, help="Name of the source whose events to re-send.")
@click.option("--destination", required=True, help="Name of the destination to send them to.")
@click.option("--since", help="Start of the range: ISO-8601 or epoch ms [all time].")
@click.option("--until", help="End of the range (exclusive): ISO-8601 or epoch ms [now].")
@click.option("--url", default="http://127.0.0.1:8088", show_default=True, help="segue's URL.")
@click.option("--token", help="Admin token [SEGUE_ADMIN_TOKEN, or DATA/admin_token].")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    default=Path(".segue"),
    help="Data directory holding admin_token [./.segue].",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Stop watching after this many seconds (the replay goes on).",
)
@click.option("--no-wait", is_flag=True, help="Start the replay and return.")
def replay(
    source: str,
    destination: str,
    since: str | None,
    until: str | None,
    url: str,
    token: str | None,
    data_dir: Path,
    timeout: float,
    no_wait: bool,
) -> None:
    """Re-send the stored events of SOURCE in a time range to DESTINATION.

    Shows a progress bar of delivered vs queued events until every replayed delivery
    is done, then a summary.
    """
    from segue.devcenter.client import AdminClient, AdminClientError, find_token
    from segue.devcenter.replay_view import watch_replay

    try:
        client = AdminClient(url, find_token(token, data_dir))
        body = {"source": source, "destination": destination, "since": since, "until": until}
        started = client.post("/replays", {k: v for k, v in body.items() if v is not None})
        if no_wait:
            Console().print(f"replay [bold]{started['id']}[/] started")
            return
        finished = watch_replay(client, started, timeout_s=timeout, console=console)
    except AdminClientError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        sys.exit(2)
    if finished is None:
        console.print(f"[yellow]still running after {timeout:g} s[/]: the replay goes on")
        sys.exit(1)
    if finished["state"] == "failed":
        sys.exit(1)


@main.group()
def fn() -> None:
    """Destination functions: try one before deploying it."""


@fn.command("test")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--type",
    "type_",
    type=click.Choice(["identify", "track", "page", "screen", "group", "alias", "delete"]),
    help="Call the function with a sample event of this type [track].",
)
@click.option(
    "--event",
    "event_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Call it with the JSON event in this file instead (a list calls on_batch).",
)
@click.option("--settings", "settings_text", metavar="JSON", help="Setting values, as JSON.")
@click.option(
    "--allow-local",
    is_flag=True,
    help="Let fetch reach 127.0.0.0/8 and ::1, over plain http too.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Wall-clock limit of the call, in seconds.",
)
def fn_test(
    file: Path,
    type_: str | None,
    event_path: Path | None,
    settings_text: str | None,
    allow_local: bool,
    timeout_s: float,
) -> None:
    """Run FILE (.py or .js) once on a test event in the sandbox, as the server would.

    Prints the Callback Return (the value, or the error) and the Log Output. Exit code
    0 when the function returned, 1 when it raised or timed out, 2 for usage errors.
    """
    from segue.functions.cli_test import run

    code = run(
        file,
        type_=type_,
        event_path=event_path,
        settings_text=settings_text,
        allow_local=allow_local,
        timeout_s=timeout_s,
        console=Console(),
        errors=console,
    )
    sys.exit(code)


def _register_partner_commands() -> None:
    from segue.partner.cli import check

    main.add_command(check)


_register_partner_commands()
