"""Hand-made clusters and observations for domain tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.domain.cluster import Cluster, ClusterSpec, JobEntry, JobPhase, Node, NodeState, ProvisioningState
from shared.domain.cluster_changes import new_cluster
from shared.domain.observation import NodeStatus, Observation, ObservedNode, ObservedRun, RunStatus

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_cluster(max_nodes: int = 4, min_nodes: int = 0, idle: int = 60) -> Cluster:
    spec = ClusterSpec(vm_size="STANDARD_D2_V2", max_nodes=max_nodes, min_nodes=min_nodes,
                       idle_seconds_before_scaledown=idle)
    cluster = new_cluster("ws", "c1", spec, "abcdef123456", T0)
    cluster.provisioning_state = ProvisioningState.SUCCEEDED
    return cluster


def add_node(cluster: Cluster, state: NodeState, idle_since: float | None = 0, run_id: str | None = None) -> Node:
    node = Node(node_id=cluster.new_node_id(), state=state, requested_at=T0, ready_at=T0,
                idle_since=at(idle_since) if idle_since is not None and state is NodeState.IDLE else None,
                run_id=run_id)
    cluster.nodes.append(node)
    return node


def add_job(cluster: Cluster, job_id: str, node_count: int = 1, submitted: float = 0, max_retries: int = 3,
            running_on: list[Node] | None = None) -> JobEntry:
    entry = JobEntry(job_id=job_id, node_count=node_count, max_retries=max_retries, submitted_at=at(submitted))
    if running_on:
        entry.phase, entry.node_ids = JobPhase.RUNNING, [n.node_id for n in running_on]
        for n in running_on:
            n.state, n.run_id, n.idle_since = NodeState.RUNNING, job_id, None
    cluster.jobs.append(entry)
    return entry


def everything_ready(cluster: Cluster, runs: dict[tuple[str, int], ObservedRun] | None = None) -> Observation:
    """Every node the cluster holds is ready; runs as given (others not started)."""
    return Observation(nodes={n.node_id: ObservedNode(NodeStatus.READY) for n in cluster.nodes},
                       runs=runs or {})


def running(cluster: Cluster) -> dict[tuple[str, int], ObservedRun]:
    return {(j.job_id, j.attempt): ObservedRun(RunStatus.RUNNING) for j in cluster.jobs if j.phase is JobPhase.RUNNING}
