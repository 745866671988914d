"""First run and declarative sources: the state a fresh ``segue serve`` needs."""

from __future__ import annotations

import os
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path

from segue.config import ConfigError, ServerConfig
from segue.destinations.catalog import Catalog, CatalogError
from segue.store import Source, Store

_ALPHABET = string.ascii_letters + string.digits
TOKEN_FILE = "admin_token"


def new_write_key() -> str:
    """32 random letters and digits, the shape of Segment's write keys."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(32))


def new_admin_token() -> str:
    return "sga_" + secrets.token_urlsafe(32)


@dataclass
class BootReport:
    """What start-up did, for the banner."""

    admin_token: str
    token_created: bool = False
    created: list[Source] = field(default_factory=list)
    updated: list[Source] = field(default_factory=list)


NODE_FILE = "node_id"


def node_id(config: ServerConfig, environ: dict[str, str] | None = None) -> str:
    """A name for this node that survives restarts, so that it can take back the
    deliveries it had leased when it died (``SEGUE_NODE_ID`` or ``<data>/node_id``)."""
    env = os.environ if environ is None else environ
    if name := env.get("SEGUE_NODE_ID"):
        return name
    path = config.data_dir / NODE_FILE
    if not path.exists():
        ensure_data_dir(config.data_dir)
        path.write_text(f"node-{secrets.token_hex(6)}\n", "utf-8")
    return path.read_text("utf-8").strip()


def ensure_data_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def admin_token(config: ServerConfig) -> tuple[str, bool]:
    """The configured token, or the one kept in the data dir (made on first run)."""
    if config.admin_token:
        return config.admin_token, False
    token_path = config.data_dir / TOKEN_FILE
    if token_path.exists():
        return token_path.read_text("utf-8").strip(), False
    token = new_admin_token()
    fd = os.open(token_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)  # never world-readable
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    return token, True


async def apply_sources(config: ServerConfig, store: Store, report: BootReport) -> None:
    """Create or update the sources the config declares; make `default` on a first run."""
    for wanted in config.sources:
        current = await store.get_source(wanted.name)
        if current is None:
            source = await store.create_source(
                wanted.name, wanted.write_key or new_write_key(), wanted.kind, wanted.rate_limit
            )
            if not wanted.enabled:
                source = await store.update_source(wanted.name, enabled=False) or source
            report.created.append(source)
            continue
        changes = {
            "write_key": wanted.write_key
            if wanted.write_key not in (None, current.write_key)
            else None,
            "kind": wanted.kind if wanted.kind != current.kind else None,
            "enabled": wanted.enabled if wanted.enabled != current.enabled else None,
            "rate_limit": (wanted.rate_limit or 0)
            if wanted.rate_limit != current.rate_limit
            else None,
        }
        if any(value is not None for value in changes.values()):
            updated = await store.update_source(wanted.name, **changes)  # type: ignore[arg-type]
            if updated is not None:
                report.updated.append(updated)
    if not config.sources and not await store.list_sources():
        report.created.append(await store.create_source("default", new_write_key()))


async def apply_catalog(config: ServerConfig, catalog: Catalog) -> None:
    """Create or update the ``[[apps]]`` and ``[[destinations]]`` of the config file."""
    for kind, items in (("app", config.apps), ("destination", config.destinations)):
        for body in items:
            name = body.get("name")
            exists = (catalog.app if kind == "app" else catalog.destination)(str(name))
            save = catalog.save_app if kind == "app" else catalog.save_destination
            try:
                await save(body, replace=str(name) if exists else None)
            except CatalogError as exc:
                raise ConfigError(f"[[{kind}s]] {name!r}: {exc}") from None
