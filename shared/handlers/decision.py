"""One decision about a cluster, saved: the transaction order of every reconcile, named and documented here once.

A decision runs in four phases. Only the commit makes it count; each write is conditional (etag/version), and a
lost race (``ConcurrencyConflict``) runs the whole decision again on fresh state (``retry_on_conflict``).

1. **Decide** (nothing written): read the cluster, apply the event's change once per event id, reconcile it
   against the provider's observation and now. The region's quota ledger is looked at only when reconcile wants more
   nodes, or a node count changed, or the timer's resync asks (``LedgerOnDemand``): most events touch no ledger.
   It starts from the copy this process kept (``RecentLedgers``; the resync reads it afresh): its writes are
   conditional on that copy's etag, and a decision quota held back on it is made again on a fresh read.
2. **Before the commit**, what the cluster's save would otherwise make unsafe: more cores are booked in the quota
   ledger first (unless the booking the cluster names still holds them, ``shared.handlers.quota``). A race lost
   there decides again with fresh numbers, so the regional limit is never exceeded, even by workers deciding about
   different clusters at once.
3. **The commit**: one conditional write of the cluster, with the documents of the jobs whose state it changed
   (finished, or queued and waiting for a new reason) written before it in the same round trip
   (``Store.replace_cluster_with_jobs``). Before it, because the saved cluster forgets those jobs, or records that
   their new state was shown: written apart, cluster first, a crash in between would lose their outcome or leave
   the job showing its old state until its next change. SQLite's transaction and Cosmos DB's transactional batch
   write all or nothing; where a store's batch is not atomic (the local Cosmos server), a conflict on the cluster
   can leave a job's write behind: harmless for an outcome (a projection is idempotent and the next try writes it
   again), at worst a waiting reason shown early, until the job's next change. A
   cluster being deleted with no nodes and no jobs left is buried instead (its jobs written, its tombstone, so
   that late copies of its events are recognised, then its deletion). A decision that changed nothing writes
   nothing, unless its actions need their version proven latest (``acts_on_its_version``).
4. **After the commit**: fewer cores are given back to the ledger, at once only when a limit they count against
   is less than half free; with room to spare they wait (a node's release then costs one write, the cluster's),
   and the cluster's ``quota_settle_by``, saved in phase 3, has the timer's resync give them back within
   ``resync_interval`` (a later booking of the cluster may take them up first). After the commit, because a crash
   in between only over-counts (until the cluster's next count change); and only by a decision that saved the
   cluster, the sole proof that the count it lowers to is the latest (``shared.handlers.quota`` explains the
   races).

The actions decided are carried out after all four (``shared.handlers.reconcile.carry_out``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shared.domain.actions import Action, ProjectJob, ProvisionNode, StopRun
from shared.domain.cluster import Cluster, ProvisioningState
from shared.domain.node_history import NodeHistoryArchive, archived, record_node_counts, split_node_history
from shared.domain.reconcile import reconcile
from shared.handlers.deps import Deps
from shared.handlers.jobs import KnownJobs, project_job, projections_to_write
from shared.handlers.quota import ClusterBookings, LedgerOnDemand
from shared.handlers.retry import retry_on_conflict
from shared.handlers.tombstones import bury_cluster

Change = Callable[[Cluster, datetime], list[Action]]


@dataclass
class ClusterDecision:
    """The decision about one cluster for one event (or a sweep), run through the phases of the module docstring."""

    deps: Deps
    workspace: str
    name: str
    change: Change | None = None
    event_id: str | None = None  # the change is applied once per event id
    known: KnownJobs = field(default_factory=dict)  # job documents read already (see ``project_job``)
    settle_quota: bool = False  # read the quota ledger even when no node count changes (the timer's resync)

    @retry_on_conflict
    def run(self) -> tuple[list[Action], Cluster | None]:
        """The actions decided and the saved cluster (None: no such cluster, or it was deleted now)."""
        cluster = self.deps.store.get_cluster(self.workspace, self.name)
        if cluster is None:
            return [], None
        before = cluster.model_dump_json(exclude={"modified_at"})  # JSON: the cheaper comparison
        actions, booking = self._decide(cluster)
        gives_back = self._before_commit(booking, cluster)
        cluster, saved = self._commit(cluster, before, actions, gives_back)
        if booking is not None and gives_back:
            booking.release_decrease(cluster, saved=saved)  # after the commit: phase 4
        return actions, cluster

    def _decide(self, cluster: Cluster) -> tuple[list[Action], ClusterBookings | None]:
        now = self.deps.clock.now()
        actions: list[Action] = []
        # Before the change: a node it removes is a count changed. The timer's resync reads the ledger afresh.
        ledger = LedgerOnDemand(self.deps, cluster, kept_copy=not self.settle_quota)
        if self.change is not None and not (self.event_id and cluster.has_applied(self.event_id)):
            actions += self.change(cluster, now)
            if self.event_id:
                cluster.record_applied(self.event_id)
        actions += reconcile(cluster, self.deps.provider.observe(cluster), now, self.deps.policy, ledger)
        ledger.check_not_held_back_by_a_kept_copy()
        cluster.node_history = record_node_counts(cluster.node_history, cluster.node_state_counts(), now)
        left_booked = buried(cluster) and cluster.quota_settle_by is not None  # its last look at the ledger
        return actions, ledger.settle(cluster, always=self.settle_quota or left_booked)

    def _before_commit(self, booking: ClusterBookings | None, cluster: Cluster) -> bool:
        """Books more cores; returns whether fewer are given back after the commit."""
        gives_back = False
        if booking is not None:
            booking.book_increase(cluster)
            # A cluster buried now is never looked at again: it gives everything back at once.
            gives_back = booking.gives_back_now(cluster, settling=self.settle_quota or buried(cluster))
            if gives_back:
                booking.uncover(cluster)
            if gives_back or not booking.over_counts(cluster):
                # (Given back right after the commit: a crash in between over-counts until the cluster's next
                # count change; the extra timer visit and write that would heal it would come with every release.)
                cluster.quota_settle_by = None
            elif cluster.quota_settle_by is None:
                cluster.quota_settle_by = self.deps.clock.now() + self.deps.policy.resync_interval
        if cluster.quota_settle_by is not None:  # (reconcile knows nothing of the ledger)
            cluster.next_reconcile_at = min(filter(None, (cluster.next_reconcile_at, cluster.quota_settle_by)))
        return gives_back

    def _commit(self, cluster: Cluster, before: str, actions: list[Action],
                gives_back: bool) -> tuple[Cluster, bool]:
        """The cluster as written, and whether this decision wrote it."""
        projections = [a.update for a in actions if isinstance(a, ProjectJob)]
        if buried(cluster):
            for update in projections:
                project_job(self.deps, self.workspace, update, self.known)
            bury_cluster(self.deps, cluster)
            self.deps.store.delete_cluster(cluster)
            return cluster, True
        if cluster.model_dump_json(exclude={"modified_at"}) != before or acts_on_its_version(actions, gives_back):
            jobs = projections_to_write(self.deps, self.workspace, projections, self.known)
            archive = older_node_counts_archived(self.deps, cluster)
            store = self.deps.store
            saved = store.replace_cluster_with_jobs(cluster, jobs, archive) if jobs or archive \
                else store.replace_cluster(cluster)
            for job in jobs:
                self.deps.recent_jobs.keep_unless_kept(job)
            return saved, True
        for update in projections:  # (a job changes as its cluster does; written all the same, should one not)
            project_job(self.deps, self.workspace, update, self.known)
        return cluster, False  # a no-op reconcile costs no write


def older_node_counts_archived(deps: Deps, cluster: Cluster) -> NodeHistoryArchive | None:
    """Once the cluster holds ``SAMPLES_IN_CLUSTER`` node-count samples, its archive with the older ones moved in
    (see ``shared.domain.node_history``), for the commit to write with the cluster, before it: where the two writes
    are not one transaction (the local Cosmos server), a conflict on the cluster leaves the samples in both, and
    the next move counts them once; never in neither. None: nothing to move."""
    kept, moved = split_node_history(cluster.node_history)
    if not moved:
        return None
    archive = deps.store.get_node_history_archive(cluster.workspace, cluster.name)
    cluster.node_history = kept
    return archived(archive, cluster.workspace, cluster.name, cluster.uid, moved)


def each_once(changes: Sequence[tuple[Change, str]]) -> Change:
    """Several events' changes as one, in order, each applied once per its event id (as ``ClusterDecision`` does
    for one): a run of one cluster's events in a batch, decided and saved together."""

    def change(cluster: Cluster, now: datetime) -> list[Action]:
        actions: list[Action] = []
        for one, event_id in changes:
            if not cluster.has_applied(event_id):
                actions += one(cluster, now)
                cluster.record_applied(event_id)
        return actions

    return change


def buried(cluster: Cluster) -> bool:
    """Deleting, with no node and no job left: the decision buries it instead of saving it."""
    return cluster.provisioning_state is ProvisioningState.DELETING and not cluster.nodes and not cluster.jobs


def acts_on_its_version(actions: list[Action], gives_back: bool) -> bool:
    """Stopping a run, provisioning a node or giving cores back, decided on a version nobody changed: it is saved
    anyway (one write, only then), so the conditional write proves it is still the latest. A stale version would
    stop the run of a job another worker just placed, or give back cores whose booking's save is on its way."""
    return gives_back or any(isinstance(a, StopRun | ProvisionNode) for a in actions)
