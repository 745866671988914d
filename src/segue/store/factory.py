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


def open_store(url: str, *, on_commit: CommitObserver | None = None) -> Store:
    """``sqlite:///abs/path.db[?synchronous=normal]`` or ``memory://``."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        from segue.store.sqlite import SQLiteStore

        options = parse_qs(parts.query)
        synchronous = options.get("synchronous", ["full"])[0].lower()
        path = parts.path if parts.netloc == "" else f"{parts.netloc}{parts.path}"
        return SQLiteStore(path, synchronous=synchronous, on_commit=on_commit)
    if parts.scheme == "memory":
        from segue.store.memory import InMemoryStore

        return InMemoryStore()
    raise UnsupportedDatabaseError(
        f"unsupported database URL {url!r}: use sqlite:///path/to/segue.db"
    )
