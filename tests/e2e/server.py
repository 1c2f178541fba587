"""Start ``computeplane serve`` as a real subprocess on a free port, with short timings, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

TEST_API_KEY = "test-key-for-the-e2e-suite"
http = httpx.Client(headers={"x-functions-key": TEST_API_KEY}, timeout=30)  # what every e2e test calls with

FAST_TIMINGS = {
    "COMPUTEPLANE_NODE_BOOT_SECONDS": "0.3",
    "COMPUTEPLANE_RESYNC_SECONDS": "2",
    "COMPUTEPLANE_RELEASE_POLL_SECONDS": "0.2",
    "COMPUTEPLANE_BOOT_TIMEOUT_SECONDS": "20",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def runs_dir(self) -> Path:
        """Where its jobs run: beside the data directory (COMPUTEPLANE_RUNS_DIR is not set by these tests)."""
        return self.data_dir.parent / f"{self.data_dir.name}-runs"

    def api(self, workspace: str = "default") -> str:
        return f"{self.url}/api/workspaces/{workspace}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(data_dir: Path, extra_env: dict[str, str] | None = None, port: int | None = None,
                 sweep_seconds: float = 1.0) -> Server:
    port = port or free_port()
    env = {**os.environ, **FAST_TIMINGS, "COMPUTEPLANE_API_KEY": TEST_API_KEY, **(extra_env or {})}
    log_path = data_dir.parent / f"serve-{port}.log"
    log_file = open(log_path, "ab")  # noqa: SIM115 - owned by the child process
    process = subprocess.Popen(
        [sys.executable, "-m", "computeplane", "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--sweep-seconds", str(sweep_seconds), "--log-level", "INFO"],
        env=env, stdout=log_file, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", data_dir, process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"computeplane serve exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/api/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"computeplane serve did not answer within 30 s:\n{server.log()}")


@contextmanager
def running_server(data_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    server = start_server(data_dir, extra_env)
    try:
        yield server
    finally:
        server.stop()


def wait_for(predicate_value, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll ``predicate_value()`` until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate_value()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value: {last!r}")
