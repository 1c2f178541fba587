"""Book a cluster's cores in its region's quota ledger around the cluster's own save.

More cores: the ledger is written first (conditional), so a lost race means deciding again with fresh numbers and
the regional limit is never exceeded. Fewer cores: the ledger is written after the cluster, so a crash in between
only over-counts (until the cluster's next saved decision). Workers racing on one cluster:

- a decrease is skipped when another decision booked cores for this cluster after ours read the ledger: lowering it
  then could undo a booking whose cluster save is still on its way;
- a decrease is only made by a decision that saved the cluster itself. A booking made before ours read the ledger
  carries the id we saw, so the id cannot tell whether its cluster save is done: the decision may have read the
  cluster before that save (a stale version), or the save may still be on its way. Our own conditional save proves
  the version we counted is the latest and makes any such pending save conflict (its decision then runs again and
  books anew). A decision that writes nothing proves neither, and must not lower the ledger.

See ``shared.domain.quota_ledger``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from shared.domain.cluster import Cluster
from shared.domain.errors import DomainError
from shared.domain.quota_ledger import QuotaAllowance, QuotaLedger, ledger_key
from shared.domain.vm_sizes import VmSize, load_catalogue, normalize_location
from shared.handlers.deps import Deps
from shared.handlers.retry import retry_on_conflict


@dataclass
class QuotaBooking:
    deps: Deps
    cluster_key: str
    vm_size: VmSize
    priority: str
    ledger: QuotaLedger
    loaded_nodes: int  # nodes in the cluster version this decision started from

    @property
    def allowance(self) -> QuotaAllowance:
        return QuotaAllowance(limits=self.deps.quota_limits, others=self.ledger.usage(excluding=self.cluster_key),
                              vm_size=self.vm_size, priority=self.priority, region=self.ledger.region)

    def book_increase(self, nodes: int) -> None:
        """Growing from the version we read is always booked anew (even when the ledger still covers it): a decrease
        decided on an older version must then see that someone booked after it, and leave the number alone."""
        vcpus = nodes * self.vm_size.vcpus
        if vcpus > self.ledger.held_by(self.cluster_key) or nodes > self.loaded_nodes:
            self.ledger.set_held(self.cluster_key, self.vm_size, self.priority,
                                 max(vcpus, self.ledger.held_by(self.cluster_key)), uuid.uuid4().hex)
            self.ledger = self.deps.store.save_quota_ledger(self.ledger)  # a conflict re-runs the whole decision

    def over_counts(self, nodes: int) -> bool:
        """The ledger (as this decision read or booked it) holds more cores for the cluster than ``nodes`` need."""
        return nodes * self.vm_size.vcpus < self.ledger.held_by(self.cluster_key)

    def release_decrease(self, nodes: int, *, saved: bool) -> None:
        """Call after the cluster's save (or delete); ``saved`` says that this decision wrote the cluster, the only
        proof that ``nodes`` is the latest count (see the module docstring)."""
        if saved and self.over_counts(nodes):
            _lower_held(self.deps, self.ledger.region, self.cluster_key, self.vm_size, self.priority,
                        nodes * self.vm_size.vcpus, self.ledger.booking_of(self.cluster_key))


def open_booking(deps: Deps, cluster: Cluster) -> QuotaBooking | None:
    """None when the cluster neither holds nor wants nodes (nothing to book), or its size is not in the catalogue."""
    if not (cluster.nodes or cluster.jobs or cluster.spec.min_nodes):
        return None
    region = normalize_location(cluster.spec.location or deps.workspace_location)
    try:
        vm_size = load_catalogue().get(cluster.spec.vm_size, region)
    except DomainError:
        return None
    ledger = deps.store.get_quota_ledger(region) or QuotaLedger(region=region)
    return QuotaBooking(deps, ledger_key(cluster), vm_size, cluster.spec.vm_priority, ledger, len(cluster.nodes))


@retry_on_conflict
def _lower_held(deps: Deps, region: str, key: str, vm_size: VmSize, priority: str, vcpus: int,
                booking_seen: str | None) -> None:
    ledger = deps.store.get_quota_ledger(region) or QuotaLedger(region=region)
    if ledger.booking_of(key) != booking_seen:
        return  # booked again since we looked: that decision's cluster save owns the number now
    if vcpus < ledger.held_by(key):
        ledger.set_held(key, vm_size, priority, vcpus, booking_seen)
        deps.store.save_quota_ledger(ledger)
