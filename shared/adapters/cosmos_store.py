"""The Azure Store: Cosmos DB (NoSQL API), one container, partition key ``/workspace``.

Every document of a workspace lives in that workspace's partition: ``{"type": "cluster", "id": "cluster:{name}",
...Cluster fields}`` and ``{"type": "job", "id": "job:{job id}", "job_id": ..., ...Job fields}`` (the prefixes keep
a cluster and a job from ever sharing an id). The quota ledger of a region has a partition of its own,
``quota:{region}``, as DESIGN.md suggests. A deleted cluster leaves ``{"type": "tombstone", "id":
"tombstone:{name}"}`` in its workspace's partition, and a cluster's older node-count samples are ``{"type":
"node_history_archive", "id": "node_history_archive:{name}"}`` there (no ttl: one small document per name, replaced by
the next cluster of that name on its first move). So every per-event step is a point read (id + partition key) or a
single-partition query. Writes are conditional: a replace or delete on the ``_etag`` that was read (412 ->
``ConcurrencyConflict``), a create on the id being free (409 -> ``AlreadyExists``). Only the timer's two queries,
``due_clusters`` and ``unscheduled_jobs``, cross partitions; they are served by the composite indexes of
``INDEXING_POLICY`` and stream page by page.

What ``@vercel/cosmosdb-server`` (the local Cosmos API of the tests and of ``--store cosmos``) does not do, and why
correctness does not depend on it:

- transactional batch is not atomic (no rollback: it applies the operations one by one and answers 424 for those
  after the first that fails). One batch is sent, ``replace_cluster_with_jobs`` (the jobs a decision changed, the
  cluster's node history archive when samples move, then the cluster, in the workspace's partition; more jobs than
  a batch holds go first, in batches of their own), and it is only a saved round trip: the jobs and the archive go
  first, as they would one by one, so a conflict on the cluster leaves them written exactly as a crash between two
  single writes would (an archive written so holds samples the cluster still has; the next move counts them
  once); the cluster document stays the consistency boundary. It also wants each operation's partition key in the
  body, where Azure takes the request's header: ``cosmos_client.emulator_batch_partition_keys`` adds it, for the
  emulator only.
- no TTL: only tombstones of deleted clusters carry a ``ttl`` (for Azure's storage), and the domain ignores their
  expired entries itself, so nothing depends on expiry.
- never answers 429, 503 or 408 by itself: throttling and unavailability are handled by the SDK's retry policies
  configured in ``cosmos_client`` (a 429 is retried after ``x-ms-retry-after-ms``, a 503 once, a read that timed out
  once), then by ``retry_read`` and message redelivery. ``tests/reliability/test_cosmos_faults.py`` exercises these
  paths through a fault-injecting transport in front of the local server, writes that landed but whose answer was
  an error included.
- only a stub change feed: nothing reads the change feed; the timer's ``due_clusters`` query drives reconciling.
- ``OFFSET ... LIMIT`` is a syntax error: no query uses it; results are paged with continuation tokens.
- a query's ``partition_key=`` does not restrict the results to that partition: every single-partition query also
  filters ``c.workspace = @workspace`` in its WHERE clause (which is right on Azure too: defence in depth).
- a point read of a missing document fails with 500: the emulator client sends a header that makes it answer 404
  (see ``cosmos_client.EMULATOR_HEADERS``); nothing is sent differently to Azure.
"""

from __future__ import annotations

import re
import threading
from base64 import urlsafe_b64encode
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar

from azure.core import MatchConditions
from azure.cosmos import ContainerProxy, CosmosClient, PartitionKey
from azure.cosmos.exceptions import (
    CosmosBatchOperationError,
    CosmosHttpResponseError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from shared.adapters.cosmos_client import (
    EMULATOR_KEY,
    OPERATION_TIMEOUT_SECONDS,
    CosmosCredential,
    cosmos_credential,
    cosmos_endpoint,
    create_cosmos_client,
    retry_read,
    transient_errors,
)
from shared.adapters.document_form import stored_fields
from shared.config import Settings
from shared.domain.cluster import Cluster
from shared.domain.errors import ConcurrencyConflict
from shared.domain.job import Job, JobState
from shared.domain.node_history import NodeHistoryArchive
from shared.domain.quota_ledger import QuotaLedger
from shared.domain.tombstone import TOMBSTONE_KEPT, ClusterTombstone
from shared.domain.utc import format_utc
from shared.ports import AlreadyExists

__all__ = ["EMULATOR_KEY", "INDEXING_POLICY", "CosmosStore", "cosmos_credential", "document_id"]

Document = dict[str, Any]
Parameters = list[dict[str, object]]

CLUSTER: Final = "cluster"
JOB: Final = "job"
QUOTA_LEDGER: Final = "quota_ledger"
TOMBSTONE: Final = "tombstone"
NODE_HISTORY_ARCHIVE: Final = "node_history_archive"
PARTITION_KEY_PATH = "/workspace"
QUERY_PAGE_SIZE = 100
# Azure's limit on the operations of one transactional batch (the local server has none).
MAX_BATCH_OPERATIONS: Final = 100

# Added by Cosmos to every document it returns; not part of the domain model.
SYSTEM_FIELDS = frozenset({"_rid", "_self", "_etag", "_attachments", "_ts"})
# Ours, around the model's own fields: the document id, its type, and (jobs) the job id that ``id`` displaced.
ENVELOPE_FIELDS = frozenset({"id", "type", "job_id"})
# A ledger has no workspace: its partition key value is put in the document and dropped again on reading.
LEDGER_ENVELOPE_FIELDS = ENVELOPE_FIELDS | {"workspace"}
# A tombstone expires by itself in Azure (the container's default TTL is on, see infra); the domain also ignores
# incarnations older than TOMBSTONE_KEPT, so the local server, which has no TTL, behaves the same.
TOMBSTONE_ENVELOPE_FIELDS = ENVELOPE_FIELDS | {"ttl"}

INDEXING_POLICY: dict[str, Any] = {
    "indexingMode": "consistent",
    "automatic": True,
    "includedPaths": [{"path": "/*"}],
    # Never queried, and rewritten on every write of a busy cluster: indexing them would only cost RUs.
    "excludedPaths": [{"path": '/"_etag"/?'}, {"path": "/nodes/*"}, {"path": "/jobs/*"},
                      {"path": "/applied_events/?"}, {"path": "/applied_events/*"}, {"path": "/history/*"},
                      {"path": "/allocations/*"},
                      {"path": "/incarnations/*"}, {"path": "/node_history/?"}, {"path": "/quota_booked/*"}],
    "compositeIndexes": [
        [{"path": "/type", "order": "ascending"}, {"path": "/next_reconcile_at", "order": "ascending"}],
        [{"path": "/type", "order": "ascending"}, {"path": "/state", "order": "ascending"},
         {"path": "/scheduled", "order": "ascending"}, {"path": "/submitted_at", "order": "ascending"}],
    ],
}

LIST_CLUSTERS = "SELECT * FROM c WHERE c.type = 'cluster' AND c.workspace = @workspace ORDER BY c.name"
LIST_JOBS = "SELECT * FROM c WHERE c.type = 'job' AND c.workspace = @workspace ORDER BY c.submitted_at"
LIST_CLUSTER_JOBS = ("SELECT * FROM c WHERE c.type = 'job' AND c.workspace = @workspace AND c.cluster = @cluster "
                     "ORDER BY c.submitted_at")
DUE_CLUSTERS = ("SELECT c.workspace, c.name FROM c WHERE c.type = 'cluster' AND IS_DEFINED(c.next_reconcile_at) "
                "AND NOT IS_NULL(c.next_reconcile_at) AND c.next_reconcile_at <= @now ORDER BY c.next_reconcile_at")
UNSCHEDULED_JOBS = ("SELECT c.workspace, c.job_id FROM c WHERE c.type = 'job' AND c.state = @queued "
                    "AND c.scheduled = false AND c.submitted_at <= @before ORDER BY c.submitted_at")

# Cosmos ids may not contain '/', '\', '?' or '#'; a key with anything outside this set is base64url-encoded.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9._:@=+-]{1,200}")


def document_id(kind: str, key: str) -> str:
    """The document id of a cluster name or job id. Plain keys stay readable (``job:1a2b``); others are encoded
    under a different prefix (``job.b64:...``), so two keys never share an id."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{kind}:{key}"
    return f"{kind}.b64:{urlsafe_b64encode(key.encode()).decode().rstrip('=')}"


class CosmosStore:
    """Implements ``shared.ports.Store``. The client is created on first use, not here (its constructor reads the
    account over the network); the composition root builds one store per process, so there is one client per
    process, shared by its threads.

    The database and container are created if missing (the local emulator starts empty). In Azure infra creates
    them and the managed identity only reads their metadata: data-plane RBAC cannot create them."""

    def __init__(self, endpoint: str, credential: CosmosCredential, *, database: str, container: str,
                 query_page_size: int = QUERY_PAGE_SIZE, transport: Any = None) -> None:
        self._transport = transport
        self._endpoint = endpoint
        self._credential = credential
        self._database_name = database
        self._container_name = container
        self._page_size = query_page_size
        self._lock = threading.Lock()
        self._client: CosmosClient | None = None
        self._container: ContainerProxy | None = None

    @classmethod
    def from_settings(cls, settings: Settings, credential: CosmosCredential | None = None) -> CosmosStore:
        """``credential`` comes from the identity factory in Azure; by default it is chosen from the endpoint."""
        return cls(cosmos_endpoint(settings), credential if credential is not None else cosmos_credential(settings),
                   database=settings.cosmos_database, container=settings.cosmos_container)

    def close(self) -> None:
        with self._lock:
            client, self._client, self._container = self._client, None, None
        if client is not None:
            client.close()

    # --- clusters ----------------------------------------------------------------------------------------------
    def get_cluster(self, workspace: str, name: str) -> Cluster | None:
        document = self._point_read(workspace, document_id(CLUSTER, name))
        return cluster_from_document(document) if document is not None else None

    def create_cluster(self, cluster: Cluster) -> Cluster:
        cluster.etag = self._create(cluster_document(cluster), f"cluster {cluster.workspace}/{cluster.name}")
        return cluster

    def replace_cluster(self, cluster: Cluster) -> Cluster:
        cluster.etag = self._replace(cluster_document(cluster), cluster.etag,
                                     f"cluster {cluster.workspace}/{cluster.name}")
        return cluster

    def replace_cluster_with_jobs(self, cluster: Cluster, jobs: Sequence[Job],
                                  archive: NodeHistoryArchive | None = None) -> Cluster:
        """A transactional batch in the workspace's partition: the jobs, the node history archive, then the
        cluster, each on its etag (the archive created when it has none). A batch holds at most
        ``MAX_BATCH_OPERATIONS``: the jobs a decision changed beyond that (a lowered ``max_nodes`` rewords the
        waiting reason of every queued job) go first, in batches of their own. Jobs before their cluster is the
        order that keeps a crash harmless, so nothing depends on all of them being one transaction (the module
        docstring says why); an archive written without its cluster holds samples the cluster holds too, and the
        next move counts them once."""
        if not jobs and archive is None:
            return self.replace_cluster(cluster)
        what = f"cluster {cluster.workspace}/{cluster.name} and {len(jobs)} job(s)"
        if cluster.etag is None or any(job.etag is None for job in jobs):
            raise ConcurrencyConflict(f"{what}: a replace needs the etag of each document that was read")
        beside = 1 if archive is None else 2  # the cluster and the archive take room in the last batch
        ahead = max(len(jobs) - (MAX_BATCH_OPERATIONS - beside), 0)  # the jobs that do not fit beside them
        for start in range(0, ahead, MAX_BATCH_OPERATIONS):
            self._replace_in_batch(cluster.workspace, jobs[start:min(start + MAX_BATCH_OPERATIONS, ahead)], None, what)
        self._replace_in_batch(cluster.workspace, jobs[ahead:], cluster, what, archive)
        return cluster

    def _replace_in_batch(self, workspace: str, jobs: Sequence[Job], cluster: Cluster | None, what: str,
                          archive: NodeHistoryArchive | None = None) -> None:
        """One transactional batch of conditional writes; the etags of what it wrote updated in place."""
        operations: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
            ("replace", (document_id(JOB, job.id), job_document(job)), {"if_match_etag": job.etag}) for job in jobs]
        if archive is not None:
            document = node_history_archive_document(archive)
            operations.append(("create", (document,), {}) if archive.etag is None else
                              ("replace", (document["id"], document), {"if_match_etag": archive.etag}))
        if cluster is not None:
            operations.append(("replace", (document_id(CLUSTER, cluster.name), cluster_document(cluster)),
                               {"if_match_etag": cluster.etag}))
        documents = self._documents()
        try:
            with transient_errors(f"batch {what}"):
                results = documents.execute_item_batch(operations, partition_key=workspace,
                                                       timeout=OPERATION_TIMEOUT_SECONDS)
        except CosmosBatchOperationError as error:
            if error.status_code in (404, 409, 412):  # one deleted, created or written since it was read
                raise ConcurrencyConflict(f"{what}: changed since it was read") from None
            raise
        for job, result in zip(jobs, results, strict=False):
            job.etag = str(result["eTag"])
        if archive is not None:
            archive.etag = str(results[len(jobs)]["eTag"])
        if cluster is not None:
            cluster.etag = str(results[-1]["eTag"])

    def delete_cluster(self, cluster: Cluster) -> None:
        self._delete(cluster.workspace, document_id(CLUSTER, cluster.name), cluster.etag,
                     f"cluster {cluster.workspace}/{cluster.name}")

    def list_clusters(self, workspace: str) -> list[Cluster]:
        return [cluster_from_document(d) for d in self._query_partition("list clusters", workspace, LIST_CLUSTERS)]

    def due_clusters(self, now: datetime) -> Iterator[tuple[str, str]]:
        for row in self._stream("due clusters", DUE_CLUSTERS, [{"name": "@now", "value": format_utc(now)}]):
            yield row["workspace"], row["name"]

    # --- jobs --------------------------------------------------------------------------------------------------
    def get_job(self, workspace: str, job_id: str) -> Job | None:
        document = self._point_read(workspace, document_id(JOB, job_id))
        return job_from_document(document) if document is not None else None

    def create_job(self, job: Job) -> Job:
        job.etag = self._create(job_document(job), f"job {job.workspace}/{job.id}")
        return job

    def replace_job(self, job: Job) -> Job:
        job.etag = self._replace(job_document(job), job.etag, f"job {job.workspace}/{job.id}")
        return job

    def list_jobs(self, workspace: str, cluster: str | None = None) -> list[Job]:
        if cluster is None:
            documents = self._query_partition("list jobs", workspace, LIST_JOBS)
        else:
            documents = self._query_partition("list jobs", workspace, LIST_CLUSTER_JOBS,
                                              [{"name": "@cluster", "value": cluster}])
        return [job_from_document(d) for d in documents]

    def unscheduled_jobs(self, submitted_before: datetime) -> Iterator[tuple[str, str]]:
        parameters: Parameters = [{"name": "@queued", "value": JobState.QUEUED.value},
                                  {"name": "@before", "value": format_utc(submitted_before)}]
        for row in self._stream("unscheduled jobs", UNSCHEDULED_JOBS, parameters):
            yield row["workspace"], row["job_id"]

    # --- quota ------------------------------------------------------------------------------------------------------
    def get_quota_ledger(self, region: str) -> QuotaLedger | None:
        document = self._point_read(quota_partition(region), document_id(QUOTA_LEDGER, region))
        return quota_ledger_from_document(document) if document is not None else None

    def save_quota_ledger(self, ledger: QuotaLedger) -> QuotaLedger:
        ledger.etag = self._save(quota_ledger_document(ledger), ledger.etag, f"quota ledger {ledger.region}")
        return ledger

    # --- what deleted clusters leave behind --------------------------------------------------------------------
    def get_tombstone(self, workspace: str, name: str) -> ClusterTombstone | None:
        document = self._point_read(workspace, document_id(TOMBSTONE, name))
        return tombstone_from_document(document) if document is not None else None

    def save_tombstone(self, tombstone: ClusterTombstone) -> ClusterTombstone:
        tombstone.etag = self._save(tombstone_document(tombstone), tombstone.etag,
                                    f"tombstone {tombstone.workspace}/{tombstone.name}")
        return tombstone

    def get_node_history_archive(self, workspace: str, name: str) -> NodeHistoryArchive | None:
        document = self._point_read(workspace, document_id(NODE_HISTORY_ARCHIVE, name))
        return node_history_archive_from_document(document) if document is not None else None

    def save_node_history_archive(self, archive: NodeHistoryArchive) -> NodeHistoryArchive:
        archive.etag = self._save(node_history_archive_document(archive), archive.etag,
                                  f"node history archive {archive.workspace}/{archive.name}")
        return archive

    # --- Cosmos ------------------------------------------------------------------------------------------------
    def _documents(self) -> ContainerProxy:
        container = self._container
        if container is not None:
            return container
        with self._lock:
            if self._container is None:
                self._container = retry_read("open container", self._open_container)
            return self._container

    def _open_container(self) -> ContainerProxy:
        if self._client is None:
            self._client = create_cosmos_client(self._endpoint, self._credential, self._transport)
        database = self._client.create_database_if_not_exists(self._database_name)
        return database.create_container_if_not_exists(
            self._container_name, partition_key=PartitionKey(path=PARTITION_KEY_PATH), indexing_policy=INDEXING_POLICY)

    def _point_read(self, workspace: str, item_id: str) -> Document | None:
        documents = self._documents()

        def read() -> Document | None:
            try:
                return dict(documents.read_item(item_id, partition_key=workspace, timeout=OPERATION_TIMEOUT_SECONDS))
            except CosmosResourceNotFoundError:
                return None

        return retry_read(f"read {workspace}/{item_id}", read)

    def _save(self, document: Document, etag: str | None, what: str) -> str:
        """Create (no etag) or replace conditionally. A document created meanwhile is a conflict, not an error:
        two first writers of a ledger or tombstone, and the loser decides again with the winner's document."""
        if etag is not None:
            return self._replace(document, etag, what)
        try:
            return self._create(document, what)
        except AlreadyExists:
            raise ConcurrencyConflict(f"{what} was created meanwhile") from None

    def _create(self, document: Document, what: str) -> str:
        documents = self._documents()
        try:
            with transient_errors(f"create {what}"):
                created = documents.create_item(document, timeout=OPERATION_TIMEOUT_SECONDS)
        except CosmosResourceExistsError:
            landed = self._already_written(document)
            if landed is None:
                raise AlreadyExists(what) from None
            return landed
        return str(created["_etag"])

    def _already_written(self, document: Document) -> str | None:
        """The etag of ``document`` if the store holds exactly it. The SDK retries a write after a 503, so a 409 or
        412 can answer a write whose first attempt landed: that is our write, not someone else's."""
        stored = self._point_read(str(document["workspace"]), str(document["id"]))
        if stored is None or _without_system_fields(stored) != document:
            return None
        return str(stored["_etag"])

    def _replace(self, document: Document, etag: str | None, what: str) -> str:
        if etag is None:
            raise ConcurrencyConflict(f"{what}: a replace needs the etag of the document that was read")
        documents = self._documents()
        try:
            with transient_errors(f"replace {what}"):
                replaced = documents.replace_item(document["id"], document, etag=etag,
                                                  match_condition=MatchConditions.IfNotModified,
                                                  timeout=OPERATION_TIMEOUT_SECONDS)
        except CosmosHttpResponseError as error:
            if error.status_code == 412 and (landed := self._already_written(document)) is not None:
                return landed
            if error.status_code in (404, 412):  # deleted, or written by someone else, since it was read
                raise ConcurrencyConflict(f"{what} changed since it was read") from None
            raise
        return str(replaced["_etag"])

    def _delete(self, workspace: str, item_id: str, etag: str | None, what: str) -> None:
        if etag is None:
            raise ConcurrencyConflict(f"{what}: a delete needs the etag of the document that was read")
        documents = self._documents()
        try:
            with transient_errors(f"delete {what}"):
                documents.delete_item(item_id, partition_key=workspace, etag=etag,
                                      match_condition=MatchConditions.IfNotModified, timeout=OPERATION_TIMEOUT_SECONDS)
        except CosmosHttpResponseError as error:
            if error.status_code == 404:  # already gone: what the caller wanted
                return
            if error.status_code == 412:
                raise ConcurrencyConflict(f"{what} changed before delete") from None
            raise

    def _query_partition(self, operation: str, workspace: str, query: str,
                         parameters: Parameters | None = None) -> list[Document]:
        """One workspace's documents: ``partition_key`` routes the query to one partition and the query filters
        ``@workspace`` itself as well. The whole query is idempotent, so a transient failure reruns it."""
        documents = self._documents()
        all_parameters: Parameters = [{"name": "@workspace", "value": workspace}, *(parameters or [])]

        def run() -> list[Document]:
            return list(documents.query_items(query, parameters=all_parameters, partition_key=workspace,
                                              max_item_count=self._page_size, timeout=OPERATION_TIMEOUT_SECONDS))

        return retry_read(operation, run)

    def _stream(self, operation: str, query: str, parameters: Parameters) -> Iterator[Document]:
        """Rows of a cross-partition query (timer path only), one page in memory at a time. Opening the query and
        its first page are retried; once rows were handed out a rerun would hand them out again, so a later
        failure is only mapped (the timer runs again, and reconciling is level-triggered)."""
        documents = self._documents()

        def first_page() -> tuple[Iterator[Iterator[Document]], list[Document]]:
            pages = documents.query_items(query, parameters=parameters, enable_cross_partition_query=True,
                                          max_item_count=self._page_size, timeout=OPERATION_TIMEOUT_SECONDS).by_page()
            return pages, list(next(pages, iter(())))

        pages, rows = retry_read(operation, first_page)
        yield from rows
        with transient_errors(operation):
            for page in pages:
                yield from page


# --- documents <-> domain --------------------------------------------------------------------------------------
def cluster_document(cluster: Cluster) -> Document:
    return {**stored_fields(cluster), "id": document_id(CLUSTER, cluster.name), "type": CLUSTER}


def job_document(job: Job) -> Document:
    return {**stored_fields(job), "id": document_id(JOB, job.id), "type": JOB, "job_id": job.id,
            # (queried: a document without them would drop out of the timer's query and its ORDER BY)
            "state": job.state.value, "scheduled": job.scheduled}


def cluster_from_document(document: Document) -> Cluster:
    return _from_document(Cluster, document)


def job_from_document(document: Document) -> Job:
    job = Job.model_validate({**_model_fields(document), "id": document["job_id"]})
    job.etag = str(document["_etag"])
    return job


def quota_partition(region: str) -> str:
    return f"quota:{region}"


def quota_ledger_document(ledger: QuotaLedger) -> Document:
    return {**stored_fields(ledger), "id": document_id(QUOTA_LEDGER, ledger.region), "type": QUOTA_LEDGER,
            "workspace": quota_partition(ledger.region)}


def quota_ledger_from_document(document: Document) -> QuotaLedger:
    return _from_document(QuotaLedger, document, LEDGER_ENVELOPE_FIELDS)


def tombstone_document(tombstone: ClusterTombstone) -> Document:
    return {**stored_fields(tombstone), "id": document_id(TOMBSTONE, tombstone.name), "type": TOMBSTONE,
            "ttl": int(TOMBSTONE_KEPT.total_seconds())}


def tombstone_from_document(document: Document) -> ClusterTombstone:
    return _from_document(ClusterTombstone, document, TOMBSTONE_ENVELOPE_FIELDS)


def node_history_archive_document(archive: NodeHistoryArchive) -> Document:
    # (no ttl: one small document per name, replaced by the next cluster of that name on its first move)
    return {**stored_fields(archive), "id": document_id(NODE_HISTORY_ARCHIVE, archive.name),
            "type": NODE_HISTORY_ARCHIVE}


def node_history_archive_from_document(document: Document) -> NodeHistoryArchive:
    return _from_document(NodeHistoryArchive, document)


_Read = TypeVar("_Read", Cluster, QuotaLedger, ClusterTombstone, NodeHistoryArchive)


def _from_document(model: type[_Read], document: Document, envelope: frozenset[str] = ENVELOPE_FIELDS) -> _Read:
    """The model from its fields, with the document's etag as the version read."""
    read = model.model_validate(_model_fields(document, envelope))
    read.etag = str(document["_etag"])
    return read


def _without_system_fields(document: Document) -> Document:
    return {k: v for k, v in document.items() if k not in SYSTEM_FIELDS}


def _model_fields(document: Document, envelope: frozenset[str] = ENVELOPE_FIELDS) -> Document:
    return {k: v for k, v in document.items() if k not in SYSTEM_FIELDS and k not in envelope}

