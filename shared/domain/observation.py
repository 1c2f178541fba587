"""What the node provider reports about nodes and runs: the observed side of reconcile."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class NodeStatus(StrEnum):
    BOOTING = "booting"
    READY = "ready"
    PREEMPTED = "preempted"
    FAILED = "failed"
    GONE = "gone"  # the provider does not know it (never created, released, or lost)


class RunStatus(StrEnum):
    NOT_STARTED = "not_started"
    RUNNING = "running"
    FINISHED = "finished"
    LOST = "lost"  # started, but its processes are gone without an exit code


@dataclass(frozen=True)
class ObservedNode:
    status: NodeStatus
    reason: str | None = None
    private_ip: str | None = None


@dataclass(frozen=True)
class ObservedRun:
    status: RunStatus
    exit_code: int | None = None


class LockLevel(StrEnum):
    CAN_NOT_DELETE = "CanNotDelete"
    READ_ONLY = "ReadOnly"


@dataclass(frozen=True)
class ResourceLock:
    """An Azure resource lock on the resource group that holds the cluster's nodes."""

    name: str
    level: LockLevel
    scope: str

    @property
    def blocks_scale_up(self) -> bool:
        return self.level is LockLevel.READ_ONLY


@dataclass(frozen=True)
class ResizeError:
    """Why the cloud could not give the cluster the nodes asked for (a Batch pool's resize error). A quota error is
    reported as ``QuotaExceeded``, like ComputePlane's own quota errors."""

    code: str
    message: str
    is_quota: bool = False


@dataclass
class Observation:
    nodes: dict[str, ObservedNode] = field(default_factory=dict)
    runs: dict[tuple[str, int], ObservedRun] = field(default_factory=dict)
    lock: ResourceLock | None = None
    resize_error: ResizeError | None = None  # the latest resize of the cluster's nodes failed (cloud providers)
    # Runs still going on the cluster's nodes, with the nodes they occupy (level-triggered stopping).
    unfinished_runs: dict[tuple[str, int], frozenset[str]] = field(default_factory=dict)

    def node(self, node_id: str) -> ObservedNode:
        return self.nodes.get(node_id, ObservedNode(NodeStatus.GONE))

    def run(self, job_id: str, attempt: int) -> ObservedRun:
        return self.runs.get((job_id, attempt), ObservedRun(RunStatus.NOT_STARTED))
