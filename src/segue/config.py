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
from typing import Any, Literal

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
class EgressConfig:
    """Which otherwise-blocked addresses webhooks and functions may call."""

    allow: tuple[str, ...] = ()
    allow_http: bool = False


SandboxMode = Literal["auto", "bwrap", "none"]


@dataclass(frozen=True, slots=True)
class FunctionsConfig:
    """The sandbox that runs destination functions."""

    workers: int = 2  # worker processes per destination (a function scope)
    memory_mb: int = 256
    cpu_s: int = 60  # CPU seconds a worker process may use before it is replaced
    sandbox: SandboxMode = "auto"  # "auto": bubblewrap when available; "bwrap"; "none"
    max_workers: int = 32  # worker processes in all; idle ones are ended to make room
    idle_timeout_s: int = 60  # a worker unused this long is ended
    processes: int = 64  # processes (and threads) one sandbox may hold at once
    cpu_cores: float = 1.0  # CPU one sandbox may use, where control groups allow it


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
    lease_s: int = 30  # a claimed delivery belongs to its worker this long (renewed)
    # slow and greedy clients (docs/operations.md): per connection, per process
    header_timeout_s: float = 10.0  # the request head must arrive within this
    body_timeout_s: float = 10.0  # longest pause while a request body is expected
    max_header_bytes: int = 64 * 1024  # request line + headers; more is answered 431
    max_headers: int = 100  # more is answered 431
    max_connections: int = 0  # 0: three quarters of the open-file limit
    config_path: Path | None = None  # the file this was read from: secret, like the data dir
    sources: tuple[SourceConfig, ...] = field(default_factory=tuple)
    apps: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    destinations: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    egress: EgressConfig = field(default_factory=lambda: EgressConfig())
    functions: FunctionsConfig = field(default_factory=lambda: FunctionsConfig())

    def database(self) -> str:
        """The database URL, defaulting to SQLite inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'segue.db').resolve()}"


# TOML key -> (ServerConfig field, expected type)
_SERVER_KEYS: dict[str, tuple[str, type]] = {
    "data": ("data_dir", str),
    "database": ("database_url", str),
    "host": ("host", str),
    "port": ("port", int),
    "role": ("role", str),
    "admin_token": ("admin_token", str),
    "dedup_window": ("dedup_window_s", int),
    "trust_forwarded_for": ("trust_forwarded_for", bool),
    "lease": ("lease_s", int),
    "header_timeout": ("header_timeout_s", float),
    "body_timeout": ("body_timeout_s", float),
    "max_header_size": ("max_header_bytes", int),
    "max_headers": ("max_headers", int),
    "max_connections": ("max_connections", int),
}
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_SOURCE_KEYS = {"name", "write_key", "kind", "rate_limit", "enabled"}


def load_config(path: Path) -> ServerConfig:
    """Read ``segue.toml``; unknown keys are errors so that typos do not go unnoticed."""
    try:
        document = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    config = parse_config(document, origin=str(path))
    # a function file is named relative to the config file that names it
    apps = tuple(
        {**app, "function": str((path.parent / app["function"]).resolve())}
        if isinstance(app.get("function"), str)
        else app
        for app in config.apps
    )
    return replace(config, apps=apps, config_path=path.resolve())


def parse_config(document: Mapping[str, Any], origin: str = "config") -> ServerConfig:
    unknown = set(document) - {"server", "sources", "apps", "destinations", "egress", "functions"}
    if unknown:
        raise ConfigError(f"{origin}: unknown section(s) {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    server = document.get("server", {})
    if not isinstance(server, dict):
        raise ConfigError(f"{origin}: [server] must be a table")
    for key, value in server.items():
        if key not in _SERVER_KEYS:
            raise ConfigError(f"{origin}: unknown key [server].{key}")
        name, expected = _SERVER_KEYS[key]
        if not _is_type(value, expected):
            raise ConfigError(f"{origin}: [server].{key} must be a {expected.__name__}")
        values[name] = Path(value) if key == "data" else value
    raw_sources = document.get("sources", [])
    if not isinstance(raw_sources, list) or not all(isinstance(r, dict) for r in raw_sources):
        raise ConfigError(f"{origin}: sources must be written as [[sources]] tables")
    sources = tuple(_source(raw, origin, i) for i, raw in enumerate(raw_sources))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ConfigError(f"{origin}: two [[sources]] have the same name")
    config = ServerConfig(
        **values,
        sources=sources,
        apps=_tables(document, "apps", origin),
        destinations=tuple(_destination(raw) for raw in _tables(document, "destinations", origin)),
        egress=_egress(document.get("egress", {}), origin),
        functions=_functions(document.get("functions", {}), origin),
    )
    _check(config, origin)
    return config


_DESTINATION_OPTIONS = {
    "timeout_s",
    "concurrency",
    "snake_case",
    "allow_http",
    "first_backoff_s",
    "max_backoff_s",
    "retry_window_s",
}


def _tables(document: Mapping[str, Any], key: str, origin: str) -> tuple[dict[str, Any], ...]:
    """``[[apps]]`` / ``[[destinations]]``; their content is checked by the catalog."""
    raw = document.get(key, [])
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise ConfigError(f"{origin}: {key} must be written as [[{key}]] tables")
    names = [item.get("name") for item in raw]
    if len(set(names)) != len(names):
        raise ConfigError(f"{origin}: two [[{key}]] have the same name")
    return tuple(dict(item) for item in raw)


def _destination(raw: dict[str, Any]) -> dict[str, Any]:
    """Delivery options may be written next to the other keys; fold them into ``options``."""
    options = dict(raw.get("options", {}))
    body = {}
    for key, value in raw.items():
        if key in _DESTINATION_OPTIONS:
            options[key] = value
        elif key != "options":
            body[key] = value
    if options:
        body["options"] = options
    return body


def _functions(raw: object, origin: str) -> FunctionsConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: [functions] must be a table")
    known = {"workers", "memory_mb", "cpu_s", "sandbox", "max_workers", "idle_timeout_s"}
    known |= {"processes", "cpu_cores"}
    if unknown := set(raw) - known:
        raise ConfigError(f"{origin}: unknown key(s) in [functions]: {', '.join(sorted(unknown))}")
    for key in ("workers", "memory_mb", "cpu_s", "max_workers", "idle_timeout_s", "processes"):
        value = raw.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{origin}: [functions].{key} must be a whole number ≥ 1")
    sandbox = raw.get("sandbox", "auto")
    if sandbox not in ("auto", "bwrap", "none"):
        raise ConfigError(f"{origin}: [functions].sandbox must be auto, bwrap or none")
    cores = raw.get("cpu_cores", 1.0)
    if isinstance(cores, bool) or not isinstance(cores, int | float) or not 0 < cores <= 1024:
        raise ConfigError(f"{origin}: [functions].cpu_cores must be a number above 0")
    defaults = FunctionsConfig()
    return FunctionsConfig(
        workers=raw.get("workers", defaults.workers),
        memory_mb=raw.get("memory_mb", defaults.memory_mb),
        cpu_s=raw.get("cpu_s", defaults.cpu_s),
        sandbox=sandbox,
        max_workers=raw.get("max_workers", defaults.max_workers),
        idle_timeout_s=raw.get("idle_timeout_s", defaults.idle_timeout_s),
        processes=raw.get("processes", defaults.processes),
        cpu_cores=float(cores),
    )


def _egress(raw: object, origin: str) -> EgressConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: [egress] must be a table")
    if unknown := set(raw) - {"allow", "allow_http"}:
        raise ConfigError(f"{origin}: unknown key(s) in [egress]: {', '.join(sorted(unknown))}")
    allow = raw.get("allow", [])
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        raise ConfigError(f"{origin}: [egress].allow must be a list of addresses or networks")
    from segue.delivery.egress import AddressRule

    for item in allow:
        try:
            AddressRule.parse(item)
        except ValueError as exc:
            raise ConfigError(f"{origin}: [egress].allow: {exc}") from None
    allow_http = raw.get("allow_http", False)
    if not isinstance(allow_http, bool):
        raise ConfigError(f"{origin}: [egress].allow_http must be true or false")
    return EgressConfig(allow=tuple(allow), allow_http=allow_http)


def _is_type(value: object, expected: type) -> bool:
    if expected is int:  # bool is an int in Python, not in TOML
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:  # a whole number of seconds is a number of seconds too
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, expected)


def _source(raw: Mapping[str, Any], origin: str, index: int) -> SourceConfig:
    where = f"{origin}: [[sources]] #{index + 1}"
    unknown = set(raw) - _SOURCE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name or not set(name) <= _NAME_CHARS:
        raise ConfigError(f"{where}: `name` is required: lower-case letters, digits, - and _")
    try:
        kind = SourceKind(raw.get("kind", "standard"))
    except ValueError:
        raise ConfigError(f"{where}: `kind` must be standard or stream") from None
    write_key = raw.get("write_key")
    if write_key is not None and (not isinstance(write_key, str) or not write_key):
        raise ConfigError(f"{where}: `write_key` must be a non-empty string")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: `enabled` must be true or false")
    rate = raw.get("rate_limit")
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0
    ):
        raise ConfigError(f"{where}: `rate_limit` must be a number of requests per second")
    return SourceConfig(
        name=name,
        write_key=write_key,
        kind=kind,
        rate_limit=float(rate) if rate else None,
        enabled=enabled,
    )


def check_config(config: ServerConfig, origin: str) -> None:
    """Cross-field checks, run again after command-line flags are applied."""
    _check(config, origin)


def _check(config: ServerConfig, origin: str) -> None:
    if config.role not in ROLES:
        raise ConfigError(f"{origin}: role must be one of {', '.join(ROLES)}")
    if not 0 < config.port < 65536:
        raise ConfigError(f"{origin}: port must be between 1 and 65535")
    if config.dedup_window_s < 0:
        raise ConfigError(f"{origin}: dedup_window must be a number of seconds")
    if config.lease_s < 1:
        raise ConfigError(f"{origin}: lease must be at least 1 second")
    if not (0 < config.header_timeout_s <= 3600 and 0 < config.body_timeout_s <= 3600):
        raise ConfigError(f"{origin}: header_timeout and body_timeout must be 0-3600 seconds")
    if config.max_header_bytes < 1024 or config.max_headers < 1:
        raise ConfigError(f"{origin}: max_header_size must be ≥ 1024, max_headers ≥ 1")
    if config.max_connections < 0:
        raise ConfigError(f"{origin}: max_connections must be ≥ 0 (0: automatic)")
    if config.database_url is not None:
        from segue.store.factory import check_database_url

        try:
            check_database_url(config.database_url)
        except ValueError as exc:
            raise ConfigError(f"{origin}: {exc}") from None


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
        if not (port.isascii() and port.isdigit()):
            raise ConfigError("SEGUE_PORT must be a port number")
        changes["port"] = int(port)
    if lease := environ.get("SEGUE_LEASE"):
        if not (lease.isascii() and lease.isdigit()):
            raise ConfigError("SEGUE_LEASE must be a number of seconds")
        changes["lease_s"] = int(lease)
    if window := environ.get("SEGUE_DEDUP_WINDOW"):
        if not (window.isascii() and window.isdigit()):
            raise ConfigError("SEGUE_DEDUP_WINDOW must be a number of seconds")
        changes["dedup_window_s"] = int(window)
    updated = replace(config, **changes)
    _check(updated, "environment")
    return updated
