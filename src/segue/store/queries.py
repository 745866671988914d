"""Named SQL queries, one file per dialect (``sql/<dialect>.sql``).

Keeping SQL in .sql files lets each backend speak its own dialect while the Python
code refers to queries by name only.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

_MARKER = "-- name:"


def parse_queries(text: str) -> dict[str, str]:
    """Split a .sql file into ``{name: statement}`` on ``-- name: NAME`` lines."""
    queries: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith(_MARKER):
            if name is not None:
                queries[name] = _statement(lines)
            name, lines = line[len(_MARKER) :].strip(), []
        elif name is not None and not line.startswith("--"):
            lines.append(line)
    if name is not None:
        queries[name] = _statement(lines)
    return queries


def _statement(lines: list[str]) -> str:
    return "\n".join(lines).strip().rstrip(";")


@cache
def load_queries(dialect: str) -> dict[str, str]:
    text = resources.files("segue.store").joinpath("sql", f"{dialect}.sql").read_text("utf-8")
    return parse_queries(text)


@cache
def load_migrations(dialect: str) -> tuple[tuple[int, str, str], ...]:
    """Return ``(version, name, sql)`` for every migration of ``dialect``, in order."""
    folder = resources.files("segue.store").joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text("utf-8")))
    return tuple(sorted(found))
