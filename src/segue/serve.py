"""Running segue under uvicorn, with a start-up banner and clean shutdown.

uvicorn handles SIGINT/SIGTERM: it stops accepting, lets in-flight requests finish
(their events are committed before they are answered), then runs the lifespan
shutdown, which drains the store's writer. Nothing acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import threading
from collections.abc import Iterator

import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from segue.app import Segue
from segue.bootstrap import BootReport
from segue.config import ConfigError, ServerConfig
from segue.connection_budget import ConnectionBudget, connection_limit, raise_open_file_limit
from segue.http_server import ClientLimits, protocol_class

log = logging.getLogger("segue")


def banner(config: ServerConfig, report: BootReport, console: Console) -> None:
    base = f"http://{_display_host(config.host)}:{config.port}"
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Tracking API", f"{base}/v1/  (point your Segment SDK's host here)")
    table.add_row("Developer Center", f"{base}/ui/  (sign in with the admin token)")
    table.add_row("Admin API", f"{base}/api/v1/  (OpenAPI: {base}/api/v1/openapi.json)")
    table.add_row("Metrics", f"{base}/metrics")
    table.add_row("Database", config.database())
    if report.token_created:
        table.add_row("Admin token", report.admin_token)
    elif config.admin_token:
        table.add_row(
            "Admin token", escape("as configured (SEGUE_ADMIN_TOKEN or [server] admin_token)")
        )
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


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, so the process
    dies of the signal; a clean shutdown should exit 0, as supervisors expect."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def _http_protocol(config: ServerConfig) -> type[asyncio.Protocol]:
    """httptools with segue's limits for slow and greedy clients (docs/operations.md)."""
    fd_limit = raise_open_file_limit()
    budget = ConnectionBudget(connection_limit(config.max_connections, fd_limit))
    log.info("up to %d client connections (open-file limit %d)", budget.limit, fd_limit)
    limits = ClientLimits(
        header_timeout_s=float(config.header_timeout_s),
        body_timeout_s=float(config.body_timeout_s),
        max_header_bytes=config.max_header_bytes,
        max_headers=config.max_headers,
    )
    return protocol_class(limits, budget)


def run(config: ServerConfig, console: Console | None = None) -> None:
    """Start, print the banner once the store is ready, serve until a signal."""
    console = console or Console()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    segue = Segue.build(config)
    uv_config = uvicorn.Config(
        segue,
        host=config.host,
        port=config.port,
        http=_http_protocol(config),
        ws="none",  # segue serves no WebSocket
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        proxy_headers=False,  # X-Forwarded-For is segue's decision (trust_forwarded_for)
        timeout_graceful_shutdown=30,
    )
    server = _Server(uv_config)

    async def main() -> None:
        try:
            report = await segue.startup()
            # what start-up allocated lives for the whole run: keep the collector off it,
            # and collect the young generation less often (requests allocate a lot)
            gc.collect()
            gc.freeze()
            gc.set_threshold(20_000, 20, 20)
        except ConfigError as exc:
            Console(stderr=True).print(f"[red]error:[/] {escape(str(exc))}")
            await segue.shutdown()
            raise SystemExit(2) from None
        banner(config, report, console)
        await server.serve()

    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows)
        asyncio.run(main())
    else:
        uvloop.run(main())
