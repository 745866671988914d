"""Control groups for function sandboxes: one group per worker, limits for the whole sandbox.

segue makes a child of its own group for each worker, in every hierarchy it may write
to; the worker's first process joins it before it drops its privileges (see
``Cgroup.procs_files``), so everything it ever forks is a member, and a member cannot
leave (the group files belong to root, and bubblewrap shows no /sys). What is used:

* cgroup v2 with the ``memory``, ``pids`` or ``cpu`` controller delegated (listed in
  segue's group's ``cgroup.subtree_control``): ``memory.max``, ``pids.max``,
  ``cpu.max``; ``cgroup.kill`` ends the whole sandbox at once.
* cgroup v1 hierarchies for the controllers v2 does not give: ``memory.limit_in_bytes``,
  ``pids.max``, ``cpu.cfs_quota_us``. A v2 hierarchy without controllers (a hybrid
  machine) still lists the members and has ``cgroup.kill``.
* Neither: ``CgroupSupport.detect()`` is empty and the sandbox falls back to rlimits.

Nothing here writes outside the groups it creates (named ``segue-fn-<pid>-<n>``);
groups left by a segue process that is gone are emptied and removed on detection.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "segue-fn-"
CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000
KILL_PASSES = 50
_V1_LIMIT_FILES = {
    "memory": "memory.limit_in_bytes",
    "pids": "pids.max",
    "cpu": "cpu.cfs_quota_us",
}
_names = itertools.count(1)

log = logging.getLogger("segue.functions")


@dataclass(frozen=True, slots=True)
class CgroupLimits:
    memory_bytes: int
    pids: int
    cpu_cores: float  # 0 or less: no CPU quota


@dataclass(frozen=True, slots=True)
class CgroupSupport:
    """Where segue can make groups: a v2 parent and/or v1 parents by controller."""

    v2: Path | None = None
    v2_controllers: frozenset[str] = frozenset()
    v1: tuple[tuple[str, Path], ...] = ()

    @property
    def available(self) -> bool:
        return self.v2 is not None or bool(self.v1)

    @property
    def controllers(self) -> frozenset[str]:
        return self.v2_controllers | {name for name, _ in self.v1}

    @classmethod
    def detect(cls) -> CgroupSupport:
        """What this process may use (computed once; stale groups are removed then)."""
        return _detect()

    def create(self, limits: CgroupLimits) -> Cgroup:
        """A new group with ``limits`` (OSError if it cannot be made)."""
        name = f"{PREFIX}{os.getpid()}-{next(_names)}"
        made: list[Path] = []
        try:
            v2_dir = None
            if self.v2 is not None:
                v2_dir = self.v2 / name
                v2_dir.mkdir(mode=0o755)
                made.append(v2_dir)
                for controller in sorted(self.v2_controllers):
                    _write(v2_dir / _v2_file(controller), _v2_value(controller, limits))
            v1_dirs: dict[str, Path] = {}
            for controller, base in self.v1:
                path = base / name
                path.mkdir(mode=0o755)
                made.append(path)
                v1_dirs[controller] = path
                _write(path / _V1_LIMIT_FILES[controller], _v1_value(controller, limits))
        except OSError:
            for path in reversed(made):
                with contextlib.suppress(OSError):
                    path.rmdir()
            raise
        return Cgroup(tuple(made), v2_dir, v1_dirs, "memory" in self.v2_controllers)


@dataclass(slots=True)
class Cgroup:
    """One sandbox's groups (one per hierarchy); ``tracker`` lists its members."""

    dirs: tuple[Path, ...]
    v2_dir: Path | None
    v1_dirs: dict[str, Path] = field(default_factory=dict)
    v2_memory: bool = False

    @property
    def tracker(self) -> Path:
        if self.v2_dir is not None:
            return self.v2_dir
        return self.v1_dirs.get("pids") or self.dirs[0]

    @property
    def procs_files(self) -> tuple[str, ...]:
        """The files a new process writes "0" to, to join every group (see ``enter``)."""
        return tuple(str(path / "cgroup.procs") for path in self.dirs)

    def members(self) -> set[int]:
        """The live processes of the sandbox (zombies left out); empty once it is gone."""
        try:
            text = (self.tracker / "cgroup.procs").read_text()
        except OSError:
            return set()
        return {pid for pid in map(int, text.split()) if is_running(pid)}

    def kill(self) -> bool:
        """SIGKILL every member: ``cgroup.kill`` (v2, at once), else pass after pass.

        True if the group was killed as one or emptied; members may still be dying.
        """
        if self.v2_dir is not None:
            try:
                _write(self.v2_dir / "cgroup.kill", "1")
                return True
            except OSError:
                pass
        for _ in range(KILL_PASSES):
            members = self.members()
            if not members:
                return True
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        return False

    def oom_kills(self) -> int:
        """How many processes of the sandbox the kernel's OOM killer ended."""
        if self.v2_memory and self.v2_dir is not None:
            return _counter(self.v2_dir / "memory.events", "oom_kill")
        memory = self.v1_dirs.get("memory")
        return _counter(memory / "memory.oom_control", "oom_kill") if memory else 0

    def peak_memory(self) -> int | None:
        """The most memory the sandbox used at once, in bytes (None if not measured)."""
        if self.v2_memory and self.v2_dir is not None:
            path = self.v2_dir / "memory.peak"
        elif "memory" in self.v1_dirs:
            path = self.v1_dirs["memory"] / "memory.max_usage_in_bytes"
        else:
            return None
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def remove(self) -> bool:
        """Remove the (empty) groups; False while a dying member still holds one."""
        left = []
        for path in reversed(self.dirs):
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                left.append(path)
        self.dirs = tuple(reversed(left))
        return not left


def enter(procs_files: tuple[str, ...]) -> None:
    """Join the groups (from a preexec_fn: only os calls; "0" is the calling process)."""
    for path in procs_files:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)


# -- values ------------------------------------------------------------------------------
def _v2_file(controller: str) -> str:
    return {"memory": "memory.max", "pids": "pids.max", "cpu": "cpu.max"}[controller]


def _v2_value(controller: str, limits: CgroupLimits) -> str:
    if controller == "memory":
        return str(limits.memory_bytes)
    if controller == "pids":
        return str(limits.pids)
    if limits.cpu_cores <= 0:
        return f"max {CPU_PERIOD_US}"
    return f"{max(1000, int(limits.cpu_cores * CPU_PERIOD_US))} {CPU_PERIOD_US}"


def _v1_value(controller: str, limits: CgroupLimits) -> str:
    if controller == "cpu":
        return "-1" if limits.cpu_cores <= 0 else str(max(1000, int(limits.cpu_cores * 1e5)))
    return _v2_value(controller, limits)


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _counter(path: Path, name: str) -> int:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def is_running(pid: int) -> bool:
    """False for a process that is gone or a zombie (dead, waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2][1:2] not in (b"Z", b"X")
    except OSError:
        return False


# -- detection ---------------------------------------------------------------------------
@functools.cache
def _detect() -> CgroupSupport:
    try:
        groups = _own_groups(Path("/proc/self/cgroup").read_text())
        mounts = _cgroup_mounts(Path("/proc/self/mountinfo").read_text())
    except OSError:
        return CgroupSupport()
    v2: Path | None = None
    delegated: frozenset[str] = frozenset()
    v1: list[tuple[str, Path]] = []
    for kind, controllers, path in _candidates(groups, mounts):
        if kind == "v2" and v2 is None and _usable(path, ()):
            v2 = path
            delegated = _delegated(path)
        elif kind == "v1":
            for controller in controllers:
                wanted = _V1_LIMIT_FILES.get(controller)
                taken = any(c == controller for c, _ in v1)
                if wanted and not taken and _usable(path, (wanted,)):
                    v1.append((controller, path))
    support = CgroupSupport(
        v2=v2,
        v2_controllers=delegated,
        v1=tuple((c, p) for c, p in v1 if c not in delegated),
    )
    for base in [support.v2, *(path for _, path in support.v1)]:
        if base is not None:
            _remove_stale(base)
    return support


def _own_groups(text: str) -> dict[str, str]:
    """``/proc/self/cgroup`` as {controllers ("" for v2): path}."""
    groups: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            groups[parts[1]] = parts[2]
    return groups


def _cgroup_mounts(text: str) -> list[tuple[str, frozenset[str], Path, str]]:
    """(fs type, controllers, mount point, root) of every cgroup mount."""
    found = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        options = frozenset(tail[2].split(","))
        mount_point = fields[4].replace("\\040", " ")
        found.append((tail[0], options, Path(mount_point), fields[3]))
    return found


def _candidates(
    groups: dict[str, str], mounts: list[tuple[str, frozenset[str], Path, str]]
) -> list[tuple[str, frozenset[str], Path]]:
    """Our own group's directory in each mounted hierarchy."""
    out = []
    for fstype, options, mount_point, root in mounts:
        if fstype == "cgroup2":
            key: str | None = "" if "" in groups else None
            controllers: frozenset[str] = frozenset()
        else:
            key = next((k for k in groups if k and set(k.split(",")) <= options), None)
            controllers = frozenset(key.split(",")) if key else frozenset()
        if key is None:
            continue
        own = Path(groups[key])
        try:
            relative = own.relative_to(root)
        except ValueError:
            continue
        out.append(("v2" if fstype == "cgroup2" else "v1", controllers, mount_point / relative))
    return out


def _usable(path: Path, files: tuple[str, ...]) -> bool:
    """Whether a child group can be made here (tried: made, checked and removed)."""
    probe = path / f"{PREFIX}probe-{os.getpid()}"
    try:
        probe.mkdir(mode=0o755)
    except OSError:
        return False
    try:
        needed = ("cgroup.procs", *files)
        return all(os.access(probe / name, os.W_OK) for name in needed)
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


def _delegated(path: Path) -> frozenset[str]:
    try:
        enabled = set((path / "cgroup.subtree_control").read_text().split())
    except OSError:
        return frozenset()
    return frozenset(enabled & set(CONTROLLERS))


def _remove_stale(base: Path) -> None:
    """Empty and remove the groups of segue processes that are gone."""
    for path in base.glob(f"{PREFIX}*"):
        owner = path.name[len(PREFIX) :].split("-", 1)[0]
        if not owner.isdigit() or int(owner) == os.getpid() or _pid_exists(int(owner)):
            continue
        stale = Cgroup((path,), path if (path / "cgroup.kill").exists() else None)
        stale.kill()
        if stale.remove():
            log.info("removed the stale function sandbox group %s", path)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
