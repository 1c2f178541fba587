"""The real Azure clients against a real ``computeplane serve --tls``: the server, and each client's own venv.

The clients' pins clash with the project's, so the Makefile installs each in a venv of its own and names its
interpreter in ``AZUREML_CORE_PYTHON``, ``AZURE_AI_ML_PYTHON`` and ``AZURE_CLI_AZ``. A test that needs a missing
client fails under CI (where the Makefile installs them) and is skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import FAST_TIMINGS, TEST_API_KEY, Server, free_port

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = "ml-rg"
CLIENT_TIMEOUT_SECONDS = 240


@dataclass
class TlsServer:
    server: Server
    ca: Path

    @property
    def url(self) -> str:
        return self.server.url

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"x-functions-key": TEST_API_KEY} | ({"Authorization": f"Bearer {token}"} if token else {})
        return httpx.Client(base_url=self.url, verify=str(self.ca), headers=headers, timeout=30)

    def token(self) -> str:
        """A user token from the token route, for the test's API key (every workspace)."""
        with self.http() as client:
            answer = client.get("/arm-identity/token", params={"api-version": "2019-08-01", "resource": self.url},
                                headers={"X-IDENTITY-HEADER": TEST_API_KEY})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def workspace_url(self, workspace: str) -> str:
        return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
                f"Microsoft.MachineLearningServices/workspaces/{workspace}")

    def client_environment(self, home: Path) -> dict[str, str]:
        """What ``eval "$(computeplane token env)"`` exports (the README's way), plus a home of its own: the
        clients cache clouds and logins there."""
        done = subprocess.run([sys.executable, "-m", "computeplane", "--endpoint", self.url, "--api-key",
                               TEST_API_KEY, "token", "env", "--data-dir", str(self.server.data_dir)],
                              capture_output=True, text=True, timeout=60, check=True)
        exported = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1)
                        for line in done.stdout.splitlines())
        home.mkdir(parents=True, exist_ok=True)
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
        return keep | exported | {
            "HOME": str(home), "AZURE_CONFIG_DIR": str(home / ".azure"),
            "AZURE_CORE_COLLECT_TELEMETRY": "false", "AZUREML_LOG_DEPRECATION_WARNING_ENABLED": "False",
        }


@contextmanager
def running_tls_server(data_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[TlsServer]:
    port = free_port()
    env = {**os.environ, **FAST_TIMINGS, "COMPUTEPLANE_API_KEY": TEST_API_KEY, **(extra_env or {})}
    log_path = data_dir.parent / f"serve-tls-{port}.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "computeplane", "serve", "--tls", "--port", str(port), "--data-dir",
             str(data_dir), "--sweep-seconds", "1"], env=env, stdout=log_file, stderr=subprocess.STDOUT)
    server = Server(f"https://127.0.0.1:{port}", data_dir, process, log_path)
    ca = data_dir / "tls" / "ca.pem"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"computeplane serve --tls exited:\n{server.log()}")
            try:
                if ca.exists() and httpx.get(f"{server.url}/api/health", verify=str(ca), timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"computeplane serve --tls did not answer within 60 s:\n{server.log()}")
            time.sleep(0.2)
        yield TlsServer(server, ca)
    finally:
        server.stop(signal.SIGINT)


def client_program(variable: str, install_hint: str) -> Path:
    """The interpreter (or ``az``) of a client venv, from the variable the Makefile sets."""
    value = os.environ.get(variable)
    if value and Path(value).exists():
        return Path(value)
    message = f"{variable} is not set to an installed client ({install_hint}; `make test` installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run_client(program: list[str], environment: dict[str, str], cwd: Path,
               timeout: float = CLIENT_TIMEOUT_SECONDS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(program, env=environment, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)


def last_json_line(output: str) -> dict[str, object]:
    """Client scripts print their findings as one JSON line at the end (SDK chatter may come before it)."""
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    raise AssertionError(f"no JSON result in the client's output:\n{output}")
