"""The quota ledger: one document per region that says how many vCPUs each cluster holds.

Every scale-up the cluster's own booking does not already cover writes the ledger (conditionally) BEFORE the
cluster is saved, so two clusters scaling up at once cannot both take the last cores: one of the writes loses the
race and decides again with fresh numbers. A crash in between leaves the ledger over-counting one cluster, which is
the safe direction, until a later decision that saves the cluster and reads the ledger (a node count changes, or the
timer resyncs it) gives the cores back (only such a decision may: see ``shared.handlers.quota``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Protocol

from pydantic import BaseModel, Field

from shared.domain.cluster import Cluster
from shared.domain.quota import QuotaLimits, QuotaUsage, free_nodes, scale_up_allowed
from shared.domain.vm_sizes import VmSize


class Allocation(BaseModel):
    family: str
    priority: str
    vcpus: int
    booking: str | None = None  # id of the decision that last raised it: a decrease never undoes a newer booking


class QuotaLedger(BaseModel):
    region: str
    allocations: dict[str, Allocation] = Field(default_factory=dict)
    etag: str | None = Field(default=None, exclude=True)

    def usage(self, excluding: str | Collection[str] | None = None) -> QuotaUsage:
        left_out = {excluding} if isinstance(excluding, str) else set(excluding or ())
        totals: dict[tuple[str, str, str], int] = {}
        for key, a in self.allocations.items():
            if key not in left_out:
                totals[(self.region, a.family, a.priority)] = totals.get((self.region, a.family, a.priority), 0) \
                    + a.vcpus
        return QuotaUsage.of(totals)

    def held_by(self, key: str) -> int:
        allocation = self.allocations.get(key)
        return allocation.vcpus if allocation else 0

    def booking_of(self, key: str) -> str | None:
        allocation = self.allocations.get(key)
        return allocation.booking if allocation else None

    def working_copy(self) -> QuotaLedger:
        """A copy ``set_held`` may change without changing this one (it replaces entries, never edits one)."""
        return self.model_copy(update={"allocations": dict(self.allocations)})

    def set_held(self, key: str, vm_size: VmSize, priority: str, vcpus: int, booking: str | None) -> None:
        if vcpus <= 0:
            self.allocations.pop(key, None)
        else:
            self.allocations[key] = Allocation(family=vm_size.family, priority=priority, vcpus=vcpus,
                                               booking=booking)


def ledger_key(cluster: Cluster, priority: str | None = None) -> str:
    """The cluster's entry for its own priority; a low-priority cluster's fallback nodes have one of their own
    (``#dedicated``), so each priority is counted against its own limit."""
    base = f"{cluster.workspace}/{cluster.name}"
    return base if priority in (None, cluster.spec.vm_priority) else f"{base}#{priority}"


def ledger_keys(cluster: Cluster) -> dict[str, str]:
    """Every entry a cluster may hold, by priority: its own, and dedicated for a low-priority cluster."""
    priorities = [cluster.spec.vm_priority, *(["dedicated"] if cluster.spec.vm_priority != "dedicated" else [])]
    return {p: ledger_key(cluster, p) for p in priorities}


class QuotaCap(Protocol):
    """What reconcile asks of quota: how many more nodes fit, and how to say it when they do not."""

    def extra_nodes(self, held_nodes: int) -> int: ...
    def explain(self, requested_nodes: int, held_nodes: int) -> str | None: ...
    def for_priority(self, priority: str) -> QuotaCap:
        """The same cap for the cluster's nodes of ``priority`` (each priority against its own limit)."""
        ...


@dataclass(frozen=True)
class QuotaAllowance:
    """How many more nodes this cluster may take now, and what to tell the user when that is not enough."""

    limits: QuotaLimits
    others: QuotaUsage
    vm_size: VmSize
    priority: str
    region: str

    def extra_nodes(self, held_nodes: int) -> int:
        return max(free_nodes(self.limits, self.others, self.vm_size, self.priority, self.region) - held_nodes, 0)

    def for_priority(self, priority: str) -> QuotaAllowance:
        return replace(self, priority=priority)

    def explain(self, requested_nodes: int, held_nodes: int) -> str | None:
        usage = self.others
        held = held_nodes * self.vm_size.vcpus
        usage = usage.with_added(self.region, self.vm_size.family, self.priority, held) if held else usage
        _, message = scale_up_allowed(self.limits, usage, self.vm_size, self.priority, self.region, requested_nodes)
        return message
