"""First run and declarative sources: apply_sources, the `default` source, the admin token."""

from __future__ import annotations

import re
import stat
from dataclasses import replace
from pathlib import Path

from segue.app import Segue
from segue.bootstrap import (
    TOKEN_FILE,
    BootReport,
    admin_token,
    apply_sources,
    ensure_data_dir,
    new_admin_token,
    new_write_key,
)
from segue.config import ServerConfig, SourceConfig
from segue.store import SourceKind, Store
from segue.store.memory import InMemoryStore

DECLARED = (
    SourceConfig(name="web", write_key="wk_web"),
    SourceConfig(name="app"),  # key generated on first run
    SourceConfig(name="firehose", kind=SourceKind.STREAM, rate_limit=50.0, enabled=False),
)


def config_with(*sources: SourceConfig, **fields: object) -> ServerConfig:
    return replace(ServerConfig(), sources=tuple(sources), **fields)  # type: ignore[arg-type]


async def run(config: ServerConfig, store: Store) -> BootReport:
    report = BootReport(admin_token="t")
    await apply_sources(config, store, report)
    return report


# -- keys --------------------------------------------------------------------


def test_new_write_key_shape() -> None:
    keys = {new_write_key() for _ in range(200)}
    assert len(keys) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", key) for key in keys)


def test_new_admin_token_shape() -> None:
    token = new_admin_token()
    assert token.startswith("sga_")
    assert len(token) > 40
    assert token != new_admin_token()


# -- apply_sources -----------------------------------------------------------


async def test_first_run_creates_the_declared_sources() -> None:
    store = InMemoryStore()
    report = await run(config_with(*DECLARED), store)
    assert [s.name for s in report.created] == ["web", "app", "firehose"]
    assert report.updated == []

    web = await store.get_source("web")
    assert web is not None
    assert web.write_key == "wk_web"
    assert web.enabled
    app = await store.get_source("app")
    assert app is not None
    assert re.fullmatch(r"[A-Za-z0-9]{32}", app.write_key)
    firehose = await store.get_source("firehose")
    assert firehose is not None
    assert firehose.kind is SourceKind.STREAM
    assert firehose.rate_limit == 50.0
    assert firehose.enabled is False
    assert report.created[2].enabled is False  # the report shows the final state
    assert await store.get_source("default") is None


async def test_second_run_with_the_same_config_changes_nothing() -> None:
    store = InMemoryStore()
    config = config_with(*DECLARED)
    await run(config, store)
    before = await store.list_sources()

    report = await run(config, store)
    assert report.created == []
    assert report.updated == []
    assert await store.list_sources() == before  # ids, generated keys, everything


async def test_idempotent_on_every_backend(store: Store) -> None:
    config = config_with(*DECLARED, SourceConfig(name="limited", rate_limit=2.5))
    await run(config, store)
    before = await store.list_sources()
    report = await run(config, store)
    assert (report.created, report.updated) == ([], [])
    assert await store.list_sources() == before


async def test_write_key_rotation_from_config() -> None:
    store = InMemoryStore()
    await run(config_with(SourceConfig(name="web", write_key="wk_old")), store)
    original = await store.get_source("web")

    report = await run(config_with(SourceConfig(name="web", write_key="wk_new")), store)
    assert [s.name for s in report.updated] == ["web"]
    assert report.created == []
    web = await store.get_source("web")
    assert web is not None
    assert web.write_key == "wk_new"
    assert original is not None
    assert web.id == original.id


async def test_config_without_write_key_keeps_the_current_one() -> None:
    store = InMemoryStore()
    await store.create_source("web", "wk_made_in_the_ui")
    report = await run(config_with(SourceConfig(name="web")), store)
    assert report.updated == []
    assert report.created == []
    web = await store.get_source("web")
    assert web is not None
    assert web.write_key == "wk_made_in_the_ui"


async def test_config_brings_other_fields_up_to_date() -> None:
    store = InMemoryStore()
    await run(config_with(SourceConfig(name="web", rate_limit=10.0)), store)

    wanted = SourceConfig(name="web", kind=SourceKind.STREAM, enabled=False, rate_limit=20.0)
    report = await run(config_with(wanted), store)
    assert [s.name for s in report.updated] == ["web"]
    web = await store.get_source("web")
    assert web is not None
    assert (web.kind, web.enabled, web.rate_limit) == (SourceKind.STREAM, False, 20.0)

    # dropping rate_limit from the file removes the limit
    await run(config_with(SourceConfig(name="web", kind=SourceKind.STREAM, enabled=False)), store)
    web = await store.get_source("web")
    assert web is not None
    assert web.rate_limit is None


async def test_sources_not_in_the_config_are_left_alone() -> None:
    store = InMemoryStore()
    made_in_ui = await store.create_source("mobile", "wk_mobile")
    await run(config_with(SourceConfig(name="web")), store)
    assert await store.get_source("mobile") == made_in_ui


async def test_default_source_on_a_first_run_without_config() -> None:
    store = InMemoryStore()
    report = await run(ServerConfig(), store)
    assert [s.name for s in report.created] == ["default"]
    sources = await store.list_sources()
    assert [s.name for s in sources] == ["default"]
    assert re.fullmatch(r"[A-Za-z0-9]{32}", sources[0].write_key)

    again = await run(ServerConfig(), store)
    assert again.created == []
    assert await store.list_sources() == sources


async def test_no_default_when_sources_are_configured() -> None:
    store = InMemoryStore()
    await run(config_with(SourceConfig(name="web")), store)
    assert [s.name for s in await store.list_sources()] == ["web"]


async def test_no_default_when_a_source_already_exists() -> None:
    store = InMemoryStore()
    await store.create_source("made-in-ui", "wk_ui")
    report = await run(ServerConfig(), store)
    assert report.created == []
    assert [s.name for s in await store.list_sources()] == ["made-in-ui"]


# -- admin token -------------------------------------------------------------


def test_configured_admin_token_wins_and_writes_nothing(tmp_path: Path) -> None:
    config = config_with(data_dir=tmp_path, admin_token="sga_configured")
    assert admin_token(config) == ("sga_configured", False)
    assert not (tmp_path / TOKEN_FILE).exists()


def test_admin_token_file_is_created_private_then_reused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ensure_data_dir(data)
    config = config_with(data_dir=data)

    token, created = admin_token(config)
    assert created is True
    assert token.startswith("sga_")
    path = data / TOKEN_FILE
    assert path.read_text("utf-8").strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    assert admin_token(config) == (token, False)
    assert path.read_text("utf-8").strip() == token


def test_admin_token_file_written_by_hand_is_used(tmp_path: Path) -> None:
    (tmp_path / TOKEN_FILE).write_text("  sga_by_hand \n", "utf-8")
    assert admin_token(config_with(data_dir=tmp_path)) == ("sga_by_hand", False)


def test_data_dir_is_private(tmp_path: Path) -> None:
    data = tmp_path / "nested" / "data"
    ensure_data_dir(data)
    assert data.is_dir()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    ensure_data_dir(data)  # a second start is fine


async def test_startup_with_sqlite_creates_data_dir_and_token(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    segue = Segue.build(config_with(data_dir=data), store=InMemoryStore())
    report = await segue.startup()
    try:
        assert report.token_created is True
        assert (data / TOKEN_FILE).read_text("utf-8").strip() == report.admin_token
        assert [s.name for s in report.created] == ["default"]
    finally:
        await segue.shutdown()


async def test_startup_with_external_database_and_no_data_dir(tmp_path: Path) -> None:
    config = config_with(data_dir=tmp_path / "missing", database_url="postgresql://db/segue")
    segue = Segue.build(config, store=InMemoryStore())
    report = await segue.startup()
    try:
        assert report.admin_token
    finally:
        await segue.shutdown()
