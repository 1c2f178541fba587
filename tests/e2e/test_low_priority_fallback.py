"""A low-priority cluster with the fallback, end to end on `computeplane serve`: a preempted job resumes from its
checkpoint on a dedicated node of the same cluster and completes."""

from __future__ import annotations

from typing import Any

from tests.e2e.server import Server, http, wait_for
from tests.e2e.test_lifecycle import cluster, create_cluster, finished, job, submit

CHECKPOINTING = ["python", "-c", """
import os, pathlib, time
state = pathlib.Path(os.environ["COMPUTEPLANE_CHECKPOINT_DIR"]) / "state.txt"
if os.environ["COMPUTEPLANE_ATTEMPT"] == "1":
    state.write_text("step 41 saved by attempt 1")
    time.sleep(120)
else:
    print("resumed from:", state.read_text())
"""]


def nodes(server: Server, name: str) -> list[dict[str, Any]]:
    return http.get(f"{server.api()}/clusters/{name}/nodes").json()  # type: ignore[no-any-return]


def test_a_preempted_job_falls_back_to_a_dedicated_node_resumes_from_its_checkpoint_and_completes(
        server: Server) -> None:
    created = create_cluster(server, "spotfb", vm_priority="lowpriority", idle_seconds_before_scaledown=60,
                             low_priority_fallback={"trigger": "preemptions", "after_preemptions": 1})
    assert created.status_code == 202, created.text
    assert created.json()["low_priority_fallback"] == {"trigger": "preemptions", "after_preemptions": 1,
                                                       "lost_time_budget_seconds": 3600}
    job_id = submit(server, "spotfb", CHECKPOINTING, checkpoint_interval_seconds=60)
    running = wait_for(lambda: (j := job(server, job_id))["state"] == "Running" and j, what="attempt 1 running")
    [low] = running["nodes"]
    assert [n["priority"] for n in nodes(server, "spotfb") if n["node_id"] == low] == ["lowpriority"]
    checkpoint = server.runs_dir / job_id / "checkpoints" / "state.txt"
    wait_for(checkpoint.exists, what="attempt 1's checkpoint")

    assert http.post(f"{server.api()}/clusters/spotfb/nodes/{low}/preempt").status_code == 202

    done = wait_for(lambda: finished(server, job_id), timeout=60, what="attempt 2 on a dedicated node")
    assert done["state"] == "Completed" and done["attempts"] == 2, done
    assert any("falling back to dedicated nodes" in (h["reason"] or "") for h in done["history"])
    [dedicated] = done["nodes"]
    assert dedicated != low
    held = {n["node_id"]: n["priority"] for n in nodes(server, "spotfb")}
    assert held.get(dedicated) == "dedicated"  # kept idle for 60 s: still listed
    assert cluster(server, "spotfb")["node_priority_counts"]["dedicated"] == 1
    logs = http.get(f"{server.api()}/jobs/{job_id}/logs", params={"attempt": 2}).json()["logs"]
    assert "resumed from: step 41 saved by attempt 1" in logs
    refused = http.post(f"{server.api()}/clusters/spotfb/nodes/{dedicated}/preempt")
    assert refused.status_code == 409 and "dedicated" in refused.json()["error"]["message"]


def test_preemption_settings_that_break_a_rule_are_refused_with_the_field(server: Server) -> None:
    dedicated = create_cluster(server, "plain", low_priority_fallback={"trigger": "deadline"})
    assert dedicated.status_code == 422
    assert dedicated.json()["error"]["details"][0]["field"] == "low_priority_fallback"
    create_cluster(server, "spotbad", vm_priority="lowpriority")
    no_runtime = http.post(f"{server.api()}/clusters/spotbad/jobs",
                           json={"command": ["true"], "deadline": "2030-01-01T00:00:00Z"})
    assert no_runtime.status_code == 422 and no_runtime.json()["error"]["details"][0]["field"] == "deadline"
