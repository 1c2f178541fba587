"""HTTP helpers for tests against a real ``computeplane serve`` (tests/e2e/server.py starts it)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.server import TEST_API_KEY, Server


def client(server: Server, timeout: float = 10.0) -> httpx.Client:
    """A client with the key the test server accepts (``COMPUTEPLANE_API_KEY``, set by tests/e2e/server.py)."""
    return httpx.Client(base_url=server.url, headers={"x-functions-key": TEST_API_KEY}, timeout=timeout)


def create_cluster(http: httpx.Client, name: str, **spec: Any) -> httpx.Response:
    body = {"name": name, "vm_size": "STANDARD_D2_V2", "max_nodes": 2, "idle_seconds_before_scaledown": 2} | spec
    return http.post("/api/workspaces/default/clusters", json=body)


def submit(http: httpx.Client, cluster: str, command: list[str], **extra: Any) -> httpx.Response:
    return http.post(f"/api/workspaces/default/clusters/{cluster}/jobs", json={"command": command} | extra)


def job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    response = http.get(f"/api/workspaces/default/jobs/{job_id}")
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def logs(http: httpx.Client, job_id: str) -> str:
    response = http.get(f"/api/workspaces/default/jobs/{job_id}/logs")
    response.raise_for_status()
    return str(response.json()["logs"])
