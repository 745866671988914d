"""What a function's sandbox confines, tried from inside with real processes.

The view (no config file, no /run sockets, no /etc/shadow, no host processes), the
identity (not root, no new user namespaces), and the limits of the whole sandbox: a
fork bomb, 8 children of 150 MB and a double-forked survivor are all contained, and no
process of the sandbox is left once a call has returned — with ``sandbox = "none"``
too. Tests that need bubblewrap skip where it cannot run; those that need control
groups or root (a uid per worker) skip, saying so, where segue could not have them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from segue.functions.cgroups import CgroupSupport, is_running
from segue.functions.identity import DEFAULT_UID_BASE, processes_of
from segue.functions.pool import FunctionPool
from segue.functions.process import WorkerProcess
from segue.functions.result import CallError, CallResult
from segue.functions.sandbox import sandbox_available, source_root

needs_bwrap = pytest.mark.skipif(
    not sandbox_available(),
    reason="bubblewrap cannot run here: the protections it adds are not in force",
)
needs_cgroups = pytest.mark.skipif(
    "memory" not in CgroupSupport.detect().controllers
    or "pids" not in CgroupSupport.detect().controllers,
    reason="segue cannot make memory and pids control groups here",
)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a uid per worker needs root")
SCOPE = "dest_confined"
MiB = 1024 * 1024


async def call(functions: FunctionPool, source: str, **settings: Any) -> CallResult:
    code = textwrap.dedent(source)
    version = hashlib.sha256(code.encode()).hexdigest()[:16]
    return await functions.call(
        "python", code, version, "fn.py", "track", {}, settings, scope=SCOPE
    )


def only_worker(functions: FunctionPool) -> WorkerProcess:
    """The worker of the last call (each version of the code has its own)."""
    return functions.workers(SCOPE)[-1]


def strays(worker: WorkerProcess) -> set[int]:
    """The sandbox's running processes that are not the worker's own, seen from outside."""
    confinement = worker.command.confinement
    found = confinement.members()
    if confinement.uid is not None:
        found |= {pid for pid in processes_of(confinement.uid) if is_running(pid)}
    return found - confinement.keep


async def wait_gone(pids: set[int], timeout_s: float = 5.0) -> set[int]:
    """Await the end of each process (pidfds); the ones still running after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    fds, ends = [], []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        end = loop.create_future()
        loop.add_reader(fd, lambda end=end: end.done() or end.set_result(None))
        fds.append(fd)
        ends.append(end)
    try:
        if ends:
            await asyncio.wait(ends, timeout=timeout_s)
    finally:
        for fd in fds:
            loop.remove_reader(fd)
            os.close(fd)
    return {pid for pid in pids if is_running(pid)}


@pytest.fixture
def config_files() -> Iterator[tuple[Path, Path]]:
    """A segue.toml beside the source (not shown) and one inside the Python prefix (shown)."""
    outer = source_root().parent / f"segue-{uuid.uuid4().hex}.toml"
    inner_dir = Path(sys.prefix) / f"segue-conf-{uuid.uuid4().hex}"
    inner_dir.mkdir(mode=0o755)
    inner = inner_dir / "segue.toml"
    for path in (outer, inner):
        path.write_text('admin_token = "adm_must_not_leak"\n')
        path.chmod(0o644)  # readable by anyone on the host: only the sandbox keeps it out
    try:
        yield outer, inner
    finally:
        outer.unlink(missing_ok=True)
        inner.unlink(missing_ok=True)
        inner_dir.rmdir()


@pytest.fixture
async def confined(config_files: tuple[Path, Path]) -> AsyncIterator[FunctionPool]:
    functions = FunctionPool(
        size=1, timeout_s=10.0, sandbox="bwrap", hidden_paths=config_files, max_processes=64
    )
    try:
        yield functions
    finally:
        await functions.close()


VIEW = """
    import ctypes, os, socket, subprocess

    def attempt(action):
        try:
            return ["ok", action()]
        except OSError as exc:
            return ["refused", type(exc).__name__]

    def connect(path):
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
            return "connected"

    def on_track(event, settings):
        libc = ctypes.CDLL(None, use_errno=True)
        userns = libc.unshare(0x10000000)  # CLONE_NEWUSER
        errno = ctypes.get_errno()
        unshare = subprocess.run(["unshare", "--user", "true"], capture_output=True)
        return {
            "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getgroups()],
            "root": sorted(os.listdir("/")),
            "etc": sorted(os.listdir("/etc")),
            "config": attempt(lambda: open(settings["config"]).read()),
            "inner_config": attempt(lambda: open(settings["inner_config"]).read()),
            "shadow": attempt(lambda: open("/etc/shadow").read()),
            "sockets": [attempt(lambda p=p: connect(p)) for p in settings["sockets"]],
            "run": attempt(lambda: os.listdir("/run")),
            "home": attempt(lambda: os.listdir("/home")),
            "root_home": attempt(lambda: os.listdir("/root")),
            "userns": [userns, errno],
            "unshare": unshare.returncode,
            "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "host_process": attempt(lambda: os.kill(settings["host_pid"], 0)),
            "capabilities": [l.split()[1] for l in open("/proc/self/status") if "Cap" in l],
        }
"""
SOCKETS = [
    "/run/mysqld/mysqld.sock",
    "/run/postgresql/.s.PGSQL.5432",
    "/run/dbus/system_bus_socket",
]


@needs_bwrap
async def test_the_sandbox_shows_only_what_a_worker_needs(
    confined: FunctionPool, config_files: tuple[Path, Path]
) -> None:
    outer, inner = config_files
    result = await call(
        confined,
        VIEW,
        config=str(outer),
        inner_config=str(inner),
        sockets=SOCKETS,
        host_pid=os.getpid(),
    )
    assert result.ok, result
    seen = result.value
    assert seen["config"][0] == "refused"  # the config file beside the source: not shown
    assert seen["inner_config"][0] == "refused"  # inside a shown path: hidden all the same
    assert seen["shadow"] == ["refused", "FileNotFoundError"]
    assert not {"shadow", "gshadow", "ssh", "sudoers"} & set(seen["etc"])
    assert seen["sockets"] == [["refused", "FileNotFoundError"]] * len(SOCKETS)
    assert seen["run"] == seen["home"] == ["refused", "FileNotFoundError"]
    assert not {"run", "home", "var", "sys", "boot", "srv", "opt", "mnt"} & set(seen["root"])
    if seen["root_home"][0] == "ok":  # only a Python installed there, if any
        assert seen["root_home"][1] in ([], [".pyenv"], [".local"])
    assert seen["host_process"] == ["refused", "ProcessLookupError"]
    assert max(seen["pids"]) < 10  # its own PID namespace: bubblewrap's two and the worker
    assert set(seen["capabilities"]) == {"0000000000000000"}
    # no new user namespace, from C or from the command line
    assert seen["userns"][0] == -1 and seen["userns"][1] != 0
    assert seen["unshare"] != 0
    uid, euid, gid, groups = seen["ids"]
    assert uid == euid != 0 or os.geteuid() != 0
    if os.geteuid() == 0:
        assert uid >= DEFAULT_UID_BASE and gid == uid and groups in ([], [gid])


@needs_bwrap
@needs_root
async def test_each_worker_has_a_uid_of_its_own(confined: FunctionPool) -> None:
    source = "import os\ndef on_track(event, settings):\n    return os.getuid()\n"
    uids = await asyncio.gather(
        *(
            confined.call("python", source, "v1", "fn.py", "track", {}, {}, scope=f"dest_{n}")
            for n in range(3)
        )
    )
    assert len({result.value for result in uids}) == 3
    assert all(result.value >= DEFAULT_UID_BASE for result in uids)


FORK_BOMB = """
    import os, time

    def on_track(event, settings):
        made = 0
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline and made < 400:
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:  # every child forks on, as a real bomb does
                while True:
                    try:
                        os.fork()
                    except OSError:
                        time.sleep(0.01)
            made += 1
        return made
"""


@needs_bwrap
@needs_cgroups
async def test_a_fork_bomb_is_contained_and_gone_after_the_call(confined: FunctionPool) -> None:
    result = await call(confined, FORK_BOMB)
    assert result.ok, result
    assert result.value < 64  # max_processes for the whole sandbox, the worker included
    worker = only_worker(confined)
    assert await wait_gone(strays(worker)) == set()
    assert strays(worker) == set()
    again = await call(confined, "def on_track(event, settings):\n    return 'still here'\n")
    assert again.value == "still here"


HOGS = """
    import subprocess, sys

    HOG = "import time; b = b'x' * (150 * 1024 * 1024); print('held', flush=True); time.sleep(60)"

    def on_track(event, settings):
        hogs = [subprocess.Popen([sys.executable, "-c", HOG], stdout=subprocess.PIPE)
                for _ in range(8)]
        held = sum(hog.stdout.readline() == b"held\\n" for hog in hogs)
        alive = sum(hog.poll() is None for hog in hogs)
        return [held, alive]
"""


@needs_bwrap
@needs_cgroups
async def test_eight_children_of_150_mb_share_one_memory_limit(confined: FunctionPool) -> None:
    result = await call(confined, HOGS)
    assert result.ok or result.error == CallError.MEMORY, result
    if not result.ok:  # the OOM killer chose the worker itself: contained all the same
        return
    held, alive = result.value
    worker = only_worker(confined)
    peak = worker.command.confinement.peak_memory()
    print(f"8 x 150 MB children: {held} got their memory, {alive} alive at the end, peak", end=" ")
    print(
        f"{(peak or 0) / MiB:.0f} MiB (limit {confined.limits.sandbox_memory('python') / MiB:.0f})"
    )
    assert alive <= 2  # 256 MB + the sandbox's overhead: two at a time at most, never 8
    assert peak is not None
    assert peak <= confined.limits.sandbox_memory("python")
    assert await wait_gone(strays(worker)) == set()


OOM = """
    import subprocess, sys

    HOG = "import time; b = b'x' * (170 * 1024 * 1024); print('held', flush=True); time.sleep(60)"

    def on_track(event, settings):
        hogs = [subprocess.Popen([sys.executable, "-c", HOG], stdout=subprocess.PIPE)
                for _ in range(2)]
        held = [hog.stdout.readline() for hog in hogs]
        with open("/proc/self/oom_score_adj", "w") as adj:
            adj.write("1000")  # the OOM killer's first choice in the sandbox: the worker
        more = b"y" * (100 * 1024 * 1024)
        return [held, len(more)]
"""


@needs_bwrap
@needs_cgroups
async def test_an_oom_kill_in_the_sandbox_is_a_memory_error(confined: FunctionPool) -> None:
    result = await call(confined, OOM)
    assert (result.error, result.message) == (
        CallError.MEMORY,
        "the function went over its memory limit and its worker died",
    ), result
    assert confined.workers(SCOPE) == []  # retired, and its sandbox with it


SURVIVOR = """
    import os, time

    def on_track(event, settings):
        read, write = os.pipe()
        child = os.fork()
        if child == 0:
            if os.fork() == 0:  # the grandchild: its own session, reparented, sleeping on
                os.setsid()
                os.write(write, str(os.getpid()).encode())
                time.sleep(600)
            os._exit(0)
        os.waitpid(child, 0)
        os.close(write)
        return int(os.read(read, 32))
"""


@needs_bwrap
async def test_a_double_forked_process_does_not_outlive_the_call(confined: FunctionPool) -> None:
    result = await call(confined, SURVIVOR)
    assert result.ok, result
    worker = only_worker(confined)
    assert worker.command.confinement.tracked, "neither a control group nor a uid of its own"
    assert await wait_gone(strays(worker)) == set()
    uid = worker.command.confinement.uid
    await confined.close()
    if uid is not None:
        assert await wait_gone(processes_of(uid)) == set()


async def test_without_bubblewrap_a_double_forked_process_does_not_outlive_the_call() -> None:
    functions = FunctionPool(size=1, timeout_s=10.0, sandbox="none")
    try:
        result = await call(functions, SURVIVOR)
        assert result.ok, result
        worker = only_worker(functions)
        if not worker.command.confinement.tracked:
            pytest.skip("no control group and no uid of its own: nothing lists its processes")
        grandchild = result.value  # no PID namespace here: a pid of this machine
        assert await wait_gone({grandchild}) == set()
        assert strays(worker) == set()
    finally:
        await functions.close()


@needs_cgroups
async def test_the_control_groups_go_with_the_worker() -> None:
    functions = FunctionPool(size=1, timeout_s=10.0)
    result = await call(functions, "def on_track(event, settings):\n    return 1\n")
    assert result.ok, result
    cgroup = only_worker(functions).command.confinement.cgroup
    assert cgroup is not None
    dirs = cgroup.dirs
    assert all(path.is_dir() for path in dirs)
    await functions.close()
    assert not any(path.exists() for path in dirs)
