"""How a function worker process is started: identity, view, limits, and what holds it.

Trust model. A function is untrusted code. What stops it:

* always: a separate process (never ingest or delivery) serving one function version
  of one scope (a destination, or one Send Test Event) only; a scrubbed environment
  (PATH, LANG, PYTHONPATH, HOME — none of segue's secrets); a fresh temp dir as
  cwd/HOME; rlimits on every process (address space or data size, CPU seconds, open
  files, file size, no core dumps); the parent's wall-clock timeout, which kills the
  whole sandbox.
* segue running as root: each worker runs as its own unprivileged uid/gid
  (``identity``), dropped before bubblewrap (or the worker) is exec'd, with
  ``RLIMIT_NPROC`` for that uid. Paths the uid could not reach (an interpreter under
  ``/root``) are bridged in a private mount namespace (``mountns``).
* control groups where segue can make them (``cgroups``): memory, process count and
  CPU limits for the whole sandbox, an OOM kill reported as ``CallError.MEMORY``, and
  the list of its processes. After each call the parent kills every process of the
  sandbox but the worker's own (``confinement``); when the worker ends, all of them.
  Without control groups the per-worker uid does the same; without either, only the
  worker's process group is killed, and only when the worker ends.
* mode "bwrap" (bubblewrap, used by "auto" when it works; ``bwrap``): a view built
  from an allow-list (no config file, no ``/run`` or its sockets, no ``/home``, no
  ``/root``, no ``/etc/shadow``; hidden paths covered even inside shown ones), new
  user (no further user namespaces inside), network (none: ``fetch`` is proxied
  through the parent and its egress guard), PID, IPC, UTS and cgroup namespaces, no
  capabilities.
* mode "none": the rest of the list. The function sees the file system as its uid
  does (as root: all of it but hidden paths; as segue's user: what that user can read)
  and can open sockets itself. Use it only for code you trust.

Neither mode filters system calls (no seccomp), and a Python function can change
anything inside its own worker (its runtime, its rlimits' soft values, the protocol
pipes): the parent treats every worker as untrusted and validates what it says.
"""

from __future__ import annotations

import functools
import logging
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from segue.functions import bwrap, cgroups
from segue.functions.bwrap import source_root
from segue.functions.cgroups import Cgroup, CgroupLimits, CgroupSupport
from segue.functions.confinement import Confinement
from segue.functions.identity import (
    DEFAULT_UID_BASE,
    DEFAULT_UID_COUNT,
    UidLease,
    UidRange,
    drop_privileges,
)
from segue.functions.mountns import Staging

__all__ = ["Limits", "Sandbox", "SandboxMode", "WorkerCommand", "sandbox_available", "source_root"]

SandboxMode = Literal["auto", "bwrap", "none"]
MiB = 1024 * 1024
# V8 reserves ~512 MiB of writable code range up front: a JavaScript worker's data limit
# is the memory limit plus this (its heap is limited by V8 itself, see JSRuntime).
JS_DATA_OVERHEAD_MB = 1024
# What a sandbox may use beyond the function's own memory limit (the control group's
# limit): the interpreter and bubblewrap, and for JavaScript V8's code and isolates.
SANDBOX_OVERHEAD_MB = {"python": 64, "javascript": 160}
PROBE_TIMEOUT_S = 20.0

log = logging.getLogger("segue.functions")


@dataclass(frozen=True, slots=True)
class Limits:
    memory_mb: int = 256  # Python: RLIMIT_AS; JavaScript: V8's heap limit
    cpu_s: int = 30  # RLIMIT_CPU, renewed by the worker for each call
    open_files: int = 256
    file_mb: int = 64  # RLIMIT_FSIZE: the largest file the function may write
    tmp_mb: int = 64  # the private /tmp under bubblewrap
    processes: int = 64  # processes and threads of a whole sandbox (pids.max, RLIMIT_NPROC)
    cpu_cores: float = 1.0  # CPU time of a whole sandbox, in cores (0: unlimited)

    def sandbox_memory(self, runtime: str) -> int:
        """The memory limit of a whole sandbox (its control group), in bytes."""
        overhead = SANDBOX_OVERHEAD_MB.get(runtime, SANDBOX_OVERHEAD_MB["javascript"])
        return (self.memory_mb + self.tmp_mb + overhead) * MiB


@dataclass(frozen=True, slots=True)
class WorkerCommand:
    """Everything needed to start one worker; ``confinement`` is released after it exits."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    confinement: Confinement
    preexec_fn: Callable[[], None]

    @property
    def tempdir(self) -> Path:
        return self.confinement.tempdir


def sandbox_available() -> bool:
    """True when bubblewrap can run a worker here, as it would (own uid if root)."""
    uids = (DEFAULT_UID_BASE, DEFAULT_UID_COUNT) if os.geteuid() == 0 else None
    return _probe("bwrap", uids, _staging(uids is not None, "bwrap", ()))


@dataclass(frozen=True, slots=True)
class Sandbox:
    """The isolation in use: ``mode`` is "bwrap" or "none" once chosen."""

    mode: Literal["bwrap", "none"]
    limits: Limits = field(default_factory=Limits)
    hidden_paths: tuple[Path, ...] = ()
    uids: UidRange | None = None
    cgroups: CgroupSupport = field(default_factory=CgroupSupport)
    staging: Staging = field(default_factory=Staging)

    @classmethod
    def choose(
        cls,
        mode: SandboxMode = "auto",
        *,
        limits: Limits | None = None,
        hidden_paths: Iterable[str | os.PathLike[str]] = (),
        uid_range: tuple[int, int] | None = (DEFAULT_UID_BASE, DEFAULT_UID_COUNT),
        use_cgroups: bool = True,
    ) -> Sandbox:
        """Mode "auto" picks bubblewrap when it works; "bwrap" insists on it (RuntimeError).

        ``uid_range`` (base, count) is used when segue runs as root (None: never).
        """
        if mode not in ("auto", "bwrap", "none"):
            raise ValueError(f"unknown sandbox mode {mode!r}: use auto, bwrap or none")
        hidden = tuple(Path(p).resolve() for p in hidden_paths)
        uids = uid_range if os.geteuid() == 0 else None
        chosen: Literal["bwrap", "none"] = "none"
        if mode != "none":
            if _probe("bwrap", uids, _staging(uids is not None, "bwrap", ())):
                chosen = "bwrap"
            elif mode == "bwrap":
                raise RuntimeError("the bwrap sandbox was asked for, but bubblewrap cannot run")
        if chosen == "none" and uids and not _probe("none", uids, _staging(True, "none", ())):
            log.warning("function workers cannot run as their own uid here: they run as root")
            uids = None
        staging = _staging(uids is not None, chosen, hidden)
        return cls(
            mode=chosen,
            limits=limits or Limits(),
            hidden_paths=hidden,
            uids=UidRange(*uids) if uids is not None else None,
            cgroups=CgroupSupport.detect() if use_cgroups else CgroupSupport(),
            staging=staging,
        )

    def command(self, runtime: str = "python") -> WorkerCommand:
        """A fresh temp dir, uid and control group, and the worker's command line."""
        tempdir = Path(tempfile.mkdtemp(prefix="segue-fn-")).resolve()
        lease: UidLease | None = None
        cgroup = None
        try:
            if self.uids is not None:
                lease = self.uids.acquire()
                os.chown(tempdir, lease.uid, lease.gid)
            if self.cgroups.available:
                cgroup = self._cgroup(runtime)
        except BaseException:
            Confinement(tempdir, lease, cgroup).discard()
            raise
        confinement = Confinement(tempdir, lease, cgroup)
        env = worker_env(tempdir)
        argv = self._argv(runtime, tempdir, env)
        procs = cgroup.procs_files if cgroup is not None else ()
        preexec = _preexec(self.limits, runtime, procs, self.staging, lease)
        return WorkerCommand(argv, env, tempdir, confinement, preexec)

    def _cgroup(self, runtime: str) -> Cgroup | None:
        wanted = CgroupLimits(
            memory_bytes=self.limits.sandbox_memory(runtime),
            pids=self.limits.processes,
            cpu_cores=self.limits.cpu_cores,
        )
        try:
            return self.cgroups.create(wanted)
        except OSError as exc:
            log.warning("no control group for a function worker (%s): rlimits only", exc)
            return None

    def _argv(self, runtime: str, tempdir: Path, env: dict[str, str]) -> list[str]:
        worker = worker_argv(runtime, self.limits)
        if self.mode != "bwrap":
            return worker
        tmp_bytes = self.limits.tmp_mb * MiB
        other_uid = self.uids is not None
        hidden = self.hidden_paths
        return (
            bwrap.command(tempdir, env, hidden, tmp_bytes=tmp_bytes, other_uid=other_uid) + worker
        )


def worker_env(tempdir: Path) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(source_root()),
        "HOME": str(tempdir),
    }


def worker_argv(runtime: str, limits: Limits) -> list[str]:
    argv = [sys.executable, "-B", "-s", "-P", "-X", "utf8"]
    argv += ["-m", "segue.functions.worker", "--runtime", runtime]
    return [*argv, "--memory-mb", str(limits.memory_mb), "--cpu-s", str(limits.cpu_s)]


def _staging(own_uid: bool, mode: str, hidden: tuple[Path, ...]) -> Staging:
    """The private mount namespace a worker running as its own uid needs, if any."""
    if not own_uid:
        return Staging()
    needed = [*bwrap.python_paths(), Path(tempfile.gettempdir()).resolve()]
    return Staging.plan(needed, hidden if mode == "none" else ())


@functools.cache
def _probe(mode: str, uids: tuple[int, int] | None, staging: Staging) -> bool:
    """Whether a worker can start this way here: one real run of the interpreter."""
    if mode == "bwrap" and bwrap.binary() is None:
        return False
    lease = UidRange(*uids).acquire() if uids is not None else None
    tempdir = Path(tempfile.mkdtemp(prefix="segue-fn-probe-")).resolve()
    try:
        if lease is not None:
            os.chown(tempdir, lease.uid, lease.gid)
        env = worker_env(tempdir)
        check = [sys.executable, "-B", "-s", "-P", "-c", "import segue.functions.worker"]
        if mode == "bwrap":
            check = bwrap.command(tempdir, env, (), tmp_bytes=MiB) + check
        done = subprocess.run(
            check,
            capture_output=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
            env=env,
            cwd=tempdir,
            preexec_fn=_preexec(Limits(), "python", (), staging, lease),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("function sandbox probe (%s) failed: %s", mode, exc)
        return False
    finally:
        Confinement(tempdir, lease, None).discard()
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip()[-500:]
        log.info("function sandbox probe (%s) failed: %s", mode, detail)
    return done.returncode == 0


def _within(which: int, soft: int, hard: int) -> tuple[int, int]:
    """(soft, hard) lowered to the current hard limit, which a child cannot raise."""
    infinity = resource.RLIM_INFINITY
    current = resource.getrlimit(which)[1]
    if current != infinity:
        hard = current if hard == infinity else min(hard, current)
        soft = hard if soft == infinity else min(soft, hard)
    return soft, hard


def _preexec(
    limits: Limits,
    runtime: str,
    procs_files: tuple[str, ...],
    staging: Staging,
    lease: UidLease | None,
) -> Callable[[], None]:
    """The preexec_fn: join the control groups, stage paths, set rlimits, drop root.

    Only os-level calls run in it (nothing that imports or takes a lock after fork).
    """
    infinity = resource.RLIM_INFINITY
    memory = limits.memory_mb * MiB
    cpu = max(1, limits.cpu_s) if limits.cpu_s > 0 else infinity
    wanted = [
        (resource.RLIMIT_CPU, cpu, infinity),  # the worker renews the soft limit per call
        (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
        (resource.RLIMIT_FSIZE, limits.file_mb * MiB, limits.file_mb * MiB),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    if runtime == "javascript":  # V8 reserves terabytes of address space: limit data
        data = memory + JS_DATA_OVERHEAD_MB * MiB
        wanted.append((resource.RLIMIT_DATA, data, data))
    else:
        wanted.append((resource.RLIMIT_AS, memory, memory))
    if lease is not None:  # counted per uid: exact for a uid of its own
        wanted.append((resource.RLIMIT_NPROC, limits.processes, limits.processes))
    settings = [(which, _within(which, soft, hard)) for which, soft, hard in wanted]
    setrlimit = resource.setrlimit
    enter = cgroups.enter
    ids = None if lease is None else (lease.uid, lease.gid)

    def apply() -> None:
        enter(procs_files)  # first: as root, and before anything can fork
        staging.apply()
        for which, values in settings:
            setrlimit(which, values)
        if ids is not None:
            drop_privileges(*ids)

    return apply
