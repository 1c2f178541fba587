"""Autoscale and placement policies: pure functions of (cluster, now). The handlers and the simulator call these.

A low-priority cluster with a fallback holds two pools of nodes, its own priority and dedicated; each function takes
the pool (``priority``), or the whole cluster when it is None. ``min_nodes`` is of the cluster's own priority;
``max_nodes`` bounds both pools together.
"""

from __future__ import annotations

from datetime import datetime

from shared.domain.cluster import Cluster, JobEntry, JobPhase, Node, NodeState
from shared.domain.low_priority import Priority

ACTIVE_NODE_STATES = (NodeState.PREPARING, NodeState.IDLE, NodeState.RUNNING)


def _jobs_of(cluster: Cluster, priority: Priority | None) -> list[JobEntry]:
    return [j for j in cluster.jobs if priority is None or cluster.priority_for(j) == priority]


def _min_nodes(cluster: Cluster, priority: Priority | None) -> int:
    return cluster.spec.min_nodes if priority in (None, cluster.spec.vm_priority) else 0


def demand(cluster: Cluster, priority: Priority | None = None) -> int:
    """Nodes wanted by queued and running jobs (a multi-node job wants all its nodes at once)."""
    return sum(j.node_count for j in _jobs_of(cluster, priority))


def scale_target(cluster: Cluster, quota_free_nodes: int | None = None, priority: Priority | None = None) -> int:
    """clamp(max(demand, min_nodes), 0, max_nodes), capped by free quota, never below the busy nodes. For one pool,
    max_nodes less the nodes the other pool holds active."""
    spec = cluster.spec
    others = 0 if priority is None else len(
        [n for n in cluster.nodes_in(*ACTIVE_NODE_STATES) if cluster.priority_of(n) != priority])
    wanted = min(max(demand(cluster, priority), _min_nodes(cluster, priority)), max(spec.max_nodes - others, 0))
    active = len(cluster.nodes_in(*ACTIVE_NODE_STATES, priority=priority))
    if quota_free_nodes is not None and wanted > active:
        wanted = min(wanted, active + max(quota_free_nodes, 0))
    busy = len(cluster.nodes_in(NodeState.RUNNING, priority=priority))
    return max(wanted, busy)


def idle_deadline(cluster: Cluster, node: Node) -> datetime | None:
    if node.state is not NodeState.IDLE or node.idle_since is None:
        return None
    return node.idle_since + cluster.spec.idle_timeout


def idle_nodes_to_release(cluster: Cluster, now: datetime, target: int,
                          occupied: frozenset[str] = frozenset(), priority: Priority | None = None) -> list[Node]:
    """Idle nodes past the idle timeout, oldest idle first, never taking the cluster below target or min_nodes,
    never a node still running something."""
    active = len(cluster.nodes_in(*ACTIVE_NODE_STATES, priority=priority))
    spare = active - max(target, _min_nodes(cluster, priority))
    expired = sorted(
        (n for n in cluster.nodes_in(NodeState.IDLE, priority=priority)
         if n.node_id not in occupied and (d := idle_deadline(cluster, n)) is not None and d <= now),
        key=lambda n: (n.idle_since, n.node_id))
    return expired[:max(spare, 0)]


def queued_in_order(cluster: Cluster, priority: Priority | None = None) -> list[JobEntry]:
    return sorted((j for j in _jobs_of(cluster, priority) if j.phase is JobPhase.QUEUED),
                  key=lambda j: (j.submitted_at, j.job_id))


def gang_placements(cluster: Cluster, occupied: frozenset[str] = frozenset()) -> list[tuple[JobEntry, list[Node]]]:
    """First-come first-served, all nodes of a job or none. The queue head blocks later jobs so that a
    multi-node job is never starved by a stream of small ones. ``occupied`` nodes (still running a run that is
    being stopped) are not offered. Each pool has its own queue: a job runs on nodes of its priority."""
    placements: list[tuple[JobEntry, list[Node]]] = []
    for priority in cluster.priorities():
        idle = sorted((n for n in cluster.nodes_in(NodeState.IDLE, priority=priority) if n.node_id not in occupied),
                      key=lambda n: n.node_id)
        for entry in queued_in_order(cluster, priority):
            if entry.node_count > len(idle):
                break
            placements.append((entry, idle[:entry.node_count]))
            idle = idle[entry.node_count:]
    return placements
