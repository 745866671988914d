"""How ``segue check`` shows its report: a rich table and a verdict line, or JSON."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from segue.partner.check import Report, Verdict

_VERDICT_STYLE = {
    Verdict.PASS: "[bold green]pass[/]",
    Verdict.WARN: "[bold yellow]warn[/]",
    Verdict.FAIL: "[bold red]fail[/]",
}


def report_table(report: Report) -> Table:
    table = Table(title=f"segue check {escape(report.url)}", title_justify="left", expand=False)
    table.add_column("check", no_wrap=True)
    table.add_column("request")
    table.add_column("status", justify="right", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("reason")
    for result in report.results:
        status = "—" if result.status is None else str(result.status)
        elapsed = "—" if result.elapsed_ms is None else f"{result.elapsed_ms:.0f} ms"
        table.add_row(
            escape(result.name),
            escape(result.request),
            status,
            elapsed,
            _VERDICT_STYLE[result.verdict],
            escape(result.reason),
        )
    return table


def verdict_line(report: Report) -> str:
    total = len(report.results)
    failed, warned = report.count(Verdict.FAIL), report.count(Verdict.WARN)
    warnings = f" ({warned} warning{'s' if warned != 1 else ''})" if warned else ""
    if failed:
        return f"[bold red]✗ {failed} of {total} checks failed[/]{warnings}"
    return f"[bold green]✓ all {total} checks passed[/]{warnings}"


def print_report(report: Report, console: Console) -> None:
    console.print(report_table(report))
    console.print(verdict_line(report))


def report_json(report: Report) -> str:
    import orjson

    return orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2).decode()


__all__ = ["print_report", "report_json", "report_table", "verdict_line"]
