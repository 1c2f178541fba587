"""The interface every simulated scaling policy offers, and the policies that are only an idle timeout.

At each step the simulator asks the policy for a ``StepPlan`` (the cluster's idle timeout for this step and how many
nodes ``reconcile`` may add), runs the real ``reconcile``, then lets the policy add or release nodes of its own
(``after_reconcile``) and say when it wants to be woken (``wake_at``). ComputePlane and the peers that differ from it
only by their idle timeout (AmlCompute v1/v2, SkyPilot autostop) leave everything to ``reconcile``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.domain.actions import Action, ProvisionNode, ReleaseNode
from shared.domain.autoscale import ACTIVE_NODE_STATES
from shared.domain.cluster import Cluster, Node, NodeState
from shared.sim.recovery import GIVE_UP_AFTER_RETRIES, RECOVER_FOREVER, PreemptionRecovery, computeplane_fallback

NEVER_SECONDS = 10 * 365 * 86400  # an idle timeout that never fires within a simulation: the policy releases nodes


@dataclass(frozen=True)
class StepPlan:
    idle_seconds: int  # the cluster's idle_seconds_before_scaledown for this reconcile
    scale_up_allowance: int | None  # nodes reconcile may add now (passed as quota_free_nodes); None: as many as needed


class ScalingPolicy:
    """Base class: reconcile decides everything with a fixed idle timeout. Subclasses override the hooks."""

    label: str = "policy"
    short_label: str = "policy"  # a table column heading
    idle_seconds: int = 1800
    recovery: PreemptionRecovery = GIVE_UP_AFTER_RETRIES  # what happens to a preempted job

    def cache_key(self) -> tuple[object, ...]:
        """Two policies with the same key make the same decisions (so one simulation serves both)."""
        return (type(self).__name__, self.idle_seconds, self.recovery.cache_key())

    def plan(self, cluster: Cluster, now: float) -> StepPlan:
        return StepPlan(self.idle_seconds, None)

    def after_reconcile(self, cluster: Cluster, now: float, now_dt: datetime, decided: list[Action]) -> list[Action]:
        return []

    def wake_at(self, cluster: Cluster, now: float) -> float | None:
        return None

    def on_arrival(self, now: float, node_count: int) -> None:
        return None


class IdleTimeoutPolicy(ScalingPolicy):
    """ComputePlane's reconcile as it is: scale up at once, release nodes idle for ``idle_seconds``."""

    def __init__(self, label: str, idle_seconds: int, short_label: str | None = None,
                 recovery: PreemptionRecovery = GIVE_UP_AFTER_RETRIES) -> None:
        self.label = label
        self.short_label = short_label or label
        self.idle_seconds = idle_seconds
        self.recovery = recovery


def computeplane(idle_seconds: int = 1800, recovery: PreemptionRecovery | None = None,
                 short_label: str = "ComputePlane") -> IdleTimeoutPolicy:
    """ComputePlane with the cluster's idle_seconds_before_scaledown (1800 s is ClusterSpec's default); on low
    priority with the fallback to dedicated nodes enabled (its defaults) unless ``recovery`` says otherwise."""
    chosen = recovery or computeplane_fallback()
    return IdleTimeoutPolicy(f"ComputePlane (idle {idle_seconds} s), on low priority: {chosen.label}", idle_seconds,
                             short_label, chosen)


def amlcompute_v1() -> IdleTimeoutPolicy:
    return IdleTimeoutPolicy("AmlCompute v1 default (idle 1800 s)", 1800, "AML v1")


def amlcompute_v2() -> IdleTimeoutPolicy:
    return IdleTimeoutPolicy("AmlCompute v2 default (idle 120 s)", 120, "AML v2")


def skypilot_autostop() -> IdleTimeoutPolicy:
    """``sky launch --idle-minutes-to-autostop 5`` with a one-node cluster per job slot: a node idle 5 min stops;
    a managed job recovers from preemption on spot capacity without limit."""
    return IdleTimeoutPolicy("SkyPilot autostop (idle 300 s), spot recovery without limit", 300, "SkyPilot",
                             RECOVER_FOREVER)


def fixed_timeout(idle_seconds: int) -> IdleTimeoutPolicy:
    return IdleTimeoutPolicy(f"fixed idle {idle_seconds} s", idle_seconds, f"idle {idle_seconds} s")


# --- helpers for policies that add or release nodes themselves ---------------------------------------------------
def active_nodes(cluster: Cluster) -> list[Node]:
    return cluster.nodes_in(*ACTIVE_NODE_STATES)


def spare_node_count(cluster: Cluster) -> int:
    """Nodes beyond what queued and running jobs need (reconcile stored that need as ``target_node_count``)."""
    return len(active_nodes(cluster)) - max(cluster.target_node_count, cluster.spec.min_nodes)


def add_nodes(cluster: Cluster, count: int, now_dt: datetime) -> list[Action]:
    """Ask for ``count`` more nodes exactly as reconcile's scale-up does (a Preparing node, then ProvisionNode)."""
    room = cluster.spec.max_nodes - len(active_nodes(cluster))
    actions: list[Action] = []
    for _ in range(max(min(count, room), 0)):
        node = Node(node_id=cluster.new_node_id(), state=NodeState.PREPARING, requested_at=now_dt)
        cluster.nodes.append(node)
        actions.append(ProvisionNode(node.node_id))
    return actions


def release_idle_nodes(cluster: Cluster, count: int, idle_before: datetime | None = None) -> list[Action]:
    """Release up to ``count`` idle nodes, oldest idle first, optionally only those idle since ``idle_before``."""
    idle = sorted((n for n in cluster.nodes_in(NodeState.IDLE)
                   if n.idle_since is not None and (idle_before is None or n.idle_since <= idle_before)),
                  key=lambda n: (n.idle_since, n.node_id))
    actions: list[Action] = []
    for node in idle[:max(count, 0)]:
        node.state = NodeState.LEAVING
        actions.append(ReleaseNode(node.node_id))
    return actions
