"""The ports: what handlers need from the world. Adapters in ``shared.adapters`` implement them; the composition
root (``shared.bootstrap``) picks which."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from shared.domain.cluster import Cluster
from shared.domain.events import CloudEvent
from shared.domain.job import Job
from shared.domain.node_history import NodeHistoryArchive
from shared.domain.observation import LockLevel, Observation, ResourceLock
from shared.domain.quota_ledger import QuotaLedger
from shared.domain.tombstone import ClusterTombstone


class Clock(Protocol):
    def now(self) -> datetime: ...


class AlreadyExists(Exception):
    """A conditional create found a document with that id."""


class Store(Protocol):
    """Cluster and job documents, partitioned by workspace. Every write is conditional on the ``etag`` read
    (``ConcurrencyConflict`` when someone else wrote in between)."""

    def get_cluster(self, workspace: str, name: str) -> Cluster | None: ...
    def create_cluster(self, cluster: Cluster) -> Cluster: ...
    def replace_cluster(self, cluster: Cluster) -> Cluster: ...
    def replace_cluster_with_jobs(self, cluster: Cluster, jobs: Sequence[Job],
                                  archive: NodeHistoryArchive | None = None) -> Cluster:
        """Replace ``jobs`` (of the cluster's workspace), save the cluster's node history ``archive`` (created when
        it has no etag), then replace the cluster, in one round trip, each conditional on its etag; the jobs' and
        the archive's etags are updated in place. ``ConcurrencyConflict`` when any was written since it was
        read. Atomic where the store makes it so (SQLite: one transaction; Cosmos: a transactional batch in the
        workspace's partition), but callers must not depend on it: a conflict may leave the jobs before the one
        that failed written (the local Cosmos server applies a batch's operations one by one, and stops at the
        first that fails), as if the writes had been made one after the other (the archive's samples are then in both
        the archive and the cluster: merged, they count once)."""
        ...

    def delete_cluster(self, cluster: Cluster) -> None: ...
    def list_clusters(self, workspace: str) -> list[Cluster]: ...
    def due_clusters(self, now: datetime) -> Iterator[tuple[str, str]]:
        """(workspace, name) of clusters whose ``next_reconcile_at`` <= now, through an index, streamed."""
        ...

    def get_job(self, workspace: str, job_id: str) -> Job | None: ...
    def create_job(self, job: Job) -> Job: ...
    def replace_job(self, job: Job) -> Job: ...
    def list_jobs(self, workspace: str, cluster: str | None = None) -> list[Job]: ...
    def unscheduled_jobs(self, submitted_before: datetime) -> Iterator[tuple[str, str]]:
        """(workspace, job id) of Queued jobs that no cluster has taken yet (their submit event may be lost)."""
        ...

    def get_quota_ledger(self, region: str) -> QuotaLedger | None: ...
    def save_quota_ledger(self, ledger: QuotaLedger) -> QuotaLedger:
        """Create (no etag) or replace conditionally; ``ConcurrencyConflict`` when someone else wrote first."""
        ...

    def get_tombstone(self, workspace: str, name: str) -> ClusterTombstone | None: ...
    def save_tombstone(self, tombstone: ClusterTombstone) -> ClusterTombstone:
        """Create (no etag) or replace conditionally, as ``save_quota_ledger``."""
        ...

    def get_node_history_archive(self, workspace: str, name: str) -> NodeHistoryArchive | None: ...
    def save_node_history_archive(self, archive: NodeHistoryArchive) -> NodeHistoryArchive:
        """Create (no etag) or replace conditionally, as ``save_quota_ledger``."""
        ...


# The largest event a bus carries (Service Bus standard tier's message size): a transport limit, checked where
# events enter (``shared.handlers.registry.decode_event``) and where the API turns a request into an event.
MAX_EVENT_BYTES = 256 * 1024
# Deliveries of one message before the broker dead-letters it (the queues' maxDeliveryCount in
# infra/app/servicebus.bicep; Service Bus' default).
MAX_DELIVERY_COUNT = 10
# Messages of one session a queue trigger is handed at once (host.json's serviceBus.maxMessageBatchSize; the local
# host and receiver take as many): the handler decides once for a cluster's change-free events among them.
MAX_MESSAGE_BATCH = 32
# How long the host renews the locks of messages a function is still handling (host.json's
# serviceBus.maxAutoLockRenewalDuration; the local host and receiver renew as long). Past it a lock lapses and the
# message is delivered again, where its event id makes applying it twice harmless.
MAX_LOCK_RENEWAL = timedelta(minutes=5)


class BatchStopped(Exception):
    """What a queue trigger given a batch raises when it cannot go on: it stopped at message ``settled`` (its
    index), which failed with ``cause``. The messages before it are settled (applied, or dead-lettered by the
    handler) and are completed; it and those after it were not applied and are delivered again, in order."""

    def __init__(self, settled: int, cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.settled, self.cause = settled, cause


M = TypeVar("M")


@dataclass(frozen=True)
class FailedBatch(Generic[M]):
    """How a host settles a batch whose trigger raised ``failure``: ``settled`` are completed; ``failed`` are
    abandoned, or dead-lettered on their last delivery, for ``cause``; ``untried`` are handed back, their delivery
    not held against them. Any failure other than ``BatchStopped`` fails the whole batch."""

    settled: Sequence[M]
    failed: Sequence[M]
    untried: Sequence[M]
    cause: Exception

    @classmethod
    def of(cls, messages: Sequence[M], failure: Exception) -> FailedBatch[M]:
        if isinstance(failure, BatchStopped):
            stop = failure.settled
            return cls(messages[:stop], messages[stop:stop + 1], messages[stop + 1:], failure.cause)
        return cls(messages[:0], messages, messages[:0], failure)


class EventBus(Protocol):
    def publish(self, event: CloudEvent, *, not_before: datetime | None = None) -> None:
        """Send to the event's queue; ``not_before`` makes it a scheduled message. The event id is the message
        id, so the broker's duplicate detection drops a second send of the same event."""
        ...

    def dead_letter(self, queue: str, message_id: str, body: bytes, reason: str) -> None:
        """Keep a message that can never be applied, with the original body and the reason."""
        ...


@dataclass(frozen=True)
class RunRequest:
    """What a provider needs to start one attempt of a job."""

    workspace: str
    cluster: str
    job_id: str
    attempt: int
    command: tuple[str, ...]
    environment: dict[str, str]
    code: str | None = None  # the job's code snapshot (SHA-256 of its archive, see SnapshotStore): the nodes' cwd


class SnapshotStore(Protocol):
    """Code snapshots of a workspace, stored once per content hash (the SHA-256 of the archive's bytes). The
    archive is checked before ``put`` (computeplane/snapshot_archive.py) and again wherever it is unpacked."""

    def put(self, workspace: str, digest: str, archive: bytes) -> bool:
        """Store the archive under its digest; False when it was there already (nothing written)."""
        ...

    def get(self, workspace: str, digest: str) -> bytes | None: ...
    def exists(self, workspace: str, digest: str) -> bool: ...


class NodeProvider(Protocol):
    """Nodes and the runs on them. Every call is idempotent: provisioning a node that exists, releasing one that
    is gone, or starting a run that was started, does nothing."""

    def provision(self, workspace: str, cluster: str, node_id: str, priority: str | None = None) -> datetime | None:
        """Ask for a node; returns when it is expected to be ready, if the provider knows. ``priority`` is
        "dedicated" or "lowpriority" (a low-priority cluster's fallback nodes are dedicated); None: the cluster's
        own vm_priority."""
        ...

    def release(self, node_id: str) -> None: ...
    def start_run(self, node_ids: Sequence[str], run: RunRequest) -> None: ...
    def stop_run(self, job_id: str, attempt: int) -> None: ...
    def observe(self, cluster: Cluster) -> Observation: ...
    def read_logs(self, job_id: str, attempt: int) -> str | None: ...


class SimulatedCloud(Protocol):
    """What only a simulated cloud can do: take a node away, set resource locks. Wired by the local runtime only; in
    Azure the cloud does these itself (preemption) or people do them in ARM (locks), and the provider observes them."""

    def preempt(self, node_id: str) -> bool:
        """Take a node away as the cloud does with low-priority capacity (False if not running)."""
        ...

    # Resource locks on the nodes' resource group: observed through ``NodeProvider.observe``.
    def add_lock(self, name: str, level: LockLevel) -> ResourceLock: ...
    def remove_lock(self, name: str) -> bool: ...
    def locks(self) -> list[ResourceLock]: ...


class TokenProvider(Protocol):
    """Tokens for a cluster's identities (issued to jobs, or checked before a job starts)."""

    def job_environment(self, cluster: Cluster, job_id: str, attempt: int) -> dict[str, str]:
        """Environment variables that let the job's code get tokens (empty when the cluster has no identity)."""
        ...

    def revoke_job(self, job_id: str) -> None: ...

    def check_access(self, cluster: Cluster, resource: str) -> str | None:
        """Get a token for the cluster's default identity for ``resource``, as the system does before a job
        starts (datastores, registry). Returns the reason it failed, or None."""
        ...

    def revoke_identity(self, client_id: str, cluster_key: str | None = None) -> None:
        """Stop serving an identity (to one cluster's jobs, or everywhere): removed, or deleted with its cluster."""
        ...
