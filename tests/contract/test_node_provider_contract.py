"""The NodeProvider contract, run against every provider: the local one (real subprocesses) and the Azure Batch one
(the real azure-batch and azure-mgmt-batch SDKs against the Batch stand-in, over HTTPS, with the control plane's
tokens from the local token endpoint).

Each test is what reconcile relies on: asking twice does nothing twice, a provisioned node becomes ready, a run's
exit code and output come back, a stopped run stops, a released node is gone, a preempted node says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from shared.adapters.azure_batch.pools import NodeMap, pool_id
from shared.adapters.clock import SystemClock
from shared.adapters.local_provider import LocalNodeProvider
from shared.domain.cluster import Cluster, ClusterSpec, Node, NodeState, ProvisioningState
from shared.domain.cluster_changes import new_cluster
from shared.domain.observation import NodeStatus, Observation, RunStatus
from shared.ports import NodeProvider, RunRequest
from tests.azure_batch.serving import StandIn
from tests.unit.builders import T0, add_job

WAIT_SECONDS = 60.0


@dataclass
class Subject:
    provider: NodeProvider
    preempt: Callable[[Cluster, str], None]  # what the cloud does to a low-priority node


@pytest.fixture(params=["local", "azurebatch"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    if request.param == "local":
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        local = LocalNodeProvider(data_dir, tmp_path / "runs", SystemClock(), lambda event, at: None,
                                  timedelta(seconds=0.3), job_sandbox="off")
        yield Subject(local, lambda cluster, node_id: _true(local.preempt(node_id)))
        local.stop_all()
    else:
        batch = request.getfixturevalue("batch_provider")
        world: StandIn = request.getfixturevalue("standin")

        def preempt(cluster: Cluster, node_id: str) -> None:
            pool = pool_id(cluster.workspace, cluster.name)
            with world.world.lock:
                metadata = world.world.pools[pool].body["properties"].get("metadata")
            batch_node = NodeMap.from_metadata(metadata).batch_node(node_id)
            assert batch_node is not None
            world.world.preempt(pool, batch_node)

        yield Subject(batch, preempt)


def _true(value: bool) -> None:
    assert value


def low_priority_cluster(name: str = "contract") -> Cluster:
    spec = ClusterSpec(vm_size="STANDARD_D2_V2", max_nodes=4, vm_priority="lowpriority")
    cluster = new_cluster("ws", name, spec, "abcdef123456", T0)
    cluster.provisioning_state = ProvisioningState.SUCCEEDED
    return cluster


def add_nodes(subject: Subject, cluster: Cluster, count: int) -> list[str]:
    subject.provider.observe(cluster)  # a cloud provider creates what the cluster needs here (its pool)
    ids = []
    for _ in range(count):
        node = Node(node_id=cluster.new_node_id(), state=NodeState.PREPARING, requested_at=T0)
        cluster.nodes.append(node)
        subject.provider.provision(cluster.workspace, cluster.name, node.node_id)
        ids.append(node.node_id)
    return ids


def wait_for(subject: Subject, cluster: Cluster, condition: Callable[[Observation], bool], what: str) -> Observation:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        observed = subject.provider.observe(cluster)
        if condition(observed):
            return observed
        assert time.monotonic() < deadline, f"not {what} within {WAIT_SECONDS} s: {observed}"
        time.sleep(0.2)


def ready(node_ids: list[str]) -> Callable[[Observation], bool]:
    return lambda seen: all(seen.node(n).status is NodeStatus.READY for n in node_ids)


def run_request(job_id: str, command: list[str], attempt: int = 1) -> RunRequest:
    return RunRequest(workspace="ws", cluster="contract", job_id=job_id, attempt=attempt, command=tuple(command),
                      environment={"COMPUTEPLANE_ATTEMPT": str(attempt), "GREETING": "hello"})


def running_job(cluster: Cluster, job_id: str, node_ids: list[str], attempt: int = 1) -> None:
    entry = add_job(cluster, job_id, node_count=len(node_ids),
                    running_on=[n for n in cluster.nodes if n.node_id in node_ids])
    entry.attempt = attempt


def test_provisioning_twice_gives_one_node_that_becomes_ready(subject: Subject) -> None:
    cluster = low_priority_cluster()
    [node_id] = add_nodes(subject, cluster, 1)
    subject.provider.provision(cluster.workspace, cluster.name, node_id)  # asked again (a redelivered event)
    seen = wait_for(subject, cluster, ready([node_id]), "ready")
    assert seen.node(node_id).private_ip
    if isinstance(subject.provider, LocalNodeProvider):
        return
    time.sleep(1.5)  # what a second node would need to show up in the stand-in
    assert len(subject.provider._list_nodes(pool_id("ws", "contract"))) == 1  # type: ignore[attr-defined]


def test_a_run_reports_its_exit_code_and_its_output_and_starting_it_twice_runs_it_once(subject: Subject) -> None:
    cluster = low_priority_cluster()
    [node_id] = add_nodes(subject, cluster, 1)
    wait_for(subject, cluster, ready([node_id]), "ready")
    running_job(cluster, "job-ok", [node_id])
    command = ["python", "-c",
               "import os; print(os.environ['GREETING'], 'attempt', os.environ['COMPUTEPLANE_ATTEMPT'])"]
    subject.provider.start_run([node_id], run_request("job-ok", command))
    subject.provider.start_run([node_id], run_request("job-ok", command))
    seen = wait_for(subject, cluster, lambda o: o.run("job-ok", 1).status is RunStatus.FINISHED, "finished")
    assert seen.run("job-ok", 1).exit_code == 0
    logs = subject.provider.read_logs("job-ok", 1) or ""
    assert logs.count("hello attempt 1") == 1, logs


def test_a_failing_command_reports_its_exit_code(subject: Subject) -> None:
    cluster = low_priority_cluster()
    [node_id] = add_nodes(subject, cluster, 1)
    wait_for(subject, cluster, ready([node_id]), "ready")
    running_job(cluster, "job-fails", [node_id])
    subject.provider.start_run([node_id], run_request("job-fails", ["python", "-c", "import sys; "
                                                                                   "print('bad input'); sys.exit(3)"]))
    seen = wait_for(subject, cluster, lambda o: o.run("job-fails", 1).status is RunStatus.FINISHED, "finished")
    assert seen.run("job-fails", 1).exit_code == 3
    assert "bad input" in (subject.provider.read_logs("job-fails", 1) or "")


def test_a_gang_run_holds_all_its_nodes_and_finishes(subject: Subject) -> None:
    cluster = low_priority_cluster()
    node_ids = add_nodes(subject, cluster, 2)
    wait_for(subject, cluster, ready(node_ids), "ready")
    running_job(cluster, "job-gang", node_ids)
    subject.provider.start_run(node_ids, run_request("job-gang", ["python", "-c", "print('gang of', "
                                                                                 "__import__('os').environ["
                                                                                 "'COMPUTEPLANE_NODE_COUNT'])"]))
    seen = wait_for(subject, cluster, lambda o: o.run("job-gang", 1).status is RunStatus.FINISHED, "finished")
    assert seen.run("job-gang", 1).exit_code == 0
    assert "gang of 2" in (subject.provider.read_logs("job-gang", 1) or "")


def test_a_stopped_run_stops_and_stopping_again_or_an_unknown_run_does_nothing(subject: Subject) -> None:
    cluster = low_priority_cluster()
    [node_id] = add_nodes(subject, cluster, 1)
    wait_for(subject, cluster, ready([node_id]), "ready")
    running_job(cluster, "job-long", [node_id])
    subject.provider.start_run([node_id], run_request("job-long", ["sleep", "120"]))
    wait_for(subject, cluster, lambda o: ("job-long", 1) in o.unfinished_runs, "running")
    subject.provider.stop_run("no-such-job", 1)

    def stopped(seen: Observation) -> bool:
        """Reconcile stops a run level-triggered: again at each look while it still runs (the local provider may
        not have spawned it yet at the first stop)."""
        if seen.run("job-long", 1).status is RunStatus.RUNNING:
            subject.provider.stop_run("job-long", 1)
            return False
        return True

    seen = wait_for(subject, cluster, stopped, "stopped")
    assert seen.run("job-long", 1).exit_code in (None, -15, 143, -9, 137)  # ended by us, not by the command
    assert ("job-long", 1) not in seen.unfinished_runs


def test_a_released_node_is_gone_and_releasing_again_does_nothing(subject: Subject) -> None:
    cluster = low_priority_cluster()
    [node_id] = add_nodes(subject, cluster, 1)
    wait_for(subject, cluster, ready([node_id]), "ready")
    subject.provider.release(node_id)
    subject.provider.release(node_id)
    subject.provider.release("never-provisioned-0001")
    wait_for(subject, cluster, lambda o: o.node(node_id).status is NodeStatus.GONE, "gone")


def test_a_preempted_node_is_observed_as_preempted_and_its_run_does_not_finish(subject: Subject) -> None:
    cluster = low_priority_cluster()
    [node_id] = add_nodes(subject, cluster, 1)
    wait_for(subject, cluster, ready([node_id]), "ready")
    running_job(cluster, "job-spot", [node_id])
    subject.provider.start_run([node_id], run_request("job-spot", ["sleep", "120"]))
    wait_for(subject, cluster, lambda o: ("job-spot", 1) in o.unfinished_runs, "running")
    subject.preempt(cluster, node_id)
    seen = wait_for(subject, cluster, lambda o: o.node(node_id).status is NodeStatus.PREEMPTED, "preempted")
    assert seen.run("job-spot", 1).status is not RunStatus.FINISHED or seen.run("job-spot", 1).exit_code != 0


def test_a_command_that_cannot_start_finishes_with_exit_code_127(subject: Subject) -> None:
    cluster = low_priority_cluster()
    [node_id] = add_nodes(subject, cluster, 1)
    wait_for(subject, cluster, ready([node_id]), "ready")
    running_job(cluster, "job-typo", [node_id])
    subject.provider.start_run([node_id], run_request("job-typo", ["no-such-program-here", "--flag"]))
    seen = wait_for(subject, cluster, lambda o: o.run("job-typo", 1).status is RunStatus.FINISHED, "finished")
    assert seen.run("job-typo", 1).exit_code == 127
