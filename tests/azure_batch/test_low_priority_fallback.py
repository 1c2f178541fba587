"""A low-priority cluster with the fallback on Batch, end to end on ``computeplane serve`` and the stand-in: the job's
low-priority Batch node is preempted, the cluster falls back to a dedicated Batch node (the pool's dedicated target),
and the job resumes there from the checkpoint it kept in the pool's mounted checkpoint container.
The local version is tests/e2e/test_low_priority_fallback.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.adapters.azure_batch.pools import NodeMap, pool_id
from tests.azure_batch.serving import SUBSCRIPTION, StandIn, TokenEndpoint
from tests.azure_batch.test_serve_end_to_end import batch_node_of, batch_server
from tests.azure_batch.tls import ServerCertificate
from tests.e2e.server import Server, http, wait_for
from tests.e2e.test_lifecycle import create_cluster, finished, job, submit
from tests.e2e.test_low_priority_fallback import CHECKPOINTING, nodes

NODE_IDENTITY = (f"/subscriptions/{SUBSCRIPTION}/resourcegroups/rg-computeplane/providers/"
                 "Microsoft.ManagedIdentity/userAssignedIdentities/id-computeplane-nodes")


@pytest.fixture
def server(tmp_path: Path, standin: StandIn, certificate: ServerCertificate,
           token_endpoint: TokenEndpoint, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    yield from batch_server(tmp_path, standin, certificate, token_endpoint, monkeypatch, {
        "COMPUTEPLANE_SNAPSHOT_ACCOUNT_URL": "https://cpstorage.blob.core.windows.net",
        "COMPUTEPLANE_CHECKPOINT_CONTAINER": "checkpoints",
        "COMPUTEPLANE_BATCH_NODE_IDENTITY": NODE_IDENTITY,
    })


def test_a_preempted_job_falls_back_to_a_dedicated_batch_node_and_resumes_from_its_checkpoint(
        server: Server, standin: StandIn) -> None:
    created = create_cluster(server, "spotfb", vm_priority="lowpriority", idle_seconds_before_scaledown=60,
                             low_priority_fallback={"trigger": "preemptions", "after_preemptions": 1})
    assert created.status_code == 202, created.text
    job_id = submit(server, "spotfb", CHECKPOINTING, checkpoint_interval_seconds=60)
    running = wait_for(lambda: (j := job(server, job_id))["state"] == "Running" and j, timeout=60,
                       what="attempt 1 running")
    [low] = running["nodes"]
    pool = pool_id("default", "spotfb")
    low_batch_node = batch_node_of(standin, "spotfb", low)
    with standin.world.lock:
        assert not standin.world.pools[pool].nodes[low_batch_node].dedicated
    checkpoint = (standin.world.work_dir / "blob-containers" / "cpstorage" / "checkpoints" / "default" / job_id
                  / "state.txt")
    wait_for(checkpoint.exists, timeout=60, what="attempt 1's checkpoint in the checkpoint container")

    standin.world.preempt(pool, low_batch_node)

    done = wait_for(lambda: finished(server, job_id), timeout=90, what="attempt 2 on a dedicated node")
    assert done["state"] == "Completed" and done["attempts"] == 2, done
    assert any("falling back to dedicated nodes" in (h["reason"] or "") for h in done["history"])
    [dedicated] = done["nodes"]
    assert dedicated != low
    assert {n["node_id"]: n["priority"] for n in nodes(server, "spotfb")}.get(dedicated) == "dedicated"
    # The ComputePlane node maps to a dedicated Batch node, asked for as the pool's dedicated target.
    with standin.world.lock:
        body = standin.world.pools[pool].body
        node_map = NodeMap.from_metadata(body["properties"]["metadata"])
        priority, batch_node = node_map.entries[dedicated]
        assert priority == "dedicated" and batch_node is not None
        assert standin.world.pools[pool].nodes[batch_node].dedicated
        assert body["properties"]["scaleSettings"]["fixedScale"]["targetDedicatedNodes"] == 1
        # Batch requeued attempt 1's task when its node was preempted: it was ended, not run a second time.
        attempt_one = [t for t in standin.world.tasks.values() if t.id.startswith(f"{job_id}-a1")]
        assert [(t.state, t.requeues, t.process) for t in attempt_one] == [("completed", 1, None)]
    logs = http.get(f"{server.api()}/jobs/{job_id}/logs", params={"attempt": 2}).json()["logs"]
    assert "resumed from: step 41 saved by attempt 1" in logs
    # A dedicated node is never reported preempted: it is still held, idle, after the job.
    assert {n["node_id"]: n["state"] for n in nodes(server, "spotfb")}.get(dedicated) not in (None, "preempted")
