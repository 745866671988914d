"""Running segue under uvicorn, with a start-up banner and clean shutdown.

uvicorn handles SIGINT/SIGTERM: it stops accepting, lets in-flight requests finish
(their events are committed before they are answered), then runs the lifespan
shutdown, which drains the store's writer. Nothing acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from segue.app import Segue
from segue.bootstrap import BootReport
from segue.config import ServerConfig


def banner(config: ServerConfig, report: BootReport, console: Console) -> None:
    base = f"http://{_display_host(config.host)}:{config.port}"
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Tracking API", f"{base}/v1/  (point your Segment SDK's host here)")
    table.add_row("Developer Center", f"{base}/")
    table.add_row("Admin API", f"{base}/api/v1/  (OpenAPI: {base}/api/v1/openapi.json)")
    table.add_row("Metrics", f"{base}/metrics")
    table.add_row("Database", config.database())
    if report.token_created or config.admin_token:
        table.add_row("Admin token", report.admin_token)
    else:
        table.add_row("Admin token", f"in {config.data_dir / 'admin_token'}")
    console.print(Panel(table, title="segue is running", expand=False))
    for source in report.created:
        console.print(
            f"[green]created source[/] [bold]{source.name}[/]"
            f"  write key: [bold]{source.write_key}[/]"
        )
    for source in report.updated:
        console.print(f"[yellow]updated source[/] [bold]{source.name}[/] from the config file")


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)


def run(config: ServerConfig, console: Console | None = None) -> None:
    """Start, print the banner once the store is ready, serve until a signal."""
    console = console or Console()
    segue = Segue.build(config)
    uv_config = uvicorn.Config(
        segue,
        host=config.host,
        port=config.port,
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        timeout_graceful_shutdown=30,
    )
    server = uvicorn.Server(uv_config)

    async def main() -> None:
        report = await segue.startup()
        banner(config, report, console)
        await server.serve()

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows)
        asyncio.run(main())
    else:
        uvloop.run(main())
