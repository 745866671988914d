"""Acceptance: the ``segue`` command as a user runs it.

``segue serve`` runs as a real subprocess in a temporary working directory with no
``SEGUE_*`` variables unless a test sets them; the banner is parsed from stdout
(COLUMNS=200 and NO_COLOR=1 keep rich's panel on one line per row).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.server import free_port

import segue

READY_TIMEOUT_S = 20.0
CLI_TIMEOUT_S = 30.0


def _env(**extra: str) -> dict[str, str]:
    """The test's environment minus every SEGUE_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    env.update(COLUMNS="200", NO_COLOR="1")
    env.update(extra)
    return env


def _segue(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segue", *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


@dataclass
class Serve:
    """One ``segue serve`` process started in ``cwd``."""

    cwd: Path
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    out_path: Path | None = None
    err_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Serve:
        name = f"serve-{uuid.uuid4().hex[:8]}"
        self.out_path = self.cwd.parent / f"{name}.stdout"
        self.err_path = self.cwd.parent / f"{name}.stderr"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "segue", "serve", "--port", str(self.port), *self.args],
                cwd=self.cwd,
                env=_env(**self.env),
                stdout=out,
                stderr=err,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"segue serve exited with {self.process.returncode}:\n{self.transcript()}"
                )
            try:
                if httpx.get(f"{self.base}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"segue serve did not answer /health in time:\n{self.transcript()}")

    def output(self) -> str:
        """What the process wrote to stdout (the banner goes there)."""
        return self.out_path.read_text("utf-8", "replace") if self.out_path else ""

    def transcript(self) -> str:
        err = self.err_path.read_text("utf-8", "replace") if self.err_path else ""
        return f"--- stdout\n{self.output()}\n--- stderr\n{err}"

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"segue serve ignored SIGTERM:\n{self.transcript()}") from None
        code = self.process.returncode
        assert code == 0, f"exit code {code}:\n{self.transcript()}"
        return code

    # -- the banner ----------------------------------------------------------
    def banner_value(self, label: str) -> str | None:
        match = re.search(rf"{re.escape(label)}\s+(\S+)", self.output())
        return match.group(1) if match else None

    def created_sources(self) -> dict[str, str]:
        """name -> write key, from the ``created source`` lines."""
        return dict(re.findall(r"created source (\S+)\s+write key: (\S+)", self.output()))

    def updated_sources(self) -> list[str]:
        return re.findall(r"updated source (\S+) from the config file", self.output())

    # -- talking to it -----------------------------------------------------
    def admin(self, token: str, path: str) -> httpx.Response:
        return httpx.get(
            f"{self.base}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def sources(self, token: str) -> dict[str, dict[str, Any]]:
        response = self.admin(token, "/sources")
        assert response.status_code == 200, response.text
        return {s["name"]: s for s in response.json()["sources"]}

    def track(self, write_key: str, message_id: str | None = None) -> httpx.Response:
        body = {
            "userId": "cli-user",
            "event": "CLI Tested",
            "messageId": message_id or uuid.uuid4().hex,
        }
        return httpx.post(f"{self.base}/v1/track", json=body, auth=(write_key, ""), timeout=10)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def serves() -> Iterator[list[Serve]]:
    """Collects the servers a test starts and kills any left running."""
    started: list[Serve] = []
    try:
        yield started
    finally:
        for server in started:
            if server.process is not None and server.process.poll() is None:
                server.process.kill()
                server.process.wait()


def _serve(serves: list[Serve], cwd: Path, *args: str, **env: str) -> Serve:
    server = Serve(cwd, args, env)
    serves.append(server)
    return server.start()


def _data_files(path: Path) -> set[str]:
    """Files in the data dir, ignoring SQLite's WAL side files."""
    return {p.name for p in path.iterdir() if not p.name.endswith(("-wal", "-shm", "-journal"))}


# -- first run ---------------------------------------------------------------
@pytest.mark.slow
def test_first_run_in_an_empty_directory_bootstraps_everything(
    workdir: Path, serves: list[Serve]
) -> None:
    first = _serve(serves, workdir)
    data = workdir / ".segue"
    assert data.is_dir()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert (data / "segue.db").is_file()
    token_file = data / "admin_token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text("utf-8").strip()
    assert token

    # the banner: URLs, the admin token, the new source's write key
    out = first.output()
    assert first.banner_value("Tracking API") == f"{first.base}/v1/"
    assert first.banner_value("Admin API") == f"{first.base}/api/v1/"
    assert first.banner_value("Metrics") == f"{first.base}/metrics"
    assert first.banner_value("Admin token") == token
    created = first.created_sources()
    assert list(created) == ["default"], out
    write_key = created["default"]
    assert re.fullmatch(r"[A-Za-z0-9]{32}", write_key)

    # what the banner says works
    assert httpx.get(f"{first.base}/", timeout=10).status_code == 200
    assert httpx.get(f"{first.base}/api/v1/openapi.json", timeout=10).status_code == 200
    assert httpx.get(f"{first.base}/metrics", timeout=10).status_code == 200
    sources = first.sources(token)
    assert list(sources) == ["default"]
    assert sources["default"]["write_key"] == write_key
    assert first.admin("not-the-token", "/sources").status_code == 401
    assert first.track(write_key).status_code == 200
    first.stop()
    files_after_first = _data_files(data)

    # second run on the same directory: nothing new
    second = _serve(serves, workdir)
    assert second.created_sources() == {}, second.output()
    assert "created source" not in second.output()
    assert token not in second.output()  # the stored token is not printed again
    assert token_file.read_text("utf-8").strip() == token
    assert _data_files(data) == files_after_first
    again = second.sources(token)
    assert list(again) == ["default"]
    assert again["default"]["write_key"] == write_key
    assert again["default"]["id"] == sources["default"]["id"]
    assert again["default"]["event_count"] == 1
    assert second.track(write_key).status_code == 200
    second.stop()


# -- segue.toml ----------------------------------------------------------------
@pytest.mark.slow
def test_config_file_sources_are_applied_idempotently_and_rotate_keys(
    workdir: Path, serves: list[Serve]
) -> None:
    token = "cli-admin-" + uuid.uuid4().hex
    config = workdir / "segue.toml"
    config.write_text(
        '[[sources]]\nname = "web"\nwrite_key = "wk_web_one"\n\n'
        '[[sources]]\nname = "backend"\nkind = "standard"\n',
        "utf-8",
    )

    first = _serve(serves, workdir, "--config", "segue.toml", SEGUE_ADMIN_TOKEN=token)
    created = first.created_sources()
    assert set(created) == {"web", "backend"}, first.output()
    assert created["web"] == "wk_web_one"
    backend_key = created["backend"]
    sources = first.sources(token)
    assert set(sources) == {"web", "backend"}  # no `default` when the file names sources
    assert sources["web"]["write_key"] == "wk_web_one"
    assert sources["backend"]["write_key"] == backend_key
    assert first.track("wk_web_one").status_code == 200
    assert first.track(backend_key).status_code == 200
    first.stop()

    # same file again: nothing created, nothing updated, nothing changed
    second = _serve(serves, workdir, "--config", "segue.toml", SEGUE_ADMIN_TOKEN=token)
    assert second.created_sources() == {}, second.output()
    assert second.updated_sources() == [], second.output()
    again = second.sources(token)
    for name in ("web", "backend"):
        assert again[name]["id"] == sources[name]["id"]
        assert again[name]["write_key"] == sources[name]["write_key"]
        assert again[name]["event_count"] == 1
    second.stop()

    # a new write_key in the file rotates that source's key, and only that one
    config.write_text(config.read_text("utf-8").replace("wk_web_one", "wk_web_two"), "utf-8")
    third = _serve(serves, workdir, "--config", "segue.toml", SEGUE_ADMIN_TOKEN=token)
    assert third.created_sources() == {}, third.output()
    assert third.updated_sources() == ["web"], third.output()
    rotated = third.sources(token)
    assert rotated["web"]["write_key"] == "wk_web_two"
    assert rotated["web"]["id"] == sources["web"]["id"]
    assert rotated["backend"]["write_key"] == backend_key
    old = third.track("wk_web_one")
    assert old.status_code == 401
    assert old.json()["code"] == "unknown_source"
    assert third.track("wk_web_two").status_code == 200
    assert third.track(backend_key).status_code == 200
    third.stop()


# -- environment overrides -----------------------------------------------------
@pytest.mark.slow
def test_segue_admin_token_is_the_token_the_admin_api_accepts(
    workdir: Path, serves: list[Serve]
) -> None:
    # a first run leaves a generated token in ./.segue/admin_token
    first = _serve(serves, workdir)
    stored_token = (workdir / ".segue" / "admin_token").read_text("utf-8").strip()
    first.stop()

    env_token = "env-admin-" + uuid.uuid4().hex
    server = _serve(serves, workdir, SEGUE_ADMIN_TOKEN=env_token)
    assert server.admin(env_token, "/sources").status_code == 200
    assert server.admin(stored_token, "/sources").status_code == 401
    assert server.admin("wrong", "/sources").status_code == 401
    response = httpx.get(f"{server.base}/api/v1/sources", timeout=10)
    assert response.status_code == 401
    server.stop()


@pytest.mark.slow
def test_segue_database_url_puts_the_database_there(
    tmp_path: Path, workdir: Path, serves: list[Serve]
) -> None:
    db = tmp_path / "elsewhere" / "other.db"
    url = f"sqlite:///{db}"
    assert url.startswith("sqlite:////")
    token = "db-admin-" + uuid.uuid4().hex
    server = _serve(serves, workdir, SEGUE_DATABASE_URL=url, SEGUE_ADMIN_TOKEN=token)
    assert server.banner_value("Database") == url
    write_key = server.created_sources()["default"]
    message_id = "db-url-" + uuid.uuid4().hex
    assert server.track(write_key, message_id).status_code == 200
    server.stop()

    assert db.is_file()
    assert not (workdir / ".segue" / "segue.db").exists()
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT message_id FROM events").fetchall()
    assert rows == [(message_id,)]

    # another working directory, same URL: the same database
    elsewhere = tmp_path / "work2"
    elsewhere.mkdir()
    again = _serve(serves, elsewhere, SEGUE_DATABASE_URL=url, SEGUE_ADMIN_TOKEN=token)
    assert again.created_sources() == {}
    sources = again.sources(token)
    assert sources["default"]["write_key"] == write_key
    assert sources["default"]["event_count"] == 1
    again.stop()


def test_segue_database_url_without_admin_token_starts_in_an_empty_directory(
    tmp_path: Path, workdir: Path, serves: list[Serve]
) -> None:
    db = tmp_path / "elsewhere" / "other.db"
    server = _serve(serves, workdir, SEGUE_DATABASE_URL=f"sqlite:///{db}")
    token = (workdir / ".segue" / "admin_token").read_text("utf-8").strip()
    assert server.sources(token)["default"]
    assert db.is_file()
    server.stop()


# -- bad configuration -----------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[server]\nprot = 8089\n", "prot"),
        ('[[sources]]\nname = "web"\nwritekey = "abc"\n', "writekey"),
    ],
    ids=["server-key", "source-key"],
)
def test_config_with_an_unknown_key_exits_2_naming_the_key(
    workdir: Path, text: str, key: str
) -> None:
    (workdir / "segue.toml").write_text(text, "utf-8")
    result = _segue("serve", "--config", "segue.toml", "--port", str(free_port()), cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr
    assert "error" in message
    assert key in message
    assert "segue.toml" in message
    assert "unknown key" in message
    assert "Traceback" not in result.stdout + result.stderr
    assert not (workdir / ".segue").exists()  # refused before touching anything


def test_config_error_message_keeps_the_section_name(workdir: Path) -> None:
    (workdir / "segue.toml").write_text("[server]\nprot = 8089\n", "utf-8")
    result = _segue("serve", "--config", "segue.toml", cwd=workdir)
    assert result.returncode == 2
    assert "unknown key [server].prot" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("endpoint", "words"),
    [
        ("https://user:secret@hooks.example/x", "must not carry credentials"),
        ("http://127.0.0.1:99999/x", "not a valid URL"),
    ],
)
def test_config_with_an_unusable_endpoint_exits_2_saying_why(
    workdir: Path, endpoint: str, words: str
) -> None:
    text = f'[[destinations]]\nname = "bad"\nendpoint = "{endpoint}"\n'
    (workdir / "segue.toml").write_text(text, "utf-8")
    result = _segue("serve", "--config", "segue.toml", "--port", str(free_port()), cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "[[destinations]] 'bad'" in result.stderr, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_config_file_exits_2(workdir: Path) -> None:
    result = _segue("serve", "--config", "nope.toml", cwd=workdir)
    assert result.returncode == 2
    assert "nope.toml" in result.stderr
    assert "does not exist" in result.stderr


# -- small commands ----------------------------------------------------------------
def test_sample_track_prints_a_track_event(workdir: Path) -> None:
    result = _segue("sample", "track", cwd=workdir)
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)
    assert event["type"] == "track"
    assert isinstance(event["event"], str)
    assert event["event"]
    assert isinstance(event["properties"], dict)
    assert event["messageId"]

    # --seed fixes the content; the timestamps follow the clock
    clock = ("timestamp", "sentAt", "receivedAt", "originalTimestamp")
    seeded = []
    for _ in range(2):
        run = _segue("sample", "track", "--seed", "7", cwd=workdir)
        assert run.returncode == 0, run.stderr
        seeded.append({k: v for k, v in json.loads(run.stdout).items() if k not in clock})
    assert seeded[0] == seeded[1]
    assert seeded[0]["type"] == "track"


def test_sample_rejects_an_unknown_type(workdir: Path) -> None:
    result = _segue("sample", "purchase", cwd=workdir)
    assert result.returncode == 2
    assert "purchase" in result.stderr


def test_version(workdir: Path) -> None:
    result = _segue("--version", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"segue, version {segue.__version__}"
