"""What the benchmarks in bench/ share: server processes, wrk, CPU accounting, /metrics.

Everything here talks to 127.0.0.1 only, and every wait has a time limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 10.0
_TICKS = os.sysconf("SC_CLK_TCK")

# urllib honours *_proxy variables; the benchmarks only ever talk to 127.0.0.1.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class BenchError(RuntimeError):
    """Something made the run meaningless (a server did not start, wrk failed...)."""


class Server:
    """A server subprocess in its own process group, stopped with SIGTERM, then SIGKILL."""

    live: list[Server] = []  # every server still running, for the cleanup on exit

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.name, self.argv, self.log_path = name, argv, log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=BENCH.parent,
            start_new_session=True,
        )
        Server.live.append(self)

    @property
    def pid(self) -> int:
        """The server's own pid: taskset execs the command it runs."""
        return self.proc.pid

    def wait_ready(self, probe: Callable[[], bool], timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                if probe():
                    return
            time.sleep(0.1)
        raise BenchError(f"{self.name} did not become ready in {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        self._log.flush()
        text = self.log_path.read_text("utf-8", "replace").splitlines()
        return "\n".join(text[-lines:])

    def cpu_seconds(self) -> float:
        """user + system CPU time the server has used so far (all its threads)."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def stop(self) -> None:
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
        if self in Server.live:
            Server.live.remove(self)

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)  # the group this script created for it

    @classmethod
    def stop_all(cls) -> None:
        for server in list(cls.live):
            server.stop()


def machine_busy_seconds(cpu: int | None = None) -> float:
    """CPU time all processes have used so far (/proc/stat), on one CPU or on all.

    Interrupt time is left out (it is mostly the loopback traffic of the benchmark
    itself); time stolen by the hypervisor is in (it is lost to the benchmark).
    """
    name = "cpu" if cpu is None else f"cpu{cpu}"
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            fields = line.split()
            if fields[0] == name:
                user, nice, system, _idle, _iowait, _irq, _softirq, steal = map(int, fields[1:9])
                return (user + nice + system + steal) / _TICKS
    raise BenchError(f"no {name} in /proc/stat")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: bytes | None = None, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with _HTTP.open(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def pinned(cpu: int | None, argv: list[str]) -> list[str]:
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


def server_env() -> dict[str, str]:
    """This environment without SEGUE_* (a developer's settings must not leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass(frozen=True)
class WrkOptions:
    connections: int = 64
    threads: int = 1
    timeout_s: float = 10.0
    cpu: int | None = 1


@dataclass
class WrkResult:
    duration_s: float
    requests: int  # responses received, any status
    non_2xx: int
    socket_errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    body_bytes: int
    cpu_s: float  # wrk's own CPU time: near duration_s means the load generator was the limit

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx

    @property
    def rps(self) -> float:
        return self.ok / self.duration_s


def run_wrk(options: WrkOptions, script: Path, url: str, seconds: float, *args: str) -> WrkResult:
    """Run wrk with a Lua script whose done() prints ``WRK_JSON {...}`` (see ingest.lua)."""
    wrk = ["wrk", "-t", str(options.threads), "-c", str(options.connections)]
    wrk += ["-d", f"{seconds:g}s", "--timeout", f"{options.timeout_s:g}s", "-s", str(script)]
    argv = pinned(options.cpu, [*wrk, url, "--", *args])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish in {seconds + 60:.0f} s") from exc
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    lat = data["latency_us"]
    return WrkResult(
        duration_s=data["duration_us"] / 1e6,
        requests=data["requests"],
        non_2xx=data["errors"]["status"],
        socket_errors={k: v for k, v in data["errors"].items() if k != "status"},
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        max_ms=lat["max"] / 1000,
        body_bytes=data["body_bytes"],
        cpu_s=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text: every sample summed by metric name (labels dropped)."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def metric_value(text: str, name: str, **labels: str) -> float:
    """Prometheus text: the sum of the samples of ``name`` whose labels include ``labels``.

    ``metric_value(text, "segue_deliveries_total", state="succeeded")``; the label
    values are compared as written (no escapes are decoded).
    """
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        name_labels, _, value = line.rpartition(" ")
        sample, _, rest = name_labels.partition("{")
        if sample != name:
            continue
        found = dict(
            (key.strip(), raw.strip().strip('"'))
            for key, _, raw in (pair.partition("=") for pair in rest.rstrip("}").split(",") if pair)
        )
        if all(found.get(key) == wanted for key, wanted in labels.items()):
            total += float(value)
    return total


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
    except FileNotFoundError:  # only the ingest benchmark needs wrk (apt-get install wrk)
        first = ["not installed"]
    else:
        first = (wrk.stdout or wrk.stderr).splitlines()
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": sys.version.split()[0],
        "wrk": first[0] if first else "",
    }
