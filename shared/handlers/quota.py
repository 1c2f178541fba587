"""Book a cluster's cores in its region's quota ledger around the cluster's own save: more cores before the
commit, fewer after it (why that order: ``shared.handlers.decision``). Workers racing on one cluster:

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
from shared.domain.quota_ledger import QuotaAllowance, QuotaLedger, ledger_keys
from shared.domain.vm_sizes import VmSize, load_catalogue, normalize_location
from shared.handlers.deps import Deps
from shared.handlers.retry import retry_on_conflict


@dataclass
class QuotaBooking:
    """One entry of the ledger: the cluster's nodes of one priority (a low-priority cluster's fallback nodes are
    booked apart, against the dedicated limits)."""

    deps: Deps
    cluster_key: str
    vm_size: VmSize
    priority: str
    ledger: QuotaLedger
    loaded_nodes: int  # nodes of this priority in the cluster version this decision started from
    cluster_keys: tuple[str, ...] = ()  # every entry of the cluster: none of them counts as "others"

    @property
    def allowance(self) -> QuotaAllowance:
        return QuotaAllowance(limits=self.deps.quota_limits,
                              others=self.ledger.usage(excluding=self.cluster_keys or self.cluster_key),
                              vm_size=self.vm_size, priority=self.priority, region=self.ledger.region)

    def book_increase(self, nodes: int) -> None:
        """Growing from the version we read is always booked anew (even when the ledger still covers it): a decrease
        decided on an older version must then see that someone booked after it, and leave the number alone."""
        if self.mark_increase(nodes):
            self.ledger = self.deps.store.save_quota_ledger(self.ledger)  # a conflict re-runs the whole decision

    def mark_increase(self, nodes: int) -> bool:
        """Set the increase on the ledger read (not saved); whether there was one."""
        vcpus = nodes * self.vm_size.vcpus
        if vcpus > self.ledger.held_by(self.cluster_key) or nodes > self.loaded_nodes:
            self.ledger.set_held(self.cluster_key, self.vm_size, self.priority,
                                 max(vcpus, self.ledger.held_by(self.cluster_key)), uuid.uuid4().hex)
            return True
        return False

    def over_counts(self, nodes: int) -> bool:
        """The ledger (as this decision read or booked it) holds more cores for the cluster than ``nodes`` need."""
        return nodes * self.vm_size.vcpus < self.ledger.held_by(self.cluster_key)

    def release_decrease(self, nodes: int, *, saved: bool) -> None:
        """Call after the cluster's save (or delete); ``saved`` says that this decision wrote the cluster, the only
        proof that ``nodes`` is the latest count (see the module docstring)."""
        if saved and self.over_counts(nodes):
            _lower_held(self.deps, self.ledger.region, self.cluster_key, self.vm_size, self.priority,
                        nodes * self.vm_size.vcpus, self.ledger.booking_of(self.cluster_key))


@dataclass
class ClusterBookings:
    """The bookings of one cluster's priorities, on one ledger document read once and written at most once."""

    pools: dict[str, QuotaBooking]

    @property
    def allowance(self) -> QuotaAllowance:
        return next(iter(self.pools.values())).allowance

    def book_increase(self, cluster: Cluster) -> None:
        marked = [b.mark_increase(_held(cluster, p)) for p, b in self.pools.items()]
        if any(marked):
            first = next(iter(self.pools.values()))
            saved = first.deps.store.save_quota_ledger(first.ledger)  # a conflict re-runs the whole decision
            for booking in self.pools.values():
                booking.ledger = saved

    def over_counts(self, cluster: Cluster) -> bool:
        return any(b.over_counts(_held(cluster, p)) for p, b in self.pools.items())

    def release_decrease(self, cluster: Cluster, *, saved: bool) -> None:
        for priority, booking in self.pools.items():
            booking.release_decrease(_held(cluster, priority), saved=saved)


def _held(cluster: Cluster, priority: str) -> int:
    return sum(1 for n in cluster.nodes if cluster.priority_of(n) == priority)


def open_booking(deps: Deps, cluster: Cluster, priority: str | None = None) -> QuotaBooking | None:
    """The booking of the cluster's nodes of ``priority`` (its own by default). None when the cluster neither holds
    nor wants nodes (nothing to book), or its size is not in the catalogue."""
    bookings = open_bookings(deps, cluster)
    return None if bookings is None else bookings.pools.get(priority or cluster.spec.vm_priority)


def open_bookings(deps: Deps, cluster: Cluster) -> ClusterBookings | None:
    """Every priority's booking of the cluster, sharing one read of the region's ledger."""
    if not (cluster.nodes or cluster.jobs or cluster.spec.min_nodes):
        return None
    region = normalize_location(cluster.spec.location or deps.workspace_location)
    try:
        vm_size = load_catalogue().get(cluster.spec.vm_size, region)
    except DomainError:
        return None
    ledger = deps.store.get_quota_ledger(region) or QuotaLedger(region=region)
    keys = ledger_keys(cluster)
    return ClusterBookings({p: QuotaBooking(deps, key, vm_size, p, ledger, _held(cluster, p), tuple(keys.values()))
                            for p, key in keys.items()})


@retry_on_conflict
def _lower_held(deps: Deps, region: str, key: str, vm_size: VmSize, priority: str, vcpus: int,
                booking_seen: str | None) -> None:
    ledger = deps.store.get_quota_ledger(region) or QuotaLedger(region=region)
    if ledger.booking_of(key) != booking_seen:
        return  # booked again since we looked: that decision's cluster save owns the number now
    if vcpus < ledger.held_by(key):
        ledger.set_held(key, vm_size, priority, vcpus, booking_seen)
        deps.store.save_quota_ledger(ledger)
