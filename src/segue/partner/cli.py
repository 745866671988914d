"""``segue check``: the conformance checker on the command line.

A click command object; segue's group registers it with ``main.add_command(check)``.
Exit codes: 0 every check passed (warnings allowed), 1 a check failed, 2 a usage
error or an endpoint that cannot be reached at all.
"""

from __future__ import annotations

import asyncio
import os
import sys

import click
import orjson
from rich.console import Console
from rich.markup import escape

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
CI_WIDTH = 150  # CI logs are not terminals: rich would squeeze the table into 80 columns


def _output_console() -> Console:
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        return Console(width=CI_WIDTH)
    return console


@click.command("check")
@click.argument("url")
@click.option(
    "--api-key",
    required=True,
    help="The API key a user would configure (sent as Basic auth, like Segment does).",
)
@click.option(
    "--settings",
    "settings_text",
    metavar="JSON",
    help="Custom setting values as a JSON object, sent in X-Segment-Settings.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds each response may take.",
)
def check(
    url: str, api_key: str, settings_text: str | None, as_json: bool, timeout_s: float
) -> None:
    """Check that the endpoint at URL handles Segment data the way the partner docs say.

    Sends every event type (realistic, snake_case, minimal, large), delete, and requests
    that must be refused (no or malformed Authorization, a wrong key, malformed JSON, an
    unknown type), with exactly the headers segue and Segment send, and grades each
    answer. Exit code 0 when every check passed, 1 when one failed, 2 for usage errors
    or an unreachable URL.
    """
    from segue.partner.check import CheckUsageError, UnreachableError, parse_settings, run_checks
    from segue.partner.check_report import print_report, report_json

    errors = Console(stderr=True)
    try:
        settings = parse_settings(settings_text)
        report = asyncio.run(run_checks(url, api_key, settings, timeout_s=timeout_s))
    except (CheckUsageError, UnreachableError) as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}")
        if as_json:
            click.echo(orjson.dumps({"passed": False, "error": str(exc)}).decode())
        sys.exit(EXIT_USAGE)
    if as_json:
        click.echo(report_json(report))
    else:
        print_report(report, _output_console())
    sys.exit(EXIT_OK if report.passed else EXIT_FAILED)


__all__ = ["check"]
