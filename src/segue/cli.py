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
from segue.config import ROLES, ConfigError, ServerConfig, apply_environment, load_config

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
