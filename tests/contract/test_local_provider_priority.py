"""The local provider records each node's priority: a low-priority cluster's dedicated fallback nodes are never
preempted, at random or on request; runs get a checkpoint directory that outlives their attempt."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from shared.domain.cluster import NodeState
from shared.domain.events import CloudEvent
from shared.domain.observation import NodeStatus, RunStatus
from shared.ports import RunRequest
from tests.contract.test_local_provider import provider
from tests.fakes.clock import FakeClock
from tests.unit.builders import add_job, add_node, make_cluster


def test_only_the_low_priority_nodes_of_a_low_priority_cluster_are_preempted(tmp_path: Path) -> None:
    clock, sent = FakeClock(), list[tuple[CloudEvent, datetime | None]]()
    nodes = provider(tmp_path, clock, sent, preemption_rate_per_node_hour=50.0, seed=7)
    spot = make_cluster()
    spot.spec.vm_priority = "lowpriority"
    cheap, steady = add_node(spot, NodeState.IDLE), add_node(spot, NodeState.IDLE)
    steady.priority = "dedicated"
    nodes.provision("ws", "c1", cheap.node_id, "lowpriority")
    nodes.provision("ws", "c1", steady.node_id, "dedicated")
    clock.advance(3)
    assert not nodes.preempt(steady.node_id)
    nodes.observe(spot)
    clock.advance(3600)
    seen = nodes.observe(spot)
    assert seen.node(cheap.node_id).status is NodeStatus.PREEMPTED
    assert seen.node(steady.node_id).status is NodeStatus.READY


def test_every_attempt_of_a_job_gets_the_same_checkpoint_directory_beside_its_run_directories(tmp_path: Path) -> None:
    clock = FakeClock()
    nodes = provider(tmp_path, clock, [])
    cluster = make_cluster()
    node = add_node(cluster, NodeState.RUNNING, run_id="j1")
    entry = add_job(cluster, "j1", running_on=[node])
    command = ("python", "-c", "import os, pathlib; d = pathlib.Path(os.environ['COMPUTEPLANE_CHECKPOINT_DIR']); "
               "print(d, sorted(p.name for p in d.iterdir())); (d / os.environ['COMPUTEPLANE_ATTEMPT']).touch()")
    for attempt in (1, 2):
        entry.attempt = attempt
        nodes.start_run([node.node_id], RunRequest("ws", "c1", "j1", attempt, command,
                                                   {"COMPUTEPLANE_ATTEMPT": str(attempt)}))
        deadline = time.monotonic() + 20
        while nodes.observe(cluster).run("j1", attempt).status is RunStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)
    checkpoints = nodes.checkpoint_dir("j1")
    assert checkpoints.parent == nodes.run_dir("j1", 1).parent
    assert f"{checkpoints} ['1']" in (nodes.read_logs("j1", 2) or "")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["1", "2"]
