"""The server's configuration: defaults, ``segue.toml``, environment overrides.

The TOML file is declarative: what it names is created or brought up to date at
start, so restarting with the same file changes nothing.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from segue.store.records import SourceKind

DEFAULT_PORT = 8088
DEFAULT_DEDUP_WINDOW_S = 24 * 3600
ROLES = ("all", "ingest", "deliver")


class ConfigError(ValueError):
    """The configuration file or an environment variable is invalid."""


@dataclass(frozen=True, slots=True)
class SourceConfig:
    name: str
    write_key: str | None = None
    kind: SourceKind = SourceKind.STANDARD
    rate_limit: float | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class ServerConfig:
    data_dir: Path = Path(".segue")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    role: str = "all"
    admin_token: str | None = None
    dedup_window_s: int = DEFAULT_DEDUP_WINDOW_S
    trust_forwarded_for: bool = False
    sources: tuple[SourceConfig, ...] = field(default_factory=tuple)

    def database(self) -> str:
        """The database URL, defaulting to SQLite inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'segue.db').resolve()}"


_SERVER_KEYS = {
    "data": "data_dir",
    "database": "database_url",
    "host": "host",
    "port": "port",
    "role": "role",
    "admin_token": "admin_token",
    "dedup_window": "dedup_window_s",
    "trust_forwarded_for": "trust_forwarded_for",
}
_SOURCE_KEYS = {"name", "write_key", "kind", "rate_limit", "enabled"}


def load_config(path: Path) -> ServerConfig:
    """Read ``segue.toml``; unknown keys are errors so that typos do not go unnoticed."""
    try:
        document = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_config(document, origin=str(path))


def parse_config(document: Mapping[str, Any], origin: str = "config") -> ServerConfig:
    unknown = set(document) - {"server", "sources"}
    if unknown:
        raise ConfigError(f"{origin}: unknown section(s) {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    server = document.get("server", {})
    for key, value in server.items():
        if key not in _SERVER_KEYS:
            raise ConfigError(f"{origin}: unknown key [server].{key}")
        values[_SERVER_KEYS[key]] = Path(value) if key == "data" else value
    sources = tuple(_source(raw, origin, i) for i, raw in enumerate(document.get("sources", [])))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ConfigError(f"{origin}: two [[sources]] have the same name")
    config = ServerConfig(**values, sources=sources)
    _check(config, origin)
    return config


def _source(raw: Mapping[str, Any], origin: str, index: int) -> SourceConfig:
    where = f"{origin}: [[sources]] #{index + 1}"
    unknown = set(raw) - _SOURCE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: `name` is required")
    try:
        kind = SourceKind(raw.get("kind", "standard"))
    except ValueError:
        raise ConfigError(f"{where}: `kind` must be standard or stream") from None
    rate = raw.get("rate_limit")
    if rate is not None and (not isinstance(rate, int | float) or rate < 0):
        raise ConfigError(f"{where}: `rate_limit` must be a number of requests per second")
    return SourceConfig(
        name=name,
        write_key=raw.get("write_key"),
        kind=kind,
        rate_limit=float(rate) if rate else None,
        enabled=bool(raw.get("enabled", True)),
    )


def _check(config: ServerConfig, origin: str) -> None:
    if config.role not in ROLES:
        raise ConfigError(f"{origin}: role must be one of {', '.join(ROLES)}")
    if not 0 < config.port < 65536:
        raise ConfigError(f"{origin}: port must be between 1 and 65535")
    if config.dedup_window_s < 0:
        raise ConfigError(f"{origin}: dedup_window must be a number of seconds")


def apply_environment(
    config: ServerConfig, environ: Mapping[str, str] = os.environ
) -> ServerConfig:
    """``SEGUE_*`` variables win over the file (a deployment's secrets live there)."""
    changes: dict[str, Any] = {}
    if token := environ.get("SEGUE_ADMIN_TOKEN"):
        changes["admin_token"] = token
    if url := environ.get("SEGUE_DATABASE_URL"):
        changes["database_url"] = url
    if data := environ.get("SEGUE_DATA"):
        changes["data_dir"] = Path(data)
    if host := environ.get("SEGUE_HOST"):
        changes["host"] = host
    if port := environ.get("SEGUE_PORT"):
        if not port.isdigit():
            raise ConfigError("SEGUE_PORT must be a port number")
        changes["port"] = int(port)
    if window := environ.get("SEGUE_DEDUP_WINDOW"):
        if not window.isdigit():
            raise ConfigError("SEGUE_DEDUP_WINDOW must be a number of seconds")
        changes["dedup_window_s"] = int(window)
    updated = replace(config, **changes)
    _check(updated, "environment")
    return updated
