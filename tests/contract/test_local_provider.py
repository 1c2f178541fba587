"""The local node provider against real SQLite and real subprocesses, with a clock the test moves."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

from shared.adapters.local_provider import LocalNodeProvider
from shared.domain.cluster import JobPhase, NodeState
from shared.domain.events import CloudEvent
from shared.domain.observation import LockLevel, NodeStatus, RunStatus
from shared.ports import RunRequest
from tests.fakes.clock import FakeClock
from tests.unit.builders import add_job, add_node, make_cluster


def provider(tmp_path: Path, clock: FakeClock, sent: list[tuple[CloudEvent, datetime | None]],
             **options: object) -> LocalNodeProvider:
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    return LocalNodeProvider(data_dir, tmp_path / "runs", clock, lambda e, at: sent.append((e, at)),
                             timedelta(seconds=2), **options)  # type: ignore[arg-type]


def test_a_node_is_ready_after_its_boot_delay_and_says_so_with_a_scheduled_event(tmp_path: Path) -> None:
    clock, sent = FakeClock(), []
    nodes = provider(tmp_path, clock, sent)
    cluster = make_cluster()
    node = add_node(cluster, NodeState.PREPARING)
    nodes.provision("ws", "c1", node.node_id)
    nodes.provision("ws", "c1", node.node_id)  # idempotent: no second node, no second event
    assert [(e.type, at) for e, at in sent] == [("computeplane.node.ready", clock.now() + timedelta(seconds=2))]
    assert nodes.observe(cluster).node(node.node_id).status is NodeStatus.BOOTING
    clock.advance(2)
    assert nodes.observe(cluster).node(node.node_id).status is NodeStatus.READY
    nodes.release(node.node_id)
    assert nodes.observe(cluster).node(node.node_id).status is NodeStatus.GONE


def test_a_run_is_a_real_process_in_its_own_directory_with_only_the_environment_it_is_given(tmp_path: Path) -> None:
    clock, sent = FakeClock(), []
    nodes = provider(tmp_path, clock, sent)
    cluster = make_cluster()
    node = add_node(cluster, NodeState.RUNNING, run_id="j1")
    add_job(cluster, "j1", running_on=[node])
    command = ("python", "-c", "import os; print(sorted(os.environ)); print(os.getcwd())")
    run = RunRequest("ws", "c1", "j1", 1, command, {"MY_SETTING": "1"})
    nodes.start_run([node.node_id], run)
    nodes.start_run([node.node_id], run)  # started before: not run twice
    deadline = time.monotonic() + 10
    while nodes.observe(cluster).run("j1", 1).status is RunStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    finished = nodes.observe(cluster).run("j1", 1)
    assert finished.status is RunStatus.FINISHED and finished.exit_code == 0
    logs = nodes.read_logs("j1", 1) or ""
    assert "MY_SETTING" in logs and "COSMOS" not in logs and str(nodes.run_dir("j1", 1)) in logs
    assert [e.type for e, _ in sent].count("computeplane.job.finished") == 1
    assert cluster.jobs[0].phase is JobPhase.RUNNING


def test_low_priority_nodes_are_preempted_at_random_at_the_configured_rate(tmp_path: Path) -> None:
    clock, sent = FakeClock(), []
    nodes = provider(tmp_path, clock, sent, preemption_rate_per_node_hour=50.0, seed=7)
    spot = make_cluster()
    spot.spec.vm_priority = "lowpriority"
    node = add_node(spot, NodeState.IDLE)
    nodes.provision("ws", "c1", node.node_id)
    clock.advance(3)
    nodes.observe(spot)  # first look after boot
    clock.advance(3600)
    assert nodes.observe(spot).node(node.node_id).status is NodeStatus.PREEMPTED
    assert "computeplane.node.preempted" in [e.type for e, _ in sent]


def test_locks_are_observed_with_the_strictest_level_first(tmp_path: Path) -> None:
    nodes = provider(tmp_path, FakeClock(), [])
    cluster = make_cluster()
    assert nodes.observe(cluster).lock is None
    nodes.add_lock("no-delete", LockLevel.CAN_NOT_DELETE)
    nodes.add_lock("read-only", LockLevel.READ_ONLY)
    lock = nodes.observe(cluster).lock
    assert lock is not None and lock.name == "read-only" and lock.blocks_scale_up
    assert nodes.remove_lock("read-only") and not nodes.remove_lock("read-only")
    remaining = nodes.observe(cluster).lock
    assert remaining is not None and remaining.level is LockLevel.CAN_NOT_DELETE


class SandboxFailingOnce:
    """A sandbox whose first entry fails in the child, as unshare now and then does when many runs start at once
    (the child cannot tell the parent, so a file marks that the failure happened)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def enter(self) -> None:
        if not self.marker.exists():
            self.marker.touch()
            raise OSError(22, "unshare(CLONE_NEWUSER|CLONE_NEWNS): Invalid argument")


def test_a_run_whose_sandbox_fails_to_start_once_is_started_again_and_completes(tmp_path: Path) -> None:
    clock, sent = FakeClock(), []
    nodes = provider(tmp_path, clock, sent)
    marker = tmp_path / "failed-once"
    nodes.job_sandbox = lambda: SandboxFailingOnce(marker)  # type: ignore[method-assign,assignment,return-value]
    cluster = make_cluster()
    node = add_node(cluster, NodeState.RUNNING, run_id="j1")
    add_job(cluster, "j1", running_on=[node])
    nodes.start_run([node.node_id], RunRequest("ws", "c1", "j1", 1, ("python", "-c", "print('ran')"), {}))
    deadline = time.monotonic() + 10
    while nodes.observe(cluster).run("j1", 1).status is not RunStatus.FINISHED and time.monotonic() < deadline:
        time.sleep(0.05)
    finished = nodes.observe(cluster).run("j1", 1)
    assert marker.exists() and finished.status is RunStatus.FINISHED and finished.exit_code == 0
    assert "ran" in (nodes.read_logs("j1", 1) or "")
