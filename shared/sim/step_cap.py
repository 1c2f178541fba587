"""How many nodes one reconcile may add: the quota (the domain's ``QuotaAllowance``) and the policy's allowance.

It is what reconcile takes as its quota cap (``extra_nodes`` / ``explain``). Only a binding quota explains itself (and
so shows as ``QuotaExceeded`` on the cluster); a policy holding back a scale-up (a scan not due yet) says nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.domain.quota import QuotaLimits, QuotaUsage
from shared.domain.quota_ledger import QuotaAllowance
from shared.domain.vm_sizes import VmSize


@dataclass(frozen=True)
class StepCap:
    quota: QuotaAllowance | None
    allowance: int | None  # more nodes the policy lets reconcile add now; None: no limit of its own

    def extra_nodes(self, held_nodes: int) -> int:
        limits = [self.allowance] if self.allowance is not None else []
        if self.quota is not None:
            limits.append(self.quota.extra_nodes(held_nodes))
        return max(min(limits), 0) if limits else 1 << 30

    def for_priority(self, priority: str) -> StepCap:
        return StepCap(None if self.quota is None else self.quota.for_priority(priority), self.allowance)

    def explain(self, requested_nodes: int, held_nodes: int) -> str | None:
        if self.quota is None:
            return None
        if self.allowance is not None and self.allowance < self.quota.extra_nodes(held_nodes):
            return None
        return self.quota.explain(requested_nodes, held_nodes)


def vcpu_quota(vcpus: int, vm: VmSize, priority: str, region: str) -> QuotaAllowance:
    """One limit of ``vcpus`` for this cluster's family, the region and low priority alike (no other cluster)."""
    limits = QuotaLimits(total_regional_dedicated_vcpus=vcpus, low_priority_vcpus=vcpus, family_dedicated_vcpus={},
                         default_family_dedicated_vcpus=vcpus)
    return QuotaAllowance(limits=limits, others=QuotaUsage(), vm_size=vm, priority=priority, region=region)


def step_cap(quota: QuotaAllowance | None, allowance: int | None) -> StepCap | None:
    return None if quota is None and allowance is None else StepCap(quota, allowance)
