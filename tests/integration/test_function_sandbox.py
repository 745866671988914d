"""What bubblewrap adds around a function: no data dir, no writes, no network, no host processes.

The tests that need a working bubblewrap skip, saying so, where it cannot run (CI has it).
The data dir used here lives inside the Python prefix on purpose: the sandbox shows
that directory (the worker needs it), so only hiding can keep the data dir out — one
anywhere else would not be shown at all, and the tests would pass vacuously.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.endpoint import Endpoint

from segue.functions.pool import FunctionPool
from segue.functions.result import CallResult
from segue.functions.sandbox import Sandbox, sandbox_available, source_root

needs_bwrap = pytest.mark.skipif(
    not sandbox_available(),
    reason="bubblewrap cannot run here: the protections it adds are not in force",
)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A fake segue data dir inside a path the sandbox shows, with a database and a key."""
    path = Path(tempfile.mkdtemp(prefix="segue-fn-data-", dir=sys.prefix))
    path.chmod(0o755)  # readable by a worker's own uid: only hiding keeps it out
    (path / "segue.db").write_bytes(b"SQLite format 3\x00 secret-row")
    (path / "secret.key").write_text("secret-key-material")
    (path / "loose.key").write_text("a hidden file")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def pool(data_dir: Path) -> AsyncIterator[FunctionPool]:
    functions = FunctionPool(size=1, timeout_s=3.0, sandbox="bwrap", hidden_paths=(data_dir,))
    await functions.start()
    try:
        yield functions
    finally:
        await functions.close()


async def run(functions: FunctionPool, source: str, **settings: Any) -> CallResult:
    result = await functions.call(
        "python",
        textwrap.dedent(source),
        uuid.uuid4().hex,
        "fn.py",
        "track",
        {},
        settings,
        scope="dest_1",
    )
    assert result.ok, result
    return result


PROBE_FILES = """
    import os

    def attempt(action):
        try:
            return ["ok", action()]
        except OSError as exc:
            return ["refused", exc.__class__.__name__]

    def on_track(event, settings):
        data = settings["data"]
        return {
            "listing": attempt(lambda: sorted(os.listdir(data))),
            "database": attempt(lambda: open(os.path.join(data, "segue.db"), "rb").read().hex()),
            "key": attempt(lambda: open(os.path.join(data, "secret.key")).read()),
        }
"""


@needs_bwrap
async def test_segues_data_dir_and_database_cannot_be_read(
    pool: FunctionPool, data_dir: Path
) -> None:
    hidden = (await run(pool, PROBE_FILES, data=str(data_dir))).value
    assert hidden == {
        "listing": ["ok", []],
        "database": ["refused", "FileNotFoundError"],
        "key": ["refused", "FileNotFoundError"],
    }
    # the same function without the data dir hidden: it would have read it (it lies
    # in the Python prefix, which the worker needs to see)
    exposed_pool = FunctionPool(size=1, timeout_s=3.0, sandbox="bwrap")
    try:
        exposed = (await run(exposed_pool, PROBE_FILES, data=str(data_dir))).value
    finally:
        await exposed_pool.close()
    assert exposed["key"] == ["ok", "secret-key-material"]


@needs_bwrap
async def test_a_hidden_file_cannot_be_read(data_dir: Path) -> None:
    functions = FunctionPool(size=1, sandbox="bwrap", hidden_paths=(data_dir / "loose.key",))
    source = """
        def on_track(event, settings):
            try:
                return open(settings["path"]).read()
            except OSError as exc:
                return exc.__class__.__name__
    """
    try:
        result = await run(functions, source, path=str(data_dir / "loose.key"))
    finally:
        await functions.close()
    assert result.value == "PermissionError"  # /dev/null on a nodev mount: no content


def existing(paths: list[Path]) -> list[Path]:
    return [path for path in paths if path.exists()]


PROBE_WRITES = """
    import os

    def write(path):
        try:
            with open(path, "w") as f:
                f.write("written by a function")
            return "written"
        except OSError as exc:
            return exc.strerror

    def on_track(event, settings):
        return {name: write(path) for name, path in settings["paths"].items()}
"""


@needs_bwrap
async def test_writes_outside_the_temp_dir_fail(pool: FunctionPool, data_dir: Path) -> None:
    marker = f"segue-fn-probe-{uuid.uuid4().hex}"
    outside = {
        "project": source_root().parent / marker,
        "data_dir": data_dir / marker,
        "database": data_dir / "segue.db",
        "home_dir": Path.home() / marker,
    }
    paths = {name: str(path) for name, path in outside.items()}
    paths["cwd"] = marker  # the worker's own temp dir
    paths["private_tmp"] = f"/tmp/{marker}"  # a private tmpfs, gone with the worker
    try:
        result = (await run(pool, PROBE_WRITES, paths=paths)).value
        refused = ("Read-only file system", "No such file or directory")
        for name, path in outside.items():
            # under /tmp (a clone there, say) the write lands in the worker's private tmpfs:
            # allowed, as long as nothing reaches the real file system (checked below)
            private = path.is_relative_to("/tmp")
            assert result[name] in refused or private, (name, result[name])
        assert (result["cwd"], result["private_tmp"]) == ("written", "written")
        left = existing([*outside.values(), Path(f"/tmp/{marker}")])
        assert left == [data_dir / "segue.db"]  # nothing new, and the database untouched
        assert (data_dir / "segue.db").read_bytes().startswith(b"SQLite format 3")
    finally:
        for path in outside.values():
            if path.name == marker:
                path.unlink(missing_ok=True)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    with Endpoint() as server:
        yield server


@needs_bwrap
async def test_a_direct_connection_to_a_local_server_fails(
    pool: FunctionPool, endpoint: Endpoint
) -> None:
    source = """
        import socket

        def on_track(event, settings):
            try:
                socket.create_connection(("127.0.0.1", settings["port"]), timeout=1).close()
                return "connected"
            except OSError as exc:
                return exc.__class__.__name__ + ": " + str(exc.strerror)
    """
    result = (await run(pool, source, port=endpoint.port)).value
    assert result != "connected"
    assert "unreachable" in result.lower() or "refused" in result.lower(), result
    assert endpoint.count == 0


@needs_bwrap
async def test_no_host_process_or_its_environment_is_visible(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    monkeypatch.setenv("SEGUE_SECRET_KEY", "key-must-not-leak")
    functions = FunctionPool(size=1, sandbox="bwrap", hidden_paths=(data_dir,))
    source = """
        import os

        def on_track(event, settings):
            pids = sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
            environs = []
            for pid in pids:
                try:
                    environs.append(open(f"/proc/{pid}/environ", "rb").read().decode())
                except OSError:
                    pass
            return {"pids": pids, "environs": environs}
    """
    try:
        result = (await run(functions, source)).value
    finally:
        await functions.close()
    assert max(result["pids"]) < 10  # its own PID namespace: bwrap's init and the worker
    assert "must-not-leak" not in "".join(result["environs"])


def test_the_worker_command_line(data_dir: Path) -> None:
    bwrap = Sandbox(mode="bwrap", hidden_paths=(data_dir,)).command()
    plain = Sandbox(mode="none").command()
    try:
        argv = bwrap.argv
        for flag in ("--unshare-net", "--unshare-pid", "--die-with-parent", "--clearenv"):
            assert flag in argv
        for flag in ("--unshare-user", "--disable-userns", "--unshare-ipc", "--new-session"):
            assert flag in argv
        assert argv[argv.index("--cap-drop") + 1] == "ALL"
        assert ["--tmpfs", str(data_dir)] == argv[argv.index(str(data_dir)) - 1 :][:2]
        assert ["--bind", str(bwrap.tempdir), str(bwrap.tempdir)] == argv[
            argv.index("--bind") : argv.index("--bind") + 3
        ]
        # an allow-list: never the whole file system, never /run, /home or /etc as a whole
        binds = {argv[i + 2] for i, arg in enumerate(argv) if arg in ("--ro-bind", "--bind")}
        assert not binds & {"/", "/run", "/home", "/root", "/etc", "/etc/shadow", "/var"}
        assert str(source_root()) in binds
        assert argv[argv.index("--") + 1] == sys.executable
        for command in (bwrap, plain):
            assert set(command.env) == {"PATH", "LANG", "PYTHONPATH", "HOME"}
            assert command.env["HOME"] == str(command.cwd) == str(command.tempdir)
            assert command.env["PYTHONPATH"] == str(source_root())
        assert plain.argv[0] == sys.executable
        assert plain.argv[-6:-4] == ["--runtime", "python"]
    finally:
        shutil.rmtree(bwrap.tempdir, ignore_errors=True)
        shutil.rmtree(plain.tempdir, ignore_errors=True)
