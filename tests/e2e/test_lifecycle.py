"""The seed's lifecycle, end to end: a real ``computeplane serve`` subprocess, real HTTP, real job processes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.server import Server, http, wait_for


def create_cluster(server: Server, name: str, **spec: Any) -> httpx.Response:
    body = {"name": name, "vm_size": "STANDARD_D2_V2", "max_nodes": 2, "idle_seconds_before_scaledown": 2} | spec
    return http.post(f"{server.api()}/clusters", json=body)


def cluster(server: Server, name: str) -> dict[str, Any]:
    response = http.get(f"{server.api()}/clusters/{name}")
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def job(server: Server, job_id: str) -> dict[str, Any]:
    return http.get(f"{server.api()}/jobs/{job_id}").json()  # type: ignore[no-any-return]


def submit(server: Server, name: str, command: list[str], **extra: Any) -> str:
    response = http.post(f"{server.api()}/clusters/{name}/jobs", json={"command": command} | extra)
    assert response.status_code == 202, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


def finished(server: Server, job_id: str) -> dict[str, Any] | None:
    j = job(server, job_id)
    return j if j["state"] in ("Completed", "Failed", "Canceled") else None


class NodeCountWatcher:
    """Polls the cluster while a test runs and remembers the most nodes ever seen."""

    def __init__(self, server: Server, name: str) -> None:
        self.server, self.name, self.most = server, name, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            c = cluster(self.server, self.name)
            self.most = max(self.most, c["current_node_count"], len(
                http.get(f"{self.server.api()}/clusters/{self.name}/nodes").json()))
            time.sleep(0.05)

    def __enter__(self) -> NodeCountWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_cluster_scales_up_for_a_job_runs_it_and_scales_back_to_zero(any_store_server: Server) -> None:
    server = any_store_server
    response = create_cluster(server, "cpucluster")
    assert response.status_code == 202
    assert response.headers["location"].endswith("/api/workspaces/default/clusters/cpucluster")
    wait_for(lambda: cluster(server, "cpucluster")["provisioning_state"] == "Succeeded", what="Succeeded")
    created = cluster(server, "cpucluster")
    assert created["current_node_count"] == 0 and created["allocation_state"] == "Steady"

    job_id = submit(server, "cpucluster", [
        "python", "-c", "open('result.txt', 'w').write('42'); print('hello from the node')"])
    wait_for(lambda: cluster(server, "cpucluster")["current_node_count"] == 1, what="scale-up to 1 node")
    done = wait_for(lambda: finished(server, job_id), what="job end")
    assert done["state"] == "Completed" and done["exit_code"] == 0 and done["attempts"] == 1
    assert [h["state"] for h in done["history"]][-2:] == ["Running", "Completed"]
    logs = http.get(f"{server.api()}/jobs/{job_id}/logs").json()
    assert "hello from the node" in logs["logs"]
    outputs = list(server.runs_dir.glob(f"{job_id}/attempt-1/node-0/result.txt"))
    assert outputs and outputs[0].read_text() == "42"

    # After idle_seconds_before_scaledown the node goes: back to 0 nodes and Steady.
    idle = wait_for(lambda: (c := cluster(server, "cpucluster"))["current_node_count"] == 0
                    and c["allocation_state"] == "Steady" and c, timeout=20, what="scale-down to 0")
    assert idle["node_state_counts"] == {s: 0 for s in idle["node_state_counts"]}


def test_three_jobs_on_two_nodes_never_exceed_max_nodes_and_all_complete(server: Server) -> None:
    create_cluster(server, "small", max_nodes=2)
    with NodeCountWatcher(server, "small") as watcher:
        ids = [submit(server, "small", ["python", "-c", "import time; time.sleep(1)"]) for _ in range(3)]
        results = [wait_for(lambda j=j: finished(server, j), what=f"job {j}") for j in ids]
    assert [r["state"] for r in results] == ["Completed"] * 3
    assert 1 <= watcher.most <= 2


def test_a_two_node_job_holds_both_nodes_at_once(server: Server, tmp_path: Path) -> None:
    create_cluster(server, "gang", max_nodes=2)
    job_id = submit(server, "gang", ["python", "-c", "import os, time; print(os.environ['COMPUTEPLANE_NODE_RANK']);"
                                     " time.sleep(2)"], node_count=2)

    def both_nodes_running_it() -> bool:
        nodes = http.get(f"{server.api()}/clusters/gang/nodes").json()
        return len(nodes) == 2 and all(n["state"] == "running" and n["run_id"] == job_id for n in nodes)

    wait_for(both_nodes_running_it, what="both nodes held by the job")
    done = wait_for(lambda: finished(server, job_id), what="job end")
    assert done["state"] == "Completed" and len(done["nodes"]) == 2
    logs = http.get(f"{server.api()}/jobs/{job_id}/logs").json()["logs"]
    assert "node-0" in logs and "node-1" in logs


def test_a_failing_command_fails_the_job_with_its_exit_code(server: Server) -> None:
    create_cluster(server, "fails")
    job_id = submit(server, "fails", ["python", "-c", "import sys; print('boom'); sys.exit(3)"])
    done = wait_for(lambda: finished(server, job_id), what="job end")
    assert done["state"] == "Failed" and done["exit_code"] == 3 and "exited with code 3" in done["reason"]


def test_cancel_stops_a_running_job_and_frees_its_node(server: Server) -> None:
    create_cluster(server, "cancels")
    job_id = submit(server, "cancels", ["python", "-c", "import time; time.sleep(60)"])
    wait_for(lambda: job(server, job_id)["state"] == "Running", what="Running")
    assert http.post(f"{server.api()}/jobs/{job_id}/cancel").status_code == 202
    done = wait_for(lambda: finished(server, job_id), what="cancel")
    assert done["state"] == "Canceled"
    wait_for(lambda: cluster(server, "cancels")["node_state_counts"]["running"] == 0, what="node freed")
    again = http.post(f"{server.api()}/jobs/{job_id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "OperationNotAllowed"


def test_get_or_create_and_patch_and_delete(server: Server) -> None:
    assert create_cluster(server, "same").status_code == 202
    assert create_cluster(server, "same").status_code == 200
    conflict = create_cluster(server, "same", vm_size="STANDARD_D3_V2", max_nodes=3)
    assert conflict.status_code == 409
    fields = {d["field"] for d in conflict.json()["error"]["details"]}
    assert fields == {"vm_size", "max_nodes"}

    patched = http.patch(f"{server.api()}/clusters/same", json={"min_nodes": 1, "max_nodes": 3})
    assert patched.status_code == 200
    assert patched.json()["scale_settings"]["min_nodes"] == 1
    assert cluster(server, "same")["scale_settings"] == {"min_nodes": 1, "max_nodes": 3,
                                                           "idle_seconds_before_scaledown": 2}
    wait_for(lambda: cluster(server, "same")["node_state_counts"]["idle"] == 1, what="min_nodes node ready")

    bad = http.patch(f"{server.api()}/clusters/same", json={"min_nodes": 5})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "min_nodes"
    assert cluster(server, "same")["scale_settings"]["min_nodes"] == 1  # nothing stored was lost

    assert http.delete(f"{server.api()}/clusters/same").status_code == 202
    wait_for(lambda: http.get(f"{server.api()}/clusters/same").status_code == 404, what="deleted")
    missing = http.get(f"{server.api()}/clusters/same").json()
    assert missing["error"]["code"] == "ComputeTargetNotFound"
