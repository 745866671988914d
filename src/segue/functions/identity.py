"""Who a function worker runs as: its own unprivileged uid and gid when segue is root.

Each worker takes a slot of a range (uid = gid = ``base + slot``), held with an
``flock`` on ``<lock dir>/<uid>`` so two segue processes on one machine never share
one; a slot is freed only once every process of its worker has ended. A uid nobody
else has makes two things exact: ``RLIMIT_NPROC`` (counted per uid) and ``kill_uid``,
a helper process that takes the uid and ``kill(-1, SIGKILL)``s: the kernel signals
every process of that uid in one pass, under the lock ``fork`` takes, so none escapes.

The worker drops root in its ``preexec_fn``, before it execs bubblewrap (or the
worker with ``sandbox = "none"``): supplementary groups, then gid, then uid.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_UID_BASE = 2_100_000_000
DEFAULT_UID_COUNT = 65_536
_LOCK_DIR_NAME = "segue-fn-uids"


@dataclass(slots=True)
class UidLease:
    """A uid (and the gid of the same number) held until ``release``."""

    uid: int
    fd: int
    owner: UidRange | None = field(default=None, repr=False)

    @property
    def gid(self) -> int:
        return self.uid

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # drops the flock
            self.fd = -1
            if self.owner is not None:
                self.owner.held.discard(self.uid)


class UidRange:
    """Per-worker uids ``base``…``base + count - 1`` (only root can use them)."""

    def __init__(
        self,
        base: int = DEFAULT_UID_BASE,
        count: int = DEFAULT_UID_COUNT,
        lock_dir: Path | None = None,
    ) -> None:
        if base < 1000 or count < 1 or base + count > 2**32 - 2:
            raise ValueError("the worker uid range must lie within 1000…4294967294")
        self.base, self.count = base, count
        self.lock_dir = lock_dir
        self.held: set[int] = set()

    def acquire(self) -> UidLease:
        """A free uid whose leftover processes (of a crashed segue) are killed first."""
        directory = self._directory()
        for uid in range(self.base, self.base + self.count):
            if uid in self.held:
                continue
            path = directory / str(uid)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.held.add(uid)
            if processes_of(uid):
                kill_uid(uid)
            return UidLease(uid, fd, self)
        raise RuntimeError(f"all {self.count} function worker uids from {self.base} are in use")

    def _directory(self) -> Path:
        if self.lock_dir is None:
            run = Path("/run")
            parent = run if os.access(run, os.W_OK) else Path(tempfile.gettempdir())
            self.lock_dir = parent / _LOCK_DIR_NAME
        with contextlib.suppress(FileExistsError):
            self.lock_dir.mkdir(mode=0o700)
        info = self.lock_dir.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise RuntimeError(f"{self.lock_dir} must be a directory only segue can write")
        return self.lock_dir


def drop_privileges(uid: int, gid: int) -> None:
    """From a preexec_fn: no supplementary groups, then the gid, then the uid (all three)."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def processes_of(uid: int) -> set[int]:
    """The pids of the processes with ``uid`` as real, effective or saved uid.

    From ``/proc/<pid>/status``, not the owner of ``/proc/<pid>``: a process that makes
    itself non-dumpable shows as owned by root there.
    """
    found = set()
    wanted = str(uid)
    with contextlib.suppress(OSError), os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError):
                with open(f"/proc/{entry.name}/status", "rb") as status:
                    text = status.read(2048).decode()
                line = text[text.index("\nUid:") + 5 :].split("\n", 1)[0]
                if wanted in line.split()[:3]:
                    found.add(int(entry.name))
    return found


def kill_uid(uid: int) -> bool:
    """SIGKILL every process of ``uid`` from a helper that becomes it; True if it ran.

    Never for uid 0 or our own uid: ``kill(-1)`` would reach far more than a sandbox.
    """
    if uid == 0 or uid in (os.getuid(), os.geteuid()) or os.geteuid() != 0:
        return False
    try:
        pid = os.fork()
    except OSError:  # out of processes or memory: the caller falls back to what it has
        return False
    if pid == 0:  # pragma: no cover - the helper process
        code = 1
        try:
            drop_privileges(uid, uid)
            for _ in range(3):  # one pass is enough; more cost nothing
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    break
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0
