"""segue.toml parsing and ``SEGUE_*`` environment overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from segue.config import (
    DEFAULT_DEDUP_WINDOW_S,
    DEFAULT_PORT,
    ConfigError,
    ServerConfig,
    SourceConfig,
    apply_environment,
    load_config,
    parse_config,
)
from segue.store import SourceKind

FULL_TOML = """
[server]
data = "/var/lib/segue"
database = "sqlite:////srv/segue/main.db"
host = "0.0.0.0"
port = 9090
role = "ingest"
admin_token = "sga_from_file"
dedup_window = 3600
trust_forwarded_for = true

[[sources]]
name = "web"
write_key = "wk_web"

[[sources]]
name = "firehose"
kind = "stream"
rate_limit = 50
enabled = false
"""


def test_defaults() -> None:
    config = parse_config({})
    assert config == ServerConfig()
    assert config.port == DEFAULT_PORT
    assert config.host == "127.0.0.1"
    assert config.role == "all"
    assert config.dedup_window_s == DEFAULT_DEDUP_WINDOW_S
    assert config.sources == ()
    assert config.database().startswith("sqlite:///")
    assert config.database().endswith("segue.db")


def test_full_file(tmp_path: Path) -> None:
    path = tmp_path / "segue.toml"
    path.write_text(FULL_TOML, "utf-8")
    config = load_config(path)
    assert config.data_dir == Path("/var/lib/segue")
    assert config.database_url == "sqlite:////srv/segue/main.db"
    assert config.database() == "sqlite:////srv/segue/main.db"
    assert config.host == "0.0.0.0"
    assert config.port == 9090
    assert config.role == "ingest"
    assert config.admin_token == "sga_from_file"
    assert config.dedup_window_s == 3600
    assert config.trust_forwarded_for is True
    assert config.sources == (
        SourceConfig(name="web", write_key="wk_web"),
        SourceConfig(name="firehose", kind=SourceKind.STREAM, rate_limit=50.0, enabled=False),
    )


def test_sqlite_database_lives_in_the_data_dir(tmp_path: Path) -> None:
    config = parse_config({"server": {"data": str(tmp_path / "state")}})
    assert config.database() == f"sqlite:///{(tmp_path / 'state' / 'segue.db').resolve()}"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[server\nport = 1", "utf-8")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_config(path)


def test_unknown_section() -> None:
    with pytest.raises(ConfigError, match=r"segue\.toml: unknown section\(s\) destinatons"):
        parse_config({"destinatons": {}}, origin="segue.toml")


def test_unknown_server_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown key \[server\]\.prot"):
        parse_config({"server": {"prot": 8080}})


def test_unknown_source_key_names_the_source() -> None:
    document = {"sources": [{"name": "web"}, {"name": "app", "writekey": "wk"}]}
    with pytest.raises(ConfigError, match=r"\[\[sources\]\] #2: unknown key\(s\) writekey"):
        parse_config(document)


def test_duplicate_source_names() -> None:
    document = {"sources": [{"name": "web"}, {"name": "app"}, {"name": "web"}]}
    with pytest.raises(ConfigError, match="same name"):
        parse_config(document)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({}, "`name` is required"),
        ({"name": ""}, "`name` is required"),
        ({"name": 5}, "`name` is required"),
        ({"name": "web", "kind": "firehose"}, "`kind` must be standard or stream"),
        ({"name": "web", "rate_limit": -1}, "`rate_limit`"),
        ({"name": "web", "rate_limit": "fast"}, "`rate_limit`"),
    ],
)
def test_bad_source(source: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"sources": [source]})


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ({"role": "everything"}, "role must be one of all, ingest, deliver"),
        ({"port": 0}, "port must be between 1 and 65535"),
        ({"port": 70000}, "port must be between 1 and 65535"),
        ({"dedup_window": -1}, "dedup_window"),
    ],
)
def test_bad_server_values(server: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"server": server})


def test_rate_limit_zero_means_none() -> None:
    config = parse_config({"sources": [{"name": "web", "rate_limit": 0}]})
    assert config.sources[0].rate_limit is None


@pytest.mark.parametrize(
    "document",
    [{"server": {"port": "8080"}}, {"server": {"dedup_window": "1h"}}, {"server": 1}],
    ids=["port-string", "dedup-string", "server-not-table"],
)
def test_wrong_value_types_are_config_errors(document: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        parse_config(document)


def test_enabled_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError):
        parse_config({"sources": [{"name": "web", "enabled": "false"}]})


# -- environment -----------------------------------------------------------


def test_environment_overrides_the_file() -> None:
    config = parse_config({"server": {"port": 9000, "admin_token": "from-file"}})
    env = {
        "SEGUE_ADMIN_TOKEN": "from-env",
        "SEGUE_DATABASE_URL": "sqlite:////srv/segue/other.db?synchronous=normal",
        "SEGUE_DATA": "/data",
        "SEGUE_HOST": "::",
        "SEGUE_PORT": "8123",
        "SEGUE_DEDUP_WINDOW": "60",
    }
    updated = apply_environment(config, env)
    assert updated.admin_token == "from-env"
    assert updated.database_url == "sqlite:////srv/segue/other.db?synchronous=normal"
    assert updated.data_dir == Path("/data")
    assert updated.host == "::"
    assert updated.port == 8123
    assert updated.dedup_window_s == 60
    assert config.port == 9000  # the original is not modified


def test_empty_environment_changes_nothing() -> None:
    config = parse_config({"server": {"port": 9000}})
    assert apply_environment(config, {}) == config
    # empty values count as unset
    assert apply_environment(config, {"SEGUE_PORT": "", "SEGUE_ADMIN_TOKEN": ""}) == config


def test_unrelated_variables_are_ignored() -> None:
    config = ServerConfig()
    assert apply_environment(config, {"PORT": "1", "SEGUE_PROT": "2"}) == config


@pytest.mark.parametrize(
    ("port", "message"),
    [
        ("http", "SEGUE_PORT must be a port number"),
        ("-1", "SEGUE_PORT must be a port number"),
        ("80.5", "SEGUE_PORT must be a port number"),
        ("0", "port must be between 1 and 65535"),
        ("65536", "port must be between 1 and 65535"),
    ],
)
def test_bad_segue_port(port: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_environment(ServerConfig(), {"SEGUE_PORT": port})


def test_bad_dedup_window() -> None:
    with pytest.raises(ConfigError, match="SEGUE_DEDUP_WINDOW"):
        apply_environment(ServerConfig(), {"SEGUE_DEDUP_WINDOW": "1d"})


def test_segue_port_with_non_ascii_digit() -> None:
    with pytest.raises(ConfigError):
        apply_environment(ServerConfig(), {"SEGUE_PORT": "8²"})


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("postgresql://db/segue", "unsupported database URL"),
        ("sqlite:////tmp/x.db?synchronous=sometimes", "synchronous must be one of"),
        ("sqlite:////tmp/x.db?mode=ro", "unknown SQLite option"),
        ("sqlite:///", "names no file"),
    ],
)
def test_a_database_url_segue_cannot_open_is_a_config_error(url: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        apply_environment(ServerConfig(), {"SEGUE_DATABASE_URL": url})


def test_functions_section_takes_the_sandbox_limits() -> None:
    config = parse_config(
        {
            "functions": {
                "workers": 3,
                "max_workers": 10,
                "idle_timeout_s": 5,
                "processes": 16,
                "cpu_cores": 0.5,
                "sandbox": "none",
            }
        }
    )
    functions = config.functions
    assert (functions.workers, functions.max_workers, functions.idle_timeout_s) == (3, 10, 5)
    assert (functions.processes, functions.cpu_cores, functions.sandbox) == (16, 0.5, "none")


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"max_workers": 0}, "max_workers must be a whole number"),
        ({"processes": "many"}, "processes must be a whole number"),
        ({"cpu_cores": 0}, "cpu_cores must be a number above 0"),
        ({"cpu_cores": True}, "cpu_cores must be a number above 0"),
        ({"uid": 5}, "unknown key(s) in [functions]: uid"),
    ],
)
def test_functions_section_refuses_bad_values(raw: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"functions": raw})
    assert words in str(info.value)


def test_egress_allow_rules_with_ports_are_checked() -> None:
    config = parse_config({"egress": {"allow": ["127.0.0.1:9000", "[::1]:8080", "10.0.0.0/8"]}})
    assert config.egress.allow == ("127.0.0.1:9000", "[::1]:8080", "10.0.0.0/8")
    with pytest.raises(ConfigError, match="port must be a number"):
        parse_config({"egress": {"allow": ["127.0.0.1:99999"]}})
