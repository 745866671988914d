"""Running a real ``segue serve`` in a subprocess for integration and acceptance tests."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ADMIN_TOKEN = "test-admin-token"
WRITE_KEY = "wk_test"


# The source `test` and an egress guard open to the loopback test servers: what most
# configs of a test that delivers start with.
LOOPBACK_CONFIG = f"""
[[sources]]
name = "test"
write_key = "{WRITE_KEY}"

[egress]
allow = ["127.0.0.0/8"]
allow_http = true
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SegueProcess:
    """A segue server on 127.0.0.1 with a known admin token and a source `test`."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    config_text: str = f'[[sources]]\nname = "test"\nwrite_key = "{WRITE_KEY}"\n'
    extra_env: dict[str, str] = field(default_factory=dict)
    fd_limit: int | None = None  # the server's open-file limit (soft and hard)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> SegueProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir.parent / f"{self.data_dir.name}.toml"
        config.write_text(self.config_text, "utf-8")
        env = {**os.environ, "SEGUE_ADMIN_TOKEN": ADMIN_TOKEN, **self.extra_env}
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "segue",
                "serve",
                "--config",
                str(config),
                "--data",
                str(self.data_dir),
                "--port",
                str(self.port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=self._limit_fds if self.fd_limit else None,
        )
        log.close()
        self.wait_ready(timeout)
        return self

    def _limit_fds(self) -> None:
        assert self.fd_limit is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.fd_limit, self.fd_limit))

    def wait_ready(self, timeout: float) -> None:
        """Poll /health until the server answers (or died, or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"segue exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"segue did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path else ""

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        return self.process.wait(timeout)

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30.0,
        )

    def all_events(self, **params: Any) -> list[dict[str, Any]]:
        """Every stored event (newest first), following the cursor."""
        events: list[dict[str, Any]] = []
        cursor = None
        with self.admin() as client:
            while True:
                query = {**params, "limit": 1000, **({"cursor": cursor} if cursor else {})}
                page = client.get("/events", params=query)
                page.raise_for_status()
                body = page.json()
                events.extend(body["events"])
                cursor = body["next_cursor"]
                if not cursor:
                    return events
