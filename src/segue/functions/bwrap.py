"""The bubblewrap command line of a worker: a file system view built from an allow-list.

The sandbox starts from an empty root and shows only what a worker needs, read-only:
``/usr`` and the ``/bin``, ``/sbin``, ``/lib*`` next to it, a few files of ``/etc``
(the dynamic linker's cache, time zone, ``passwd``/``group``…: never ``shadow``,
``gshadow`` or ssh keys), the Python prefix and base prefix, the directory holding the
``segue`` package, a fresh ``/dev`` and ``/proc`` of its own, a small private ``/tmp``
and, writable, the worker's temp dir. No config file, no ``/run`` (so no Unix sockets
of databases), no ``/home``, no ``/root`` (but a Python installed there), no ``/sys``.
A hidden path that lies inside a shown one is covered again (an empty tmpfs on a
directory, ``/dev/null`` on a file). Only the temp dir and ``/tmp`` are writable.

Namespaces: user (``--disable-userns``: no further user namespace can be made inside),
network (none at all), PID, IPC, UTS and cgroup; every capability is dropped.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

import segue

MiB = 1024 * 1024
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_ENTRIES = (
    "alternatives",
    "group",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "timezone",
)


def binary() -> str | None:
    return shutil.which("bwrap")


def source_root() -> Path:
    """The directory holding the ``segue`` package: the worker's PYTHONPATH."""
    return Path(segue.__file__).resolve().parent.parent


def python_paths() -> list[Path]:
    """What the interpreter and segue's code need: prefixes, the executable's dir, source."""
    raw = [
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(sys.executable),
        os.path.dirname(os.path.realpath(sys.executable)),
        str(source_root()),
    ]
    paths: set[Path] = set()
    for item in raw:
        path = Path(os.path.abspath(item))
        paths.update({path, path.resolve()})
    system = [Path(p).resolve() for p in SYSTEM_PATHS if Path(p).is_dir()]
    kept = sorted(p for p in paths if p.is_dir() and not any(_inside(p, s) for s in system))
    return [p for p in kept if not any(q != p and _inside(p, q) for q in kept)]


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _covers_shown(hidden: Path, shown: list[Path], *, other_uid: bool) -> bool:
    """Whether a hidden path is visible in the view, so must be covered.

    Never one that is (or holds) a path the worker needs: that one is shown anyway.
    With ``other_uid`` (the worker has a uid of its own, and no groups), not one the
    worker could not reach anyway: bubblewrap, running as that uid, could not cover it.
    """
    if any(_inside(path, hidden) for path in shown):
        return False
    visible = [*shown, *(Path(p).resolve() for p in SYSTEM_PATHS)]
    visible += [Path("/etc", name) for name in ETC_ENTRIES]
    around = next((path for path in visible if _inside(hidden, path)), None)
    if around is None:
        return False
    if other_uid:
        between = [p for p in hidden.parents if _inside(p, around)]
        return all(_enterable(p) for p in between)
    return True


def _enterable(path: Path) -> bool:
    """Whether a uid that neither owns ``path`` nor is in its group may enter it."""
    try:
        return bool(path.stat().st_mode & 0o001)
    except OSError:
        return False


def _show(path: Path) -> list[str]:
    """A read-only bind of ``path`` at the same place (a symlink stays a symlink)."""
    if path.is_symlink():
        return ["--symlink", os.readlink(path), str(path)]
    if path.exists():
        return ["--ro-bind", str(path), str(path)]
    return []


def _hide(paths: Iterable[Path]) -> list[str]:
    """An empty read-only tmpfs on each directory, an unreadable node on each file."""
    args: list[str] = []
    for path in paths:
        if path.is_dir():
            args += ["--tmpfs", str(path), "--remount-ro", str(path)]
        elif path.exists():
            args += ["--ro-bind", "/dev/null", str(path)]
    return args


def view(
    tempdir: Path, hidden: Iterable[Path], *, tmp_bytes: int | None, other_uid: bool = False
) -> list[str]:
    """The mounts: the allow-list, the hidden paths inside it, the writable temp dir."""
    args = ["--dev", "/dev", "--proc", "/proc"]
    if tmp_bytes is not None:
        args += ["--size", str(tmp_bytes)]
    args += ["--tmpfs", "/tmp"]
    for name in SYSTEM_PATHS:
        args += _show(Path(name))
    args += ["--dir", "/etc"]
    for name in ETC_ENTRIES:
        args += _show(Path("/etc", name))
    shown = python_paths()
    for path in shown:
        args += ["--ro-bind", str(path), str(path)]
    args += _hide(h for h in hidden if _covers_shown(h, shown, other_uid=other_uid))
    args += ["--bind", str(tempdir), str(tempdir), "--chdir", str(tempdir)]
    return [*args, "--remount-ro", "/"]  # the root tmpfs: nothing is written outside


def command(
    tempdir: Path,
    env: dict[str, str],
    hidden: Iterable[Path],
    *,
    tmp_bytes: int | None,
    other_uid: bool = False,
) -> list[str]:
    """The whole bubblewrap prefix of a worker's command line (ends with ``--``)."""
    mounts = view(tempdir, hidden, tmp_bytes=tmp_bytes, other_uid=other_uid)
    args = [binary() or "bwrap", *mounts]
    args += ["--unshare-user", "--disable-userns"]
    args += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    args += ["--unshare-cgroup-try", "--cap-drop", "ALL", "--die-with-parent"]
    args += ["--new-session", "--clearenv"]
    for name, value in env.items():
        args += ["--setenv", name, value]
    return [*args, "--"]
