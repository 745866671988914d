"""What one worker's sandbox holds besides its processes: temp dir, uid, control groups.

The parent — never the worker, which runs untrusted code — uses it to find and end the
sandbox's processes: the members of its control group where segue could make one,
else the processes of its own uid (segue running as root), else only the worker's
process group. ``seal`` notes the processes the worker is made of (bubblewrap's two
and the worker, or the worker alone) once it is ready, before any function code ran;
``sweep`` after each call kills every other process of the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from pathlib import Path

from segue.functions.cgroups import Cgroup, is_running
from segue.functions.identity import UidLease, kill_uid, processes_of

RELEASE_WAIT_S = 2.0
SWEEP_WAIT_S = 2.0  # how long killed processes may take to end before the worker goes too

log = logging.getLogger("segue.functions")


class Confinement:
    """One worker's temp dir, uid lease and control group (each optional but the dir)."""

    def __init__(self, tempdir: Path, lease: UidLease | None, cgroup: Cgroup | None) -> None:
        self.tempdir = tempdir
        self.lease = lease
        self.cgroup = cgroup
        self.keep: frozenset[int] = frozenset()
        self.released = False

    @property
    def uid(self) -> int | None:
        return None if self.lease is None else self.lease.uid

    @property
    def tracked(self) -> bool:
        """Whether the sandbox's processes can be listed (a control group or an own uid)."""
        return self.cgroup is not None or self.lease is not None

    def members(self) -> set[int]:
        """The running processes of the sandbox (empty if they cannot be listed)."""
        if self.cgroup is not None:
            return self.cgroup.members()
        if self.lease is not None:
            return {pid for pid in processes_of(self.lease.uid) if is_running(pid)}
        return set()

    def seal(self) -> None:
        """Note the worker's own processes: called once it is ready, before any call."""
        self.keep = frozenset(self.members())

    async def sweep(self) -> bool:
        """Kill every process but the worker's own, and await their end.

        Pass after pass (what a killed process forked before it died shows up in the
        next one); False if some are still running after ``SWEEP_WAIT_S``.
        """
        if not self.tracked:
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SWEEP_WAIT_S
        while extra := self.members() - self.keep:
            if loop.time() >= deadline:
                return False
            for pid in extra:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            await ended(extra, deadline - loop.time())
        return True

    def kill(self) -> None:
        """Kill every process of the sandbox, the worker included."""
        if self.cgroup is not None and self.cgroup.kill():
            return  # nothing leaves a control group: its members were all there was
        if self.lease is not None:
            kill_uid(self.lease.uid)

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer ended a process of the sandbox."""
        return self.cgroup is not None and self.cgroup.oom_kills() > 0

    def peak_memory(self) -> int | None:
        return None if self.cgroup is None else self.cgroup.peak_memory()

    async def release(self) -> None:
        """After the worker ended: no process left, groups removed, uid freed, dir gone."""
        if self.released:
            return
        self.released = True
        self.kill()
        if self.cgroup is not None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + RELEASE_WAIT_S
            while not self.cgroup.remove() and loop.time() < deadline:
                self.cgroup.kill()
                await asyncio.sleep(0.005)  # dying members leave the group on their own
            if self.cgroup.dirs:
                log.warning("function sandbox groups left behind: %s", self.cgroup.dirs)
        if self.lease is not None:
            self.lease.release()
        shutil.rmtree(self.tempdir, ignore_errors=True)

    def discard(self) -> None:
        """Give everything back at once (a worker that never started)."""
        self.released = True
        self.kill()
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.lease is not None:
            self.lease.release()
        shutil.rmtree(self.tempdir, ignore_errors=True)


async def ended(pids: set[int], timeout_s: float) -> None:
    """Return once every one of ``pids`` has ended (or after ``timeout_s``): pidfds."""
    loop = asyncio.get_running_loop()
    fds: list[int] = []
    ends: list[asyncio.Future[None]] = []
    try:
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            except OSError:  # no pidfds on this kernel: look again shortly
                await asyncio.sleep(0.005)
                return
            end: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _settle, end)
            fds.append(fd)
            ends.append(end)
        if ends:
            await asyncio.wait(ends, timeout=max(0.0, timeout_s))
    finally:
        for fd in fds:
            loop.remove_reader(fd)
            os.close(fd)


def _settle(end: asyncio.Future[None]) -> None:
    if not end.done():
        end.set_result(None)
