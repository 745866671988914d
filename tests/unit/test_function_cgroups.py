"""Where a function sandbox's control groups go, and what is written in them (no cgroupfs)."""

from __future__ import annotations

from pathlib import Path

from segue.functions import cgroups
from segue.functions.cgroups import CgroupLimits

HYBRID_CGROUP = """9:name=systemd:/
8:pids:/
4:memory:/process_api/abc
2:cpu,cpuacct:/
0::/
"""
HYBRID_MOUNTS = """31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /proc rw - proc proc rw
"""
V2_CGROUP = "0::/system.slice/segue.service\n"
V2_MOUNTS = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
# a container whose cgroup namespace root is its own group
NESTED_MOUNTS = "30 23 0:26 /kube/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"


def candidates(cgroup: str, mounts: str) -> list[tuple[str, frozenset[str], Path]]:
    groups = cgroups._own_groups(cgroup)
    return cgroups._candidates(groups, cgroups._cgroup_mounts(mounts))


def test_a_hybrid_machine_offers_v1_controllers_and_a_bare_v2() -> None:
    found = {(kind, path) for kind, _, path in candidates(HYBRID_CGROUP, HYBRID_MOUNTS)}
    assert found == {
        ("v1", Path("/sys/fs/cgroup/cpu,cpuacct")),
        ("v1", Path("/sys/fs/cgroup/memory/process_api/abc")),
        ("v1", Path("/sys/fs/cgroup/pids")),
        ("v2", Path("/sys/fs/cgroup/unified")),
    }
    controllers = {c for _, found, _ in candidates(HYBRID_CGROUP, HYBRID_MOUNTS) for c in found}
    assert {"cpu", "memory", "pids"} <= controllers


def test_a_v2_machine_offers_segues_own_group() -> None:
    [(kind, _, path)] = candidates(V2_CGROUP, V2_MOUNTS)
    assert (kind, path) == ("v2", Path("/sys/fs/cgroup/system.slice/segue.service"))
    # inside a cgroup namespace the mount's root is the group itself
    [(_, _, nested)] = candidates("0::/kube/pod1\n", NESTED_MOUNTS)
    assert nested == Path("/sys/fs/cgroup")
    assert candidates("0::/elsewhere\n", NESTED_MOUNTS) == []


def test_the_limits_written() -> None:
    limits = CgroupLimits(memory_bytes=384 << 20, pids=64, cpu_cores=1.5)
    assert cgroups._v2_value("memory", limits) == str(384 << 20)
    assert cgroups._v2_value("pids", limits) == "64"
    assert cgroups._v2_value("cpu", limits) == "150000 100000"
    assert cgroups._v1_value("cpu", limits) == "150000"
    unlimited = CgroupLimits(memory_bytes=1, pids=1, cpu_cores=0)
    assert cgroups._v2_value("cpu", unlimited) == "max 100000"
    assert cgroups._v1_value("cpu", unlimited) == "-1"


def test_counters_are_read_by_name(tmp_path: Path) -> None:
    events = tmp_path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\n")
    assert cgroups._counter(events, "oom_kill") == 2
    assert cgroups._counter(tmp_path / "missing", "oom_kill") == 0
