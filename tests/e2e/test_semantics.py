"""AmlCompute semantics end to end: quota capping, queued-then-proceeds, reject at submit, preemption."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import Server, http, start_server, wait_for
from tests.e2e.test_lifecycle import cluster, create_cluster, finished, job, submit

RESUMABLE = ["python", "-c", "import os, time; time.sleep(60 if os.environ['COMPUTEPLANE_ATTEMPT'] == '1' else 0)"]


@pytest.fixture
def one_node_of_quota(tmp_path: Path) -> Iterator[Server]:
    """A region where the Dv2 family has 2 vCPUs of quota: exactly one STANDARD_D2_V2 node."""
    srv = start_server(tmp_path / "data", {"COMPUTEPLANE_QUOTA_FAMILY__standardDv2Family": "2"})
    try:
        yield srv
    finally:
        srv.stop()


def test_scale_up_is_capped_by_quota_and_the_waiting_job_proceeds_when_cores_free(one_node_of_quota: Server) -> None:
    server = one_node_of_quota
    create_cluster(server, "first")
    create_cluster(server, "second")
    first = submit(server, "first", ["python", "-c", "import time; time.sleep(1.5)"])
    wait_for(lambda: job(server, first)["state"] == "Running", what="first job running")
    second = submit(server, "second", ["python", "-c", "print('finally')"])
    blocked = wait_for(lambda: [e for e in cluster(server, "second")["errors"] if e["code"] == "QuotaExceeded"],
                       what="quota error on the second cluster")
    assert "Standard Dv2 Family vCPUs" in blocked[0]["message"] and "Maximum allowed: 2" in blocked[0]["message"]
    assert job(server, second)["state"] == "Queued" and "quota" in job(server, second)["reason"]
    usage = http.get(f"{server.url}/api/usages?location=eastus").json()
    dv2 = next(f for f in usage["families"] if f["family"] == "standardDv2Family")
    assert dv2 == dv2 | {"limit": 2, "current": 2}
    done = wait_for(lambda: finished(server, second), timeout=40, what="second job after the first scaled down")
    assert done["state"] == "Completed"
    assert not [e for e in cluster(server, "second")["errors"] if e["code"] == "QuotaExceeded"]


def test_a_job_that_can_never_fit_the_quota_is_rejected_at_submit(one_node_of_quota: Server) -> None:
    server = one_node_of_quota
    create_cluster(server, "tiny", max_nodes=4)
    response = http.post(f"{server.api()}/clusters/tiny/jobs", json={"command": ["true"], "node_count": 2})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "JobNodeCountExceedsCoreQuota"
    over_max = http.post(f"{server.api()}/clusters/tiny/jobs", json={"command": ["true"], "node_count": 5})
    assert over_max.json()["error"]["code"] == "JobNodeCountExceedsCoreQuota"


def test_a_preempted_low_priority_job_is_requeued_and_resumes_as_the_next_attempt(server: Server) -> None:
    create_cluster(server, "spot", vm_priority="lowpriority")
    job_id = submit(server, "spot", RESUMABLE)
    running = wait_for(lambda: (j := job(server, job_id))["state"] == "Running" and j, what="Running")
    node = running["nodes"][0]
    assert http.post(f"{server.api()}/clusters/spot/nodes/{node}/preempt").status_code == 202
    done = wait_for(lambda: finished(server, job_id), timeout=30, what="resumed attempt")
    assert done["state"] == "Completed" and done["attempts"] == 2
    assert any("Preempted" in (h["reason"] or "") for h in done["history"])


def test_a_job_asked_to_fail_after_its_preemption_retries_fails_with_preempted(server: Server) -> None:
    create_cluster(server, "spot2", vm_priority="lowpriority")
    job_id = submit(server, "spot2", ["python", "-c", "import time; time.sleep(60)"], max_preemption_retries=0,
                    on_preemption_retries_exhausted="fail")
    running = wait_for(lambda: (j := job(server, job_id))["state"] == "Running" and j, what="Running")
    http.post(f"{server.api()}/clusters/spot2/nodes/{running['nodes'][0]}/preempt")
    done = wait_for(lambda: finished(server, job_id), timeout=30, what="failure")
    assert done["state"] == "Failed" and done["reason"].startswith("Preempted")


def test_dedicated_nodes_are_not_preempted(server: Server) -> None:
    create_cluster(server, "steady", min_nodes=1)
    node = wait_for(lambda: http.get(f"{server.api()}/clusters/steady/nodes").json(), what="a node")[0]
    refused = http.post(f"{server.api()}/clusters/steady/nodes/{node['node_id']}/preempt")
    assert refused.status_code == 409 and "dedicated" in refused.json()["error"]["message"]


def test_a_location_other_than_the_workspace_is_accepted_with_a_warning(server: Server) -> None:
    created = create_cluster(server, "faraway", location="westeurope").json()
    assert created["location"] == "westeurope"
    assert any("latency" in w and "westeurope" in w for w in created["warnings"])
    assert cluster(server, "faraway")["warnings"] == created["warnings"]
    assert create_cluster(server, "nearby").json()["warnings"] == []


def test_a_delete_lock_blocks_scale_down_with_a_clear_error_and_scaling_resumes_when_it_goes(server: Server) -> None:
    create_cluster(server, "locked")
    job_id = submit(server, "locked", ["python", "-c", "pass"])
    wait_for(lambda: finished(server, job_id), what="job end")
    lock = http.post(f"{server.url}/api/locks", json={"name": "rg-lock", "level": "CanNotDelete"})
    assert lock.status_code == 201
    blocked = wait_for(lambda: (c := cluster(server, "locked"))["errors"] and c, timeout=15, what="lock error")
    assert [e["code"] for e in blocked["errors"]] == ["ResourceLocked"]
    assert "azurebatch-cloudservicepublicip" in blocked["errors"][0]["message"]
    assert blocked["allocation_state"] == "Steady" and blocked["current_node_count"] == 1  # no hang
    assert http.delete(f"{server.url}/api/locks/rg-lock").status_code == 204
    resumed = wait_for(lambda: (c := cluster(server, "locked"))["current_node_count"] == 0 and c, timeout=15,
                       what="scale-down after the lock is gone")
    assert resumed["errors"] == [] and resumed["allocation_state"] == "Steady"


def test_a_submit_sent_again_with_the_same_idempotency_key_runs_the_job_once(server: Server) -> None:
    create_cluster(server, "once")
    body = {"command": ["python", "-c", "print('ran')"]}
    first = http.post(f"{server.api()}/clusters/once/jobs", json=body, headers={"Idempotency-Key": "nightly-42"})
    again = http.post(f"{server.api()}/clusters/once/jobs", json=body, headers={"Idempotency-Key": "nightly-42"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    done = wait_for(lambda: finished(server, first.json()["id"]), timeout=60, what="the job")
    assert done["state"] == "Completed"
    assert [j["id"] for j in http.get(f"{server.api()}/clusters/once/jobs").json()] == [first.json()["id"]]

    other = http.post(f"{server.api()}/clusters/once/jobs", json={"command": ["true"]},
                      headers={"Idempotency-Key": "nightly-42"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "IdempotencyKeyReused"
    bad = http.post(f"{server.api()}/clusters/once/jobs", json=body, headers={"Idempotency-Key": "no spaces"})
    assert bad.status_code == 422 and "Idempotency-Key" in bad.json()["error"]["message"]
    assert len(http.get(f"{server.api()}/clusters/once/jobs").json()) == 1
