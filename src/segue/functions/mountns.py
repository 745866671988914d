"""A private mount namespace that lets a worker's own uid reach what it needs (root only).

Dropping to a per-worker uid would lock the worker out of an interpreter under a
private directory (a pyenv under ``/root``, say). Before it drops root, the worker
process may therefore make itself a private mount namespace (``unshare(CLONE_NEWNS)``)
in which each such closed directory (``/root``) is covered by an empty tmpfs holding
only bind mounts of the paths the worker needs (``/root/.pyenv/versions/3.11``), and
each hidden path (with ``sandbox = "none"``) is covered too. Nothing of this is seen
outside that one process tree; bubblewrap then builds its own view from this one.

Only ``os`` calls and two libc functions (bound when this module is imported) run in
the child, between fork and exec.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_SLAVE = 1, 2, 4, 4096, 16384, 1 << 19

try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    _unshare = _libc.unshare
    _unshare.argtypes = [ctypes.c_int]
    _mount = _libc.mount
    _mount.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    ]
    AVAILABLE = True
except (OSError, AttributeError):  # not glibc/musl on Linux
    AVAILABLE = False


def closed_ancestor(path: Path) -> Path | None:
    """The topmost directory above ``path`` that others may not enter, if any."""
    for parent in reversed(path.parents):
        try:
            mode = parent.stat().st_mode
        except OSError:
            return None
        if not mode & 0o001:
            return parent
    return None


@dataclass(frozen=True, slots=True)
class Staging:
    """Closed directories to cover, the paths to show again inside them, paths to hide."""

    covers: tuple[Path, ...] = ()
    shown: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()

    @classmethod
    def plan(cls, needed: list[Path], hidden: tuple[Path, ...] = ()) -> Staging:
        """What the worker's uid needs bridged: the closed ancestors of ``needed``."""
        covers: list[Path] = []
        shown: list[Path] = []
        for path in needed:
            closed = closed_ancestor(path)
            if closed is None:
                continue
            if closed not in covers:
                covers.append(closed)
            shown.append(path)
        return cls(tuple(covers), tuple(sorted(set(shown))), hidden)

    @property
    def empty(self) -> bool:
        return not (self.covers or self.hidden)

    def apply(self) -> None:
        """In the child, as root: the private namespace (OSError if it cannot be made)."""
        if self.empty:
            return
        if not AVAILABLE:
            raise OSError("mount namespaces need libc's unshare and mount")
        _check(_unshare(CLONE_NEWNS))
        _check(_mount(b"none", b"/", None, MS_REC | MS_SLAVE, None))
        fds = [os.open(path, os.O_PATH | os.O_CLOEXEC) for path in self.shown]
        try:
            for cover in self.covers:
                flags = MS_NOSUID | MS_NODEV
                _check(_mount(b"tmpfs", bytes(cover), b"tmpfs", flags, b"mode=0755,size=1m"))
            for fd, path in zip(fds, self.shown, strict=True):
                os.makedirs(path, exist_ok=True)
                source = f"/proc/self/fd/{fd}".encode()
                _check(_mount(source, bytes(path), None, MS_BIND | MS_REC, None))
        finally:
            for fd in fds:
                os.close(fd)
        for path in self.hidden:
            if path.is_dir():
                _check(_mount(b"tmpfs", bytes(path), b"tmpfs", MS_RDONLY, b"size=4k"))
            elif path.exists():
                _check(_mount(b"/dev/null", bytes(path), None, MS_BIND, None))


def _check(result: int) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
