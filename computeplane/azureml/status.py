"""The v1 status objects of an AmlCompute cluster, built from the API's cluster body."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass
class ScaleSettings:
    minimum_node_count: int
    maximum_node_count: int
    idle_seconds_before_scaledown: int

    def serialize(self) -> dict[str, Any]:
        return {"minNodeCount": self.minimum_node_count, "maxNodeCount": self.maximum_node_count,
                "nodeIdleTimeBeforeScaleDown": f"PT{self.idle_seconds_before_scaledown}S"}

    @staticmethod
    def of(cluster: dict[str, Any]) -> ScaleSettings:
        scale = cluster.get("scale_settings") or {}
        return ScaleSettings(int(scale.get("min_nodes") or 0), int(scale.get("max_nodes") or 0),
                             int(scale.get("idle_seconds_before_scaledown") or 0))


@dataclass
class AmlComputeNodeStateCounts:
    idle_node_count: int
    running_node_count: int
    preparing_node_count: int
    unusable_node_count: int
    leaving_node_count: int
    preempted_node_count: int

    def serialize(self) -> dict[str, int]:
        return {"idleNodeCount": self.idle_node_count, "runningNodeCount": self.running_node_count,
                "preparingNodeCount": self.preparing_node_count, "unusableNodeCount": self.unusable_node_count,
                "leavingNodeCount": self.leaving_node_count, "preemptedNodeCount": self.preempted_node_count}

    @staticmethod
    def of(cluster: dict[str, Any]) -> AmlComputeNodeStateCounts:
        counts = cluster.get("node_state_counts") or {}
        return AmlComputeNodeStateCounts(
            idle_node_count=int(counts.get("idle", 0)), running_node_count=int(counts.get("running", 0)),
            preparing_node_count=int(counts.get("preparing", 0)), unusable_node_count=int(counts.get("unusable", 0)),
            leaving_node_count=int(counts.get("leaving", 0)), preempted_node_count=int(counts.get("preempted", 0)))


@dataclass
class AmlComputeStatus:
    """What ``AmlCompute.get_status()`` returns (v1 attribute names)."""

    allocation_state: str
    allocation_state_transition_time: datetime | None
    creation_time: datetime | None
    current_node_count: int
    errors: list[dict[str, Any]] | None
    modified_time: datetime | None
    node_state_counts: AmlComputeNodeStateCounts
    provisioning_state: str
    provisioning_state_transition_time: datetime | None
    scale_settings: ScaleSettings
    target_node_count: int
    vm_priority: str
    vm_size: str

    def serialize(self) -> dict[str, Any]:
        return {"currentNodeCount": self.current_node_count, "targetNodeCount": self.target_node_count,
                "nodeStateCounts": self.node_state_counts.serialize(), "allocationState": self.allocation_state,
                "allocationStateTransitionTime": _iso(self.allocation_state_transition_time),
                "errors": self.errors, "creationTime": _iso(self.creation_time),
                "modifiedTime": _iso(self.modified_time), "provisioningState": self.provisioning_state,
                "provisioningStateTransitionTime": _iso(self.provisioning_state_transition_time),
                "scaleSettings": self.scale_settings.serialize(), "vmPriority": self.vm_priority,
                "vmSize": self.vm_size}

    @staticmethod
    def of(cluster: dict[str, Any]) -> AmlComputeStatus:
        return AmlComputeStatus(
            allocation_state=str(cluster.get("allocation_state")),
            allocation_state_transition_time=parse_time(cluster.get("allocation_state_transition_time")),
            creation_time=parse_time(cluster.get("created_at")),
            current_node_count=int(cluster.get("current_node_count") or 0),
            errors=list(cluster.get("errors") or []) or None,
            modified_time=parse_time(cluster.get("modified_at")),
            node_state_counts=AmlComputeNodeStateCounts.of(cluster),
            provisioning_state=str(cluster.get("provisioning_state")),
            provisioning_state_transition_time=parse_time(cluster.get("provisioning_state_transition_time")),
            scale_settings=ScaleSettings.of(cluster),
            target_node_count=int(cluster.get("target_node_count") or 0),
            vm_priority=str(cluster.get("vm_priority")), vm_size=str(cluster.get("vm_size")))


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
