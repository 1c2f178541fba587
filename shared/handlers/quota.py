"""Book a cluster's cores in its region's quota ledger around the cluster's own save: more cores before the
commit, fewer after it (why that order: ``shared.handlers.decision``). Workers racing on one cluster:

- a decrease is skipped when another decision booked cores for this cluster after ours read the ledger: lowering it
  then could undo a booking whose cluster save is still on its way;
- a decrease is only made by a decision that saved the cluster itself. A booking made before ours read the ledger
  carries the id we saw, so the id cannot tell whether its cluster save is done: the decision may have read the
  cluster before that save (a stale version), or the save may still be on its way. Our own conditional save proves
  the version we counted is the latest and makes any such pending save conflict (its decision then runs again and
  books anew). A decision that writes nothing proves neither, and must not lower the ledger.

Growing needs a booking of its own (a new booking id, so a decrease decided on an older version sees it and leaves
the number alone) unless the ledger still holds the cores under the booking the cluster's version names
(``Cluster.quota_booked``). A decision that gives cores back drops that name in the commit before its release, so:

- a growth decided on a version older than that commit loses its save (it decides again, and books);
- a growth decided on a later version books anew, which a release still on its way then leaves alone;
- a copy of the ledger kept from before the release cannot pass for the cover: the next booking has another id.

Most scale-ups follow a scale-down whose cores were left booked (below), and write no ledger at all.

A decision may start from the ledger as this process last read or wrote it (``RecentLedgers``) rather than read it:
every write is conditional on the etag of the copy it started from, so everything above holds with "read" meaning
"the copy started from"; a stale copy only fails its write (the copy is forgotten, the decision made again on a
fresh read). Quota holding a pool back on such a copy is the one decision that writes nothing to prove it: it is
made again on a fresh read before it is saved (``LedgerOnDemand.check_not_held_back_by_a_kept_copy``).

Cores are given back lazily while quota has room (``ClusterBookings.gives_back_now``): a decision that lowers a
cluster's nodes gives their cores back at once only when a limit they count against is less than half free, and
otherwise leaves the over-count for the timer's resync (the cluster's ``quota_settle_by``, within
``resync_interval``), or for the cluster's next booking. An over-count is the safe direction, and below half of
every limit it holds nobody back; the hot path saves the ledger's write on most releases.

See ``shared.domain.quota_ledger``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from shared.domain.cluster import Cluster
from shared.domain.errors import ConcurrencyConflict, DomainError
from shared.domain.quota import half_free
from shared.domain.quota_ledger import QuotaAllowance, QuotaCap, QuotaLedger, ledger_keys
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
    covered_by: str | None = None  # the booking that version names as covering its nodes (``Cluster.quota_booked``)

    @property
    def allowance(self) -> QuotaAllowance:
        return QuotaAllowance(limits=self.deps.quota_limits,
                              others=self.ledger.usage(excluding=self.cluster_keys or self.cluster_key),
                              vm_size=self.vm_size, priority=self.priority, region=self.ledger.region)

    def mark_increase(self, nodes: int) -> bool:
        """Set the increase on the ledger read (not saved); whether there was one. Growth within what the ledger
        holds is not booked when the cluster's version names the very booking that holds it: no give-back has been
        decided since that booking (it would have dropped the name in its commit), and the cluster's conditional
        save fails if one is decided meanwhile. A copy of the ledger kept from before a give-back fails the check
        too, as the give-back's next booking has another id."""
        vcpus = nodes * self.vm_size.vcpus
        covered = self.covered_by is not None and self.ledger.booking_of(self.cluster_key) == self.covered_by
        if vcpus > self.ledger.held_by(self.cluster_key) or (nodes > self.loaded_nodes and not covered):
            self.ledger.set_held(self.cluster_key, self.vm_size, self.priority,
                                 max(vcpus, self.ledger.held_by(self.cluster_key)), uuid.uuid4().hex)
            return True
        return False

    def over_counts(self, nodes: int) -> bool:
        """The ledger (as this decision read or booked it) holds more cores for the cluster than ``nodes`` need."""
        return nodes * self.vm_size.vcpus < self.ledger.held_by(self.cluster_key)

    def half_free(self) -> bool:
        """Half of every limit this pool counts against is free on the ledger at hand, over-counts included."""
        return half_free(self.deps.quota_limits, self.ledger.usage(), self.vm_size, self.priority, self.ledger.region)

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
        """Books what the cluster's nodes need beyond the ledger's cover, and names the bookings in the cluster."""
        marked = [b for p, b in self.pools.items() if b.mark_increase(_held(cluster, p))]
        if marked:
            first = next(iter(self.pools.values()))
            saved = _save(first.deps, first.ledger)  # a conflict re-runs the whole decision
            for booking in self.pools.values():
                booking.ledger = saved
            for booking in marked:
                cluster.quota_booked[booking.cluster_key] = saved.booking_of(booking.cluster_key) or ""

    def over_counts(self, cluster: Cluster) -> bool:
        return any(b.over_counts(_held(cluster, p)) for p, b in self.pools.items())

    def gives_back_now(self, cluster: Cluster, *, settling: bool) -> bool:
        """Whether the cores the ledger holds beyond the cluster's nodes are given back after this decision's
        commit: by the timer's resync (``settling``) always, otherwise only when a limit they count against is
        less than half free. With room to spare they wait for the cluster's ``quota_settle_by`` (a node's release
        then costs one write, the cluster's): nobody is near a limit that cores given back at once would help."""
        over = [b for p, b in self.pools.items() if b.over_counts(_held(cluster, p))]
        return bool(over) and (settling or not all(b.half_free() for b in over))

    def uncover(self, cluster: Cluster) -> None:
        """Before the commit of a decision that gives cores back: the bookings it lowers cover nothing any more."""
        for priority, booking in self.pools.items():
            if booking.over_counts(_held(cluster, priority)):
                cluster.quota_booked.pop(booking.cluster_key, None)

    def release_decrease(self, cluster: Cluster, *, saved: bool) -> None:
        """Lowered on the ledger this decision read, in one conditional write: when nobody wrote the ledger since,
        a fresh read would find the same bookings, so it is not made. Otherwise each entry is lowered afresh."""
        lowering = {p: b for p, b in self.pools.items() if saved and b.over_counts(_held(cluster, p))}
        if not lowering:
            return
        first = next(iter(lowering.values()))
        ledger = first.ledger.working_copy()
        for priority, booking in lowering.items():
            ledger.set_held(booking.cluster_key, booking.vm_size, priority,
                            _held(cluster, priority) * booking.vm_size.vcpus, ledger.booking_of(booking.cluster_key))
        try:
            _save(first.deps, ledger)
            return
        except ConcurrencyConflict:
            pass  # written since this decision read it: each entry is looked at again
        for priority, booking in lowering.items():
            booking.release_decrease(_held(cluster, priority), saved=saved)


def _held(cluster: Cluster, priority: str) -> int:
    return sum(1 for n in cluster.nodes if cluster.priority_of(n) == priority)


class LedgerOnDemand:
    """The quota reconcile asks about (a ``QuotaCap``), reading the region's ledger only when reconcile asks: when a
    pool wants more nodes. Most events change no node count and never touch the ledger (a read saved per event).

    Made before the event's change, it notes how many nodes each priority holds in the version loaded; ``settle``
    opens the bookings after reconcile when the ledger was read or a count changed since."""

    NO_CAP = 1 << 30  # no ledger entry to book against (a size outside the catalogue): reconcile is not capped

    def __init__(self, deps: Deps, cluster: Cluster, *, kept_copy: bool = True) -> None:
        self._deps, self._cluster, self._kept_copy = deps, cluster, kept_copy
        self.loaded = {p: _held(cluster, p) for p in ledger_keys(cluster)}
        self.covered = dict(cluster.quota_booked)
        self._opened = False
        self._bookings: ClusterBookings | None = None
        self._from_kept_copy = False  # the ledger came from ``RecentLedgers``, not from a read
        self.held_back = False  # quota held a pool back (``explain`` gave a reason)

    def bookings(self) -> ClusterBookings | None:
        if not self._opened:
            kept = self._deps.recent_ledgers.get(_region(self._deps, self._cluster)) if self._kept_copy else None
            self._bookings = open_bookings(self._deps, self._cluster, self.loaded, self.covered, start_from=kept)
            self._opened, self._from_kept_copy = True, kept is not None
        return self._bookings

    def check_not_held_back_by_a_kept_copy(self) -> None:
        """A decision that quota held back on the ledger this process kept is not saved: the copy may be stale
        (others gave cores back since), so ``ConcurrencyConflict`` makes the decision again on a fresh read."""
        if self.held_back and self._from_kept_copy:
            self._deps.recent_ledgers.forget(_region(self._deps, self._cluster))
            raise ConcurrencyConflict("quota held this decision back on a kept copy of the ledger: deciding again")

    def settle(self, cluster: Cluster, *, always: bool = False) -> ClusterBookings | None:
        """The bookings to write around the commit: None when the ledger was not read and no count changed (unless
        ``always``: the timer's resync reads it anyway, which heals an over-count a crash left behind)."""
        if always or self._opened or any(_held(cluster, p) != n for p, n in self.loaded.items()):
            return self.bookings()
        return None

    # --- QuotaCap ------------------------------------------------------------------------------------------------
    def for_priority(self, priority: str) -> QuotaCap:
        return _PoolOnDemand(self, priority)

    def extra_nodes(self, held_nodes: int) -> int:
        return self.for_priority(self._cluster.spec.vm_priority).extra_nodes(held_nodes)

    def explain(self, requested_nodes: int, held_nodes: int) -> str | None:
        return self.for_priority(self._cluster.spec.vm_priority).explain(requested_nodes, held_nodes)


@dataclass(frozen=True)
class _PoolOnDemand:
    ledger: LedgerOnDemand
    priority: str

    def _allowance(self) -> QuotaAllowance | None:
        bookings = self.ledger.bookings()
        return None if bookings is None else bookings.allowance.for_priority(self.priority)

    def for_priority(self, priority: str) -> QuotaCap:
        return _PoolOnDemand(self.ledger, priority)

    def extra_nodes(self, held_nodes: int) -> int:
        allowance = self._allowance()
        return LedgerOnDemand.NO_CAP if allowance is None else allowance.extra_nodes(held_nodes)

    def explain(self, requested_nodes: int, held_nodes: int) -> str | None:
        allowance = self._allowance()
        reason = None if allowance is None else allowance.explain(requested_nodes, held_nodes)
        self.ledger.held_back = self.ledger.held_back or reason is not None
        return reason


def open_booking(deps: Deps, cluster: Cluster, priority: str | None = None) -> QuotaBooking | None:
    """The booking of the cluster's nodes of ``priority`` (its own by default). None when the cluster neither holds
    nor wants nodes (nothing to book), or its size is not in the catalogue."""
    bookings = open_bookings(deps, cluster)
    return None if bookings is None else bookings.pools.get(priority or cluster.spec.vm_priority)


def open_bookings(deps: Deps, cluster: Cluster, loaded: dict[str, int] | None = None,
                  covered: dict[str, str] | None = None, *,
                  start_from: QuotaLedger | None = None) -> ClusterBookings | None:
    """Every priority's booking of the cluster, sharing one read of the region's ledger. ``loaded`` and
    ``covered``: the nodes each priority held, and the bookings named as covering them, in the version the decision
    started from (default: as the cluster is now); ``start_from``: a copy of the ledger to use instead of reading it
    (``RecentLedgers``)."""
    if not (cluster.nodes or cluster.jobs or cluster.spec.min_nodes or any((loaded or {}).values())
            or cluster.quota_settle_by):
        return None  # holds nothing, wants nothing (nor held anything when the decision began, nor left cores booked)
    region = _region(deps, cluster)
    try:
        vm_size = load_catalogue().get(cluster.spec.vm_size, region)
    except DomainError:
        return None
    ledger = start_from or _read(deps, region)
    keys = ledger_keys(cluster)
    covered = cluster.quota_booked if covered is None else covered
    return ClusterBookings({p: QuotaBooking(deps, key, vm_size, p, ledger,
                                            _held(cluster, p) if loaded is None else loaded.get(p, 0),
                                            tuple(keys.values()), covered.get(key))
                            for p, key in keys.items()})


def _region(deps: Deps, cluster: Cluster) -> str:
    return normalize_location(cluster.spec.location or deps.workspace_location)


def _read(deps: Deps, region: str) -> QuotaLedger:
    ledger = deps.store.get_quota_ledger(region)
    if ledger is None:
        return QuotaLedger(region=region)
    deps.recent_ledgers.keep(ledger)
    return ledger


def _save(deps: Deps, ledger: QuotaLedger) -> QuotaLedger:
    """A conditional save; what this process keeps of the region's ledger follows it (forgotten on a conflict, so
    that the decision made again reads it afresh)."""
    try:
        saved = deps.store.save_quota_ledger(ledger)
    except ConcurrencyConflict:
        deps.recent_ledgers.forget(ledger.region)
        raise
    deps.recent_ledgers.keep(saved)
    return saved


@retry_on_conflict
def _lower_held(deps: Deps, region: str, key: str, vm_size: VmSize, priority: str, vcpus: int,
                booking_seen: str | None) -> None:
    ledger = _read(deps, region)
    if ledger.booking_of(key) != booking_seen:
        return  # booked again since we looked: that decision's cluster save owns the number now
    if vcpus < ledger.held_by(key):
        ledger.set_held(key, vm_size, priority, vcpus, booking_seen)
        _save(deps, ledger)
