"""Pick a Store backend from a database URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from segue.store.protocol import Store
from segue.store.sqlite.writer import CommitObserver


class UnsupportedDatabaseError(ValueError):
    """The database URL names a backend segue does not have."""


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def sqlite_path_and_mode(url: str) -> tuple[str, str]:
    """(path, synchronous) of ``sqlite:///relative.db`` or ``sqlite:////absolute.db``.

    Three slashes and a relative path, four for an absolute one (SQLAlchemy's rule).
    """
    from segue.store.sqlite.connection import SYNCHRONOUS_MODES

    parts = urlsplit(url)
    path = f"{parts.netloc}{parts.path}"
    if not parts.netloc and path.startswith("/"):
        path = path[1:]
    if not path:
        raise UnsupportedDatabaseError(f"{url!r} names no file: sqlite:////abs/path/segue.db")
    options = parse_qs(parts.query)
    unknown = set(options) - {"synchronous"}
    if unknown:
        raise UnsupportedDatabaseError(f"unknown SQLite option(s): {', '.join(sorted(unknown))}")
    synchronous = options.get("synchronous", ["full"])[0].lower()
    if synchronous not in SYNCHRONOUS_MODES:
        raise UnsupportedDatabaseError(
            f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, not {synchronous!r}"
        )
    return path, synchronous


def check_database_url(url: str) -> None:
    """Raise UnsupportedDatabaseError with a clear message for a URL segue cannot open."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        sqlite_path_and_mode(url)
    elif scheme != "memory":
        raise UnsupportedDatabaseError(
            f"unsupported database URL {url!r}: use sqlite:////absolute/path/segue.db"
        )


def open_store(url: str, *, on_commit: CommitObserver | None = None) -> Store:
    """``sqlite:////abs/path.db[?synchronous=normal]`` or ``memory://``."""
    check_database_url(url)
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        from segue.store.sqlite import SQLiteStore

        path, synchronous = sqlite_path_and_mode(url)
        return SQLiteStore(path, synchronous=synchronous, on_commit=on_commit)
    if parts.scheme == "memory":
        from segue.store.memory import InMemoryStore

        return InMemoryStore()
    raise UnsupportedDatabaseError(f"unsupported database URL {url!r}")
