"""Shared fixtures: store backends for the contract suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from segue.store import Store
from segue.store.factory import open_store, sqlite_url
from tests.support.server import SegueProcess

BACKENDS = ["memory", "sqlite"]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Every Store backend, opened on a fresh database."""
    url = "memory://" if request.param == "memory" else sqlite_url(tmp_path / "segue.db")
    backend = open_store(url)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
def segue_server(tmp_path: Path) -> Iterator[SegueProcess]:
    """A real ``segue serve`` subprocess with source `test` (write key ``wk_test``)."""
    server = SegueProcess(tmp_path / "data").start()
    try:
        yield server
    finally:
        server.stop()
