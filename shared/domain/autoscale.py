"""Autoscale and placement policies: pure functions of (cluster, now). The handlers and the simulator call these."""

from __future__ import annotations

from datetime import datetime

from shared.domain.cluster import Cluster, JobEntry, JobPhase, Node, NodeState

ACTIVE_NODE_STATES = (NodeState.PREPARING, NodeState.IDLE, NodeState.RUNNING)


def demand(cluster: Cluster) -> int:
    """Nodes wanted by queued and running jobs (a multi-node job wants all its nodes at once)."""
    return sum(j.node_count for j in cluster.jobs)


def scale_target(cluster: Cluster, quota_free_nodes: int | None = None) -> int:
    """clamp(max(demand, min_nodes), 0, max_nodes), capped by free quota, never below the busy nodes."""
    spec = cluster.spec
    wanted = min(max(demand(cluster), spec.min_nodes), spec.max_nodes)
    active = len(cluster.nodes_in(*ACTIVE_NODE_STATES))
    if quota_free_nodes is not None and wanted > active:
        wanted = min(wanted, active + max(quota_free_nodes, 0))
    busy = len(cluster.nodes_in(NodeState.RUNNING))
    return max(wanted, busy)


def idle_deadline(cluster: Cluster, node: Node) -> datetime | None:
    if node.state is not NodeState.IDLE or node.idle_since is None:
        return None
    return node.idle_since + cluster.spec.idle_timeout


def idle_nodes_to_release(cluster: Cluster, now: datetime, target: int,
                          occupied: frozenset[str] = frozenset()) -> list[Node]:
    """Idle nodes past the idle timeout, oldest idle first, never taking the cluster below target or min_nodes,
    never a node still running something."""
    active = len(cluster.nodes_in(*ACTIVE_NODE_STATES))
    spare = active - max(target, cluster.spec.min_nodes)
    expired = sorted(
        (n for n in cluster.nodes_in(NodeState.IDLE)
         if n.node_id not in occupied and (d := idle_deadline(cluster, n)) is not None and d <= now),
        key=lambda n: (n.idle_since, n.node_id))
    return expired[:max(spare, 0)]


def queued_in_order(cluster: Cluster) -> list[JobEntry]:
    return sorted((j for j in cluster.jobs if j.phase is JobPhase.QUEUED), key=lambda j: (j.submitted_at, j.job_id))


def gang_placements(cluster: Cluster, occupied: frozenset[str] = frozenset()) -> list[tuple[JobEntry, list[Node]]]:
    """First-come first-served, all nodes of a job or none. The queue head blocks later jobs so that a
    multi-node job is never starved by a stream of small ones. ``occupied`` nodes (still running a run that is
    being stopped) are not offered."""
    idle = sorted((n for n in cluster.nodes_in(NodeState.IDLE) if n.node_id not in occupied), key=lambda n: n.node_id)
    placements: list[tuple[JobEntry, list[Node]]] = []
    for entry in queued_in_order(cluster):
        if entry.node_count > len(idle):
            break
        placements.append((entry, idle[:entry.node_count]))
        idle = idle[entry.node_count:]
    return placements
