"""The installed ``computeplane`` console script, as a subprocess, against a running ``computeplane serve``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.cli.direct_api import api_get
from tests.e2e.server import Server

REPO_ROOT = Path(__file__).resolve().parents[2]


def console_script() -> list[str]:
    """The script installed next to this interpreter (``make test`` installs the package editable), else
    ``python -m computeplane`` (the same entry point, ``computeplane.cli:main``)."""
    script = Path(sys.executable).parent / "computeplane"
    return [str(script)] if script.exists() else [sys.executable, "-m", "computeplane"]


def computeplane(*args: str, endpoint: str, timeout: float = 60,
                 api_key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COMPUTEPLANE_ENDPOINT": endpoint, "COMPUTEPLANE_WORKSPACE": "default"}
    if api_key is not None:
        env["COMPUTEPLANE_API_KEY"] = api_key
    return subprocess.run([*console_script(), *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_create_wait_submit_wait_logs_and_json_through_the_installed_script(server: Server) -> None:
    created = computeplane("cluster", "create", "cpucluster", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "4",
                           "--idle-seconds-before-scaledown", "120", "--wait", endpoint=server.url)
    assert created.returncode == 0, created.stderr
    assert "cpucluster: Succeeded, allocation Steady" in created.stderr  # the progress lines (not a TTY: plain)
    assert "provisioning_state" in created.stdout and "Succeeded" in created.stdout

    submitted = computeplane("job", "submit", "--cluster", "cpucluster", "--wait", "--",
                             "python", "-c", "print('hello from a node')", endpoint=server.url)
    assert submitted.returncode == 0, submitted.stderr
    assert "hello from a node" in submitted.stdout
    assert "Completed" in submitted.stderr

    jobs = computeplane("--output", "json", "job", "list", endpoint=server.url)
    assert jobs.returncode == 0
    job_id = json.loads(jobs.stdout)[0]["id"]
    logs = computeplane("job", "logs", job_id, endpoint=server.url)
    assert logs.returncode == 0 and logs.stdout == "hello from a node\n"

    shown = computeplane("cluster", "show", "cpucluster", "--output", "json", endpoint=server.url)
    assert json.loads(shown.stdout) == api_get(f"{server.api()}/clusters/cpucluster")


def test_exit_codes_of_the_installed_script(server: Server) -> None:
    missing = computeplane("cluster", "show", "nothere", endpoint=server.url)
    assert missing.returncode == 1 and "ComputeTargetNotFound" in missing.stderr
    bad = computeplane("cluster", "create", "badone", "-s", "STANDARD_D2_V2", "--max-nodes", "-1", endpoint=server.url)
    assert bad.returncode == 2 and "max_nodes" in bad.stderr
    unreachable = computeplane("cluster", "list", endpoint="http://127.0.0.1:9")
    assert unreachable.returncode == 3 and "http://127.0.0.1:9" in unreachable.stderr
    assert "Traceback" not in missing.stderr + bad.stderr + unreachable.stderr


def test_a_wrong_key_is_bad_input_with_a_hint(server: Server) -> None:
    if httpx.get(f"{server.api()}/clusters", timeout=10).status_code not in (401, 403):
        pytest.skip("this server does not require an API key")
    refused = computeplane("cluster", "list", endpoint=server.url, api_key="not-the-key")
    assert refused.returncode == 2
    assert "COMPUTEPLANE_API_KEY" in refused.stderr and "Traceback" not in refused.stderr
