"""One Store contract, run against every adapter: SQLite (a temporary file) and Cosmos DB (the azure-cosmos SDK
against ``@vercel/cosmosdb-server``, a fresh database per test so the cross-partition queries see only its data)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from azure.cosmos import ContainerProxy, CosmosClient
from azure.cosmos.exceptions import CosmosHttpResponseError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

from shared.adapters import cosmos_client, cosmos_store
from shared.adapters.cosmos_client import EMULATOR_KEY, cosmos_credential, retry_read
from shared.adapters.cosmos_store import ENVELOPE_FIELDS, LEDGER_ENVELOPE_FIELDS, CosmosStore
from shared.adapters.credentials import azure_credential, forget_credentials
from shared.adapters.sqlite_store import SqliteStore
from shared.config import Settings
from shared.domain.cluster import (
    AllocationState,
    Cluster,
    ClusterError,
    ClusterSpec,
    JobEntry,
    JobPhase,
    Node,
    NodeState,
    ProvisioningState,
    applied_event_key,
)
from shared.domain.errors import ConcurrencyConflict, TransientError
from shared.domain.identity import ClusterIdentity, user_assigned_from_arm_id
from shared.domain.job import Job, JobHistoryEntry, JobSpec, JobState
from shared.domain.node_history import archived, samples_of
from shared.domain.quota_ledger import Allocation, QuotaLedger
from shared.domain.tombstone import bury
from shared.ports import AlreadyExists, Store
from tests.fakes.store import InMemoryStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WS = "ws-a"
OTHER_WS = "ws-b"
ARM_ID = ("/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-ml"
          "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/trainer")
# Small pages, so the Cosmos lists and streams in these tests run across continuation tokens.
PAGE_SIZE = 2


@pytest.fixture(params=["sqlite", "cosmos", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        yield SqliteStore(tmp_path / "state.db")
        return
    if request.param == "memory":  # the fake the handler unit tests use, held to the same contract
        yield InMemoryStore()
        return
    endpoint: str = request.getfixturevalue("cosmosdb_endpoint")
    cosmos = CosmosStore(endpoint, EMULATOR_KEY, database=f"contract-{uuid.uuid4().hex[:12]}", container="state",
                         query_page_size=PAGE_SIZE)
    try:
        yield cosmos
    finally:
        cosmos.close()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_cluster(name: str = "gpu-1", workspace: str = WS, due: datetime | None = None) -> Cluster:
    return Cluster(workspace=workspace, name=name, uid="abcdef123456",
                   spec=ClusterSpec(vm_size="STANDARD_NC6", max_nodes=4), allocation_state_transition_time=T0,
                   next_reconcile_at=due, created_at=T0, modified_at=T0)


def make_job(job_id: str, cluster: str = "gpu-1", workspace: str = WS, submitted: float = 0,
             state: JobState = JobState.QUEUED, scheduled: bool = False) -> Job:
    return Job(workspace=workspace, id=job_id, cluster=cluster, spec=JobSpec(command=["python", "train.py"]),
               state=state, scheduled=scheduled, submitted_at=at(submitted))


def cluster_with_every_field() -> Cluster:
    plus_two = timezone(timedelta(hours=2))  # stored as UTC, read back as the same instant
    return Cluster(
        workspace=WS, name="gpu-1", uid="abcdef123456",
        spec=ClusterSpec(vm_size="STANDARD_NC6", max_nodes=8, min_nodes=1, vm_priority="lowpriority",
                         idle_seconds_before_scaledown=600, location="westeurope", tags={"team": "vision"},
                         description="training pool"),
        provisioning_state=ProvisioningState.SUCCEEDED, allocation_state=AllocationState.RESIZING,
        allocation_state_transition_time=at(1.000001), target_node_count=2,
        nodes=[Node(node_id="gpu-1-abcdef-0001", state=NodeState.IDLE, requested_at=T0, ready_at=at(30),
                    idle_since=datetime(2026, 3, 1, 14, 0, 45, 123456, tzinfo=plus_two), private_ip="10.0.0.4"),
               Node(node_id="gpu-1-abcdef-0002", state=NodeState.RUNNING, run_id="job-7", requested_at=T0,
                    ready_at=at(31))],
        jobs=[JobEntry(job_id="job-7", node_count=1, max_retries=2, submitted_at=at(5), phase=JobPhase.RUNNING,
                       attempt=2, node_ids=["gpu-1-abcdef-0002"], started_at=at(40), visible_state="Running",
                       reason="retried after preemption")],
        errors=[ClusterError(code="QuotaExceeded", message="4 more cores needed", time=at(50))],
        identity=ClusterIdentity(type="UserAssigned", identities=(user_assigned_from_arm_id(ARM_ID),)),
        applied_events=["evt-1", "evt-2"], next_reconcile_at=at(600.5), node_seq=2,
        created_at=T0, modified_at=at(60))


def job_with_every_field() -> Job:
    return Job(workspace=WS, id="job-7", cluster="gpu-1",
               spec=JobSpec(command=["python", "train.py", "--epochs", "3"], node_count=2,
                            environment_variables={"SEED": "42"}, max_retries=5),
               state=JobState.FAILED, reason="exit code 3", attempts=2, nodes=["n-1", "n-2"], exit_code=3,
               scheduled=True, submitted_at=at(5), started_at=at(40), finished_at=at(90.25),
               history=[JobHistoryEntry(time=at(40), state=JobState.RUNNING, attempt=1),
                        JobHistoryEntry(time=at(90.25), state=JobState.FAILED, attempt=2, reason="exit code 3")])


def stored_cluster(store: Store, name: str = "gpu-1", workspace: str = WS) -> Cluster:
    cluster = store.get_cluster(workspace, name)
    assert cluster is not None, f"cluster {workspace}/{name} is not stored"
    return cluster


def stored_job(store: Store, job_id: str, workspace: str = WS) -> Job:
    job = store.get_job(workspace, job_id)
    assert job is not None, f"job {workspace}/{job_id} is not stored"
    return job


# --- clusters --------------------------------------------------------------------------------------------------
def test_created_cluster_reads_back_equal_in_every_field(store: Store) -> None:
    original = cluster_with_every_field()
    created = store.create_cluster(original.model_copy(deep=True))
    loaded = stored_cluster(store)
    assert created.etag is not None and loaded.etag == created.etag
    assert loaded.model_dump() == original.model_dump()
    assert loaded.nodes[0].idle_since == datetime(2026, 3, 1, 12, 0, 45, 123456, tzinfo=UTC)
    assert loaded.nodes[0].idle_since.tzinfo is not None


def test_missing_cluster_is_none_even_when_another_workspace_has_the_name(store: Store) -> None:
    store.create_cluster(make_cluster(workspace=OTHER_WS))
    assert store.get_cluster(WS, "gpu-1") is None
    assert store.get_cluster(OTHER_WS, "nope") is None


def test_creating_an_existing_cluster_raises_already_exists_and_keeps_the_first(store: Store) -> None:
    store.create_cluster(make_cluster())
    second = make_cluster()
    second.target_node_count = 3
    with pytest.raises(AlreadyExists):
        store.create_cluster(second)
    assert stored_cluster(store).target_node_count == 0


def test_the_same_name_in_two_workspaces_is_two_clusters(store: Store) -> None:
    store.create_cluster(make_cluster(workspace=WS))
    other = make_cluster(workspace=OTHER_WS)
    other.target_node_count = 2
    store.create_cluster(other)
    assert stored_cluster(store, workspace=WS).target_node_count == 0
    assert stored_cluster(store, workspace=OTHER_WS).target_node_count == 2


def test_replace_with_the_current_etag_saves_and_gives_a_new_etag(store: Store) -> None:
    first_etag = store.create_cluster(make_cluster()).etag
    cluster = stored_cluster(store)
    cluster.target_node_count = 3
    cluster.next_reconcile_at = at(30)
    saved = store.replace_cluster(cluster)
    assert saved.etag not in (None, first_etag)
    loaded = stored_cluster(store)
    assert (loaded.target_node_count, loaded.next_reconcile_at, loaded.etag) == (3, at(30), saved.etag)


def test_replace_with_a_stale_etag_raises_conflict_and_the_stored_cluster_is_unchanged(store: Store) -> None:
    store.create_cluster(make_cluster())
    mine, theirs = stored_cluster(store), stored_cluster(store)
    theirs.target_node_count = 2
    store.replace_cluster(theirs)
    mine.target_node_count = 4
    with pytest.raises(ConcurrencyConflict):
        store.replace_cluster(mine)
    loaded = stored_cluster(store)
    assert loaded.model_dump() == theirs.model_dump()
    assert loaded.etag == theirs.etag


def test_replace_without_an_etag_raises_conflict(store: Store) -> None:
    store.create_cluster(make_cluster())
    with pytest.raises(ConcurrencyConflict):
        store.replace_cluster(make_cluster())


def test_replace_of_a_deleted_cluster_raises_conflict(store: Store) -> None:
    store.create_cluster(make_cluster())
    cluster = stored_cluster(store)
    store.delete_cluster(stored_cluster(store))
    with pytest.raises(ConcurrencyConflict):
        store.replace_cluster(cluster)
    assert store.get_cluster(WS, "gpu-1") is None


def test_writes_decided_on_a_deleted_cluster_never_land_on_its_successor_of_the_same_name(store: Store) -> None:
    """A decision that read a cluster before it was deleted must not save over (or delete) the cluster created again
    under its name, at any of the successor's versions: they never repeat the predecessor's."""
    store.create_cluster(make_cluster())
    predecessor = [stored_cluster(store)]
    for _ in range(2):
        store.replace_cluster(stored_cluster(store))
        predecessor.append(stored_cluster(store))
    store.delete_cluster(stored_cluster(store))
    store.create_cluster(make_cluster(due=at(5)))
    for _ in range(3):
        for stale in predecessor:
            with pytest.raises(ConcurrencyConflict):
                store.replace_cluster(stale.model_copy(update={"next_reconcile_at": at(1)}))
            with pytest.raises(ConcurrencyConflict):
                store.delete_cluster(stale)
        store.replace_cluster(stored_cluster(store))
    assert stored_cluster(store).next_reconcile_at == at(5)


def test_delete_with_the_current_etag_removes_the_cluster(store: Store) -> None:
    store.create_cluster(make_cluster())
    store.delete_cluster(stored_cluster(store))
    assert store.get_cluster(WS, "gpu-1") is None
    assert store.list_clusters(WS) == []


def test_delete_with_a_stale_etag_is_refused_and_the_cluster_stays(store: Store) -> None:
    store.create_cluster(make_cluster())
    stale = stored_cluster(store)
    store.replace_cluster(stored_cluster(store))
    with pytest.raises(ConcurrencyConflict):
        store.delete_cluster(stale)
    assert store.get_cluster(WS, "gpu-1") is not None


def test_delete_of_a_cluster_already_gone_does_nothing(store: Store) -> None:
    store.create_cluster(make_cluster())
    cluster = stored_cluster(store)
    store.delete_cluster(cluster)
    store.delete_cluster(cluster)
    assert store.get_cluster(WS, "gpu-1") is None


def test_list_clusters_is_sorted_by_name_and_holds_only_that_workspace(store: Store) -> None:
    for name in ["c-5", "c-1", "c-4", "c-2", "c-3"]:
        store.create_cluster(make_cluster(name, WS))
    for name in ["c-0", "c-25", "c-9"]:
        store.create_cluster(make_cluster(name, OTHER_WS))
    assert [(c.workspace, c.name) for c in store.list_clusters(WS)] == [(WS, f"c-{i}") for i in range(1, 6)]
    assert [c.name for c in store.list_clusters(OTHER_WS)] == ["c-0", "c-25", "c-9"]
    assert all(c.etag for c in store.list_clusters(WS))
    assert store.list_clusters("ws-empty") == []


def test_due_clusters_are_those_due_by_now_in_every_workspace_most_overdue_first(store: Store) -> None:
    now = at(100)
    store.create_cluster(make_cluster("due-exactly-now", WS, due=now))
    store.create_cluster(make_cluster("overdue", OTHER_WS, due=at(10)))
    store.create_cluster(make_cluster("due-earlier", WS, due=at(50)))
    store.create_cluster(make_cluster("not-due-yet", WS, due=now + timedelta(microseconds=1)))
    store.create_cluster(make_cluster("nothing-to-do", OTHER_WS, due=None))
    due = store.due_clusters(now)
    assert isinstance(due, Iterator), "streamed, not collected into a list"
    assert list(due) == [(OTHER_WS, "overdue"), (WS, "due-earlier"), (WS, "due-exactly-now")]


def test_due_clusters_follow_deadlines_that_were_replaced(store: Store) -> None:
    store.create_cluster(make_cluster("was-due", due=at(10)))
    store.create_cluster(make_cluster("becomes-due", due=None))
    was_due, becomes_due = stored_cluster(store, "was-due"), stored_cluster(store, "becomes-due")
    was_due.next_reconcile_at = None
    becomes_due.next_reconcile_at = at(20)
    store.replace_cluster(was_due)
    store.replace_cluster(becomes_due)
    assert list(store.due_clusters(at(100))) == [(WS, "becomes-due")]


# --- jobs ------------------------------------------------------------------------------------------------------
def test_created_job_reads_back_equal_in_every_field(store: Store) -> None:
    original = job_with_every_field()
    created = store.create_job(original.model_copy(deep=True))
    loaded = stored_job(store, "job-7")
    assert created.etag is not None and loaded.etag == created.etag
    assert loaded.model_dump() == original.model_dump()


def test_missing_job_is_none_even_when_another_workspace_has_the_id(store: Store) -> None:
    store.create_job(make_job("job-1", workspace=OTHER_WS))
    assert store.get_job(WS, "job-1") is None


def test_creating_an_existing_job_raises_already_exists(store: Store) -> None:
    store.create_job(make_job("job-1"))
    with pytest.raises(AlreadyExists):
        store.create_job(make_job("job-1", cluster="other"))
    assert stored_job(store, "job-1").cluster == "gpu-1"


def test_replace_job_with_the_current_etag_saves_it(store: Store) -> None:
    store.create_job(make_job("job-1"))
    job = stored_job(store, "job-1")
    job.state, job.scheduled, job.attempts = JobState.RUNNING, True, 1
    saved = store.replace_job(job)
    loaded = stored_job(store, "job-1")
    assert (loaded.state, loaded.scheduled, loaded.attempts, loaded.etag) == (JobState.RUNNING, True, 1, saved.etag)


def test_replace_job_with_a_stale_etag_raises_conflict_and_the_stored_job_is_unchanged(store: Store) -> None:
    store.create_job(make_job("job-1"))
    mine, theirs = stored_job(store, "job-1"), stored_job(store, "job-1")
    theirs.state = JobState.CANCELED
    store.replace_job(theirs)
    mine.state = JobState.RUNNING
    with pytest.raises(ConcurrencyConflict):
        store.replace_job(mine)
    assert stored_job(store, "job-1").model_dump() == theirs.model_dump()


# --- finished jobs written with their cluster, in one round trip ----------------------------------------------------
def finished_on_cluster(store: Store) -> tuple[Cluster, list[Job]]:
    store.create_cluster(make_cluster())
    for job_id in ("job-1", "job-2"):
        store.create_job(make_job(job_id, state=JobState.RUNNING, scheduled=True))
    cluster, jobs = stored_cluster(store), [stored_job(store, "job-1"), stored_job(store, "job-2")]
    cluster.node_seq = 7
    for job in jobs:
        job.state = JobState.COMPLETED
    return cluster, jobs


def test_jobs_and_their_cluster_are_written_together_with_new_etags(store: Store) -> None:
    cluster, jobs = finished_on_cluster(store)
    saved = store.replace_cluster_with_jobs(cluster, jobs)
    assert (stored_cluster(store).node_seq, stored_cluster(store).etag) == (7, saved.etag)
    for job in jobs:
        assert (stored_job(store, job.id).state, stored_job(store, job.id).etag) == (JobState.COMPLETED, job.etag)
        store.replace_job(job)  # the etags handed back are the stored ones: a next write goes through


def test_a_stale_job_refuses_the_write_and_its_cluster_is_not_written(store: Store) -> None:
    cluster, jobs = finished_on_cluster(store)
    theirs = stored_job(store, "job-2")
    theirs.state = JobState.CANCELED
    store.replace_job(theirs)
    with pytest.raises(ConcurrencyConflict):
        store.replace_cluster_with_jobs(cluster, jobs)
    assert stored_cluster(store).node_seq == 0
    assert stored_job(store, "job-2").state == JobState.CANCELED


@pytest.mark.parametrize("with_jobs", [True, False], ids=["with-jobs", "archive-only"])
def test_a_node_history_archive_is_written_with_its_cluster_created_then_replaced(store: Store,
                                                                                   with_jobs: bool) -> None:
    cluster, jobs = finished_on_cluster(store)
    jobs = jobs if with_jobs else []
    first = archived(None, WS, "gpu-1", cluster.uid, "1767225600000,1")
    saved = store.replace_cluster_with_jobs(cluster, jobs, first)
    stored = store.get_node_history_archive(WS, "gpu-1")
    assert stored is not None and stored.etag == first.etag and stored.node_history == first.node_history
    assert (stored_cluster(store).node_seq, stored_cluster(store).etag) == (7, saved.etag)
    saved.node_seq = 8
    store.replace_cluster_with_jobs(saved, [], archived(stored, WS, "gpu-1", cluster.uid, "1767225660000,2"))
    final = store.get_node_history_archive(WS, "gpu-1")
    assert final is not None and len(samples_of(final.node_history)) == 2 and stored_cluster(store).node_seq == 8


def test_a_stale_node_history_archive_refuses_the_write_and_its_cluster_is_not_written(store: Store) -> None:
    cluster, jobs = finished_on_cluster(store)
    theirs = store.save_node_history_archive(archived(None, WS, "gpu-1", cluster.uid, "1767225600000,1"))
    ours = archived(None, WS, "gpu-1", cluster.uid, "1767225600000,2")
    with pytest.raises(ConcurrencyConflict):  # ours was decided before theirs existed: a second first archive
        store.replace_cluster_with_jobs(cluster, jobs, ours)
    assert stored_cluster(store).node_seq == 0 and ours.etag is None  # nothing written: still the etag it had
    store.save_node_history_archive(archived(theirs, WS, "gpu-1", cluster.uid, "1767225660000,3"))
    with pytest.raises(ConcurrencyConflict):  # decided on the first version of theirs
        store.replace_cluster_with_jobs(cluster, [], archived(theirs.model_copy(update={"etag": "1"}), WS, "gpu-1",
                                                              cluster.uid, "1767225720000,4"))
    assert stored_cluster(store).node_seq == 0


def test_a_stale_cluster_refuses_the_write_of_the_cluster(store: Store) -> None:
    """The jobs before it may be written or not (the local Cosmos server's batch is not atomic): nobody relies on
    either, and a job written stays written as it would after a crash between two single writes."""
    cluster, jobs = finished_on_cluster(store)
    theirs = stored_cluster(store)
    theirs.node_seq = 3
    store.replace_cluster(theirs)
    with pytest.raises(ConcurrencyConflict):
        store.replace_cluster_with_jobs(cluster, jobs)
    assert stored_cluster(store).node_seq == 3
    assert {stored_job(store, j.id).state for j in jobs} <= {JobState.RUNNING, JobState.COMPLETED}


@pytest.mark.parametrize("with_archive", [False, True], ids=["jobs", "jobs-and-archive"])
def test_more_jobs_than_one_cosmos_batch_holds_are_all_written_with_their_cluster(
        store: Store, monkeypatch: pytest.MonkeyPatch, with_archive: bool) -> None:
    """A lowered max_nodes rewords every queued job's reason: one decision may change hundreds of jobs. Azure
    refuses a transactional batch of more than 100 operations (the local server takes any), so none is sent."""
    batches: list[int] = []
    execute = ContainerProxy.execute_item_batch

    def counted(self: ContainerProxy, operations: Any, *args: Any, **kwargs: Any) -> Any:
        batches.append(len(operations))
        return execute(self, operations, *args, **kwargs)

    monkeypatch.setattr(ContainerProxy, "execute_item_batch", counted)
    store.create_cluster(make_cluster())
    ids = [f"job-{n:03d}" for n in range(250)]
    for job_id in ids:
        store.create_job(make_job(job_id))
    cluster, jobs = stored_cluster(store), [stored_job(store, job_id) for job_id in ids]
    cluster.node_seq = 9
    for job in jobs:
        job.reason = "waiting for a node: max_nodes is 2"
    archive = archived(None, WS, "gpu-1", cluster.uid, "1767225600000,1") if with_archive else None
    store.replace_cluster_with_jobs(cluster, jobs, archive)
    assert stored_cluster(store).node_seq == 9
    assert {stored_job(store, job_id).reason for job_id in ids} == {"waiting for a node: max_nodes is 2"}
    assert (store.get_node_history_archive(WS, "gpu-1") is not None) == with_archive
    if isinstance(store, CosmosStore):
        assert sum(batches) == 251 + with_archive and max(batches) <= 100, batches  # Azure's limit


def test_a_stale_job_beyond_the_first_batch_refuses_the_write_of_the_cluster(store: Store) -> None:
    """The jobs that do not fit beside the cluster go first; one of them written since it was read stops the
    write before the cluster is saved."""
    store.create_cluster(make_cluster())
    ids = [f"job-{n:03d}" for n in range(150)]
    for job_id in ids:
        store.create_job(make_job(job_id))
    cluster, jobs = stored_cluster(store), [stored_job(store, job_id) for job_id in ids]
    theirs = stored_job(store, "job-000")
    theirs.state = JobState.CANCELED
    store.replace_job(theirs)
    cluster.node_seq = 9
    for job in jobs:
        job.reason = "waiting"
    with pytest.raises(ConcurrencyConflict):
        store.replace_cluster_with_jobs(cluster, jobs)
    assert stored_cluster(store).node_seq == 0
    assert stored_job(store, "job-000").state == JobState.CANCELED


def test_list_jobs_is_in_submit_order_for_the_workspace_or_one_cluster(store: Store) -> None:
    for job_id, cluster, submitted in [("j-c", "gpu-1", 30), ("j-a", "cpu-1", 10), ("j-d", "gpu-1", 40),
                                       ("j-b", "gpu-1", 20), ("j-e", "cpu-1", 50)]:
        store.create_job(make_job(job_id, cluster, submitted=submitted))
    store.create_job(make_job("j-other-ws", "gpu-1", workspace=OTHER_WS, submitted=15))
    assert [j.id for j in store.list_jobs(WS)] == ["j-a", "j-b", "j-c", "j-d", "j-e"]
    assert [j.id for j in store.list_jobs(WS, "gpu-1")] == ["j-b", "j-c", "j-d"]
    assert [j.id for j in store.list_jobs(OTHER_WS)] == ["j-other-ws"]
    assert store.list_jobs(WS, "no-such-cluster") == []


def test_unscheduled_jobs_are_queued_unclaimed_jobs_submitted_by_the_cutoff(store: Store) -> None:
    store.create_job(make_job("lost-submit", submitted=10))
    store.create_job(make_job("lost-at-cutoff", workspace=OTHER_WS, submitted=60))
    store.create_job(make_job("too-recent", submitted=61))
    store.create_job(make_job("taken", submitted=5, scheduled=True))
    store.create_job(make_job("canceled-before-taken", submitted=5, state=JobState.CANCELED))
    claimed_later = store.create_job(make_job("claimed-later", submitted=1))
    claimed_later.scheduled = True
    store.replace_job(claimed_later)
    unscheduled = store.unscheduled_jobs(at(60))
    assert isinstance(unscheduled, Iterator), "streamed, not collected into a list"
    assert list(unscheduled) == [(WS, "lost-submit"), (OTHER_WS, "lost-at-cutoff")]


def test_job_ids_with_any_characters_are_kept_apart(store: Store) -> None:
    ids = ["a/b", "a#b", "a?b", "a\\b", "a b", "ä", "a:b", "cluster:gpu-1", "gpu-1"]
    for job_id in ids:
        store.create_job(make_job(job_id))
    store.create_cluster(make_cluster("gpu-1"))  # a job and a cluster may share a name
    assert {stored_job(store, job_id).id for job_id in ids} == set(ids)
    assert sorted(j.id for j in store.list_jobs(WS)) == sorted(ids)
    assert stored_cluster(store, "gpu-1").name == "gpu-1"


# --- concurrency -----------------------------------------------------------------------------------------------
def test_racing_read_modify_writes_one_wins_each_round_and_no_update_is_lost(store: Store) -> None:
    rounds = 4
    store.create_cluster(make_cluster())
    both_ready = threading.Barrier(2, timeout=30)
    first_tries: list[list[str]] = [[] for _ in range(rounds)]
    record = threading.Lock()

    def apply(cluster: Cluster, change: str) -> None:
        cluster.node_seq += 1
        cluster.record_applied(change)

    def save_with_fresh_state(change: str) -> None:
        """What a handler does after losing a race: read again, change again, write again."""
        for _ in range(20):
            cluster = stored_cluster(store)
            apply(cluster, change)
            try:
                store.replace_cluster(cluster)
                return
            except ConcurrencyConflict:
                continue
        raise AssertionError(f"{change} never saved")

    def worker(worker_id: int) -> None:
        for round_no in range(rounds):
            change = f"w{worker_id}-r{round_no}"
            both_ready.wait()
            cluster = stored_cluster(store)  # both read the same version...
            both_ready.wait()  # ...before either writes
            apply(cluster, change)
            try:
                store.replace_cluster(cluster)
                outcome = "won"
            except ConcurrencyConflict:
                outcome = "lost"
                save_with_fresh_state(change)
            with record:
                first_tries[round_no].append(outcome)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for finished in [pool.submit(worker, 0), pool.submit(worker, 1)]:
            finished.result()

    assert all(sorted(outcomes) == ["lost", "won"] for outcomes in first_tries), first_tries
    final = stored_cluster(store)
    assert final.node_seq == 2 * rounds
    assert sorted(final.applied_keys()) == sorted(applied_event_key(f"w{w}-r{r}") for w in range(2)
                                                  for r in range(rounds))


# --- quota ledgers ---------------------------------------------------------------------------------------------
def make_ledger(region: str = "eastus", vcpus: int = 12) -> QuotaLedger:
    return QuotaLedger(region=region, allocations={
        f"{WS}/gpu-1": Allocation(family="NCv3", priority="dedicated", vcpus=vcpus),
        f"{OTHER_WS}/cpu-1": Allocation(family="Dv2", priority="lowpriority", vcpus=4)})


def test_a_new_quota_ledger_is_created_and_reads_back_equal(store: Store) -> None:
    assert store.get_quota_ledger("eastus") is None
    saved = store.save_quota_ledger(make_ledger())
    loaded = store.get_quota_ledger("eastus")
    assert saved.etag is not None and loaded is not None and loaded.etag == saved.etag
    assert loaded.model_dump() == make_ledger().model_dump()
    assert store.get_quota_ledger("westeurope") is None


def test_a_second_first_quota_ledger_of_a_region_raises_conflict(store: Store) -> None:
    store.save_quota_ledger(make_ledger(vcpus=12))
    with pytest.raises(ConcurrencyConflict):
        store.save_quota_ledger(make_ledger(vcpus=24))
    loaded = store.get_quota_ledger("eastus")
    assert loaded is not None and loaded.held_by(f"{WS}/gpu-1") == 12


def test_a_quota_ledger_saved_from_a_stale_read_raises_conflict_and_is_unchanged(store: Store) -> None:
    store.save_quota_ledger(make_ledger())
    mine, theirs = store.get_quota_ledger("eastus"), store.get_quota_ledger("eastus")
    assert mine is not None and theirs is not None
    theirs.allocations.pop(f"{OTHER_WS}/cpu-1")
    store.save_quota_ledger(theirs)
    mine.allocations.clear()
    with pytest.raises(ConcurrencyConflict):
        store.save_quota_ledger(mine)
    loaded = store.get_quota_ledger("eastus")
    assert loaded is not None and loaded.model_dump() == theirs.model_dump() and loaded.etag == theirs.etag


def test_quota_ledgers_never_appear_among_clusters_or_jobs(store: Store) -> None:
    store.save_quota_ledger(make_ledger(region=WS))  # even a region spelled like a workspace
    store.create_cluster(make_cluster(due=at(0)))
    assert [c.name for c in store.list_clusters(WS)] == ["gpu-1"]
    assert store.list_jobs(WS) == []
    assert list(store.due_clusters(at(10))) == [(WS, "gpu-1")]
    assert list(store.unscheduled_jobs(at(10))) == []


# --- tombstones of deleted clusters --------------------------------------------------------------------------------
def test_a_tombstone_reads_back_equal_and_a_stale_save_raises_conflict(store: Store) -> None:
    cluster = make_cluster()
    cluster.created_by_event = "create-1"
    for event_id in ("create-1", "update-1", "delete-1"):
        cluster.record_applied(event_id)
    assert store.get_tombstone(WS, "gpu-1") is None
    first = bury(None, cluster, T0)
    assert first is not None
    saved = store.save_tombstone(first)
    loaded = store.get_tombstone(WS, "gpu-1")
    assert loaded is not None and loaded.etag == saved.etag and loaded.model_dump() == first.model_dump()
    assert loaded.knows("delete-1", T0) and not loaded.knows("delete-2", T0)
    assert store.get_tombstone(OTHER_WS, "gpu-1") is None
    with pytest.raises(ConcurrencyConflict):  # a second first tombstone of the name, from another deletion
        store.save_tombstone(first.model_copy(update={"etag": None, "incarnations": first.incarnations * 2}))

    again = store.get_tombstone(WS, "gpu-1")
    assert again is not None
    later = make_cluster()
    later.uid = "fedcba654321"
    for event_id in ("create-2", "delete-2"):
        later.record_applied(event_id)
    second = bury(again, later, T0)
    assert second is not None
    store.save_tombstone(second)
    with pytest.raises(ConcurrencyConflict):  # saved from the first read, after someone else's save
        store.save_tombstone(loaded)
    final = store.get_tombstone(WS, "gpu-1")
    assert final is not None and final.knows("delete-1", T0) and final.knows("delete-2", T0)


def test_a_node_history_archive_reads_back_equal_and_a_stale_save_raises_conflict(store: Store) -> None:
    cluster = make_cluster()
    assert store.get_node_history_archive(WS, "gpu-1") is None
    first = archived(None, WS, "gpu-1", cluster.uid, "1767225600000,0,1;-60000,1")
    saved = store.save_node_history_archive(first)
    loaded = store.get_node_history_archive(WS, "gpu-1")
    assert loaded is not None and loaded.etag == saved.etag and loaded.model_dump() == first.model_dump()
    assert store.get_node_history_archive(OTHER_WS, "gpu-1") is None
    with pytest.raises(ConcurrencyConflict):  # a second first archive, from a move that raced this one
        store.save_node_history_archive(first.model_copy(update={"etag": None, "node_history": "1767225600000,2"}))
    store.save_node_history_archive(archived(loaded, WS, "gpu-1", cluster.uid, "1767225720000,0,0,1"))
    with pytest.raises(ConcurrencyConflict):  # saved from the first read, after someone else's save
        store.save_node_history_archive(loaded)
    final = store.get_node_history_archive(WS, "gpu-1")
    assert final is not None and len(samples_of(final.node_history)) == 3
    assert store.list_clusters(WS) == [] and list(store.due_clusters(at(10**6))) == []  # never taken for a cluster


def test_tombstones_never_appear_among_clusters(store: Store) -> None:
    store.create_cluster(make_cluster("live"))
    gone = bury(None, make_cluster("gone"), T0)
    assert gone is not None
    store.save_tombstone(gone)
    assert [c.name for c in store.list_clusters(WS)] == ["live"]
    assert store.get_cluster(WS, "gone") is None


# --- the Cosmos adapter's own choices --------------------------------------------------------------------------
def test_cosmos_store_connects_on_first_use_once(cosmosdb_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[str] = []
    real_create = cosmos_client.create_cosmos_client

    def counting_create(endpoint: str, credential: cosmos_client.CosmosCredential,
                        transport: object = None) -> CosmosClient:
        created.append(endpoint)
        return real_create(endpoint, credential, transport)

    monkeypatch.setattr(cosmos_store, "create_cosmos_client", counting_create)
    store = CosmosStore(cosmosdb_endpoint, EMULATOR_KEY, database=f"lazy-{uuid.uuid4().hex[:12]}", container="state")
    try:
        assert created == []
        store.create_cluster(make_cluster())
        stored_cluster(store)
        assert store.list_clusters(WS) != []
        assert created == [cosmosdb_endpoint]
    finally:
        store.close()


def test_cosmos_transient_failures_are_retried_then_become_transient_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cosmos_client, "READ_BACKOFF_INITIAL_SECONDS", 0)
    monkeypatch.setattr(cosmos_client, "READ_BACKOFF_MAX_SECONDS", 0)
    answers = [cosmos_error(429), cosmos_error(503)]

    def flaky() -> str:
        if answers:
            raise answers.pop(0)
        return "read"

    assert retry_read("read", flaky) == "read"

    calls: list[int] = []

    def always_timing_out() -> str:
        calls.append(1)
        raise cosmos_error(408)

    with pytest.raises(TransientError):
        retry_read("read", always_timing_out)
    assert len(calls) == cosmos_client.READ_ATTEMPTS

    def bad_request() -> str:
        calls.append(1)
        raise cosmos_error(400)

    calls.clear()
    with pytest.raises(CosmosHttpResponseError):
        retry_read("read", bad_request)
    assert len(calls) == 1, "a permanent error is not retried"


def test_cosmos_credential_is_the_emulator_key_locally_and_the_shared_managed_identity_in_azure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert cosmos_credential(Settings(cosmos_endpoint="https://localhost:8081/")) == EMULATOR_KEY
    assert cosmos_credential(Settings(cosmos_endpoint="https://127.0.0.1:3000")) == EMULATOR_KEY
    azure = "https://computeplane.documents.azure.com:443/"
    forget_credentials()
    assert isinstance(cosmos_credential(Settings(cosmos_endpoint=azure)), DefaultAzureCredential)  # a developer
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://localhost:42356/msi/token")  # what a Function App has
    client_id = str(uuid.uuid4())
    user_assigned = cosmos_credential(Settings(cosmos_endpoint=azure, azure_client_id=client_id))
    assert isinstance(user_assigned, ManagedIdentityCredential)
    # One credential per identity for the process, shared by every Azure client: tokens are cached by the SDK.
    assert cosmos_credential(Settings(cosmos_endpoint=azure, azure_client_id=client_id)) is user_assigned
    assert azure_credential(client_id) is user_assigned
    forget_credentials()
    with pytest.raises(ValueError, match="COSMOS__accountEndpoint"):
        cosmos_credential(Settings())


def test_cosmos_document_envelope_never_overwrites_a_model_field() -> None:
    """``id``/``type``/``job_id`` wrap the model's fields; only Job.id is displaced, on purpose, into job_id."""
    assert not ENVELOPE_FIELDS & Cluster.model_fields.keys()
    assert ENVELOPE_FIELDS & Job.model_fields.keys() == {"id"}
    assert not LEDGER_ENVELOPE_FIELDS & QuotaLedger.model_fields.keys()


def test_cosmos_documents_leave_defaults_out_but_keep_the_fields_queries_filter_on() -> None:
    """Writes are charged by size: a queued job's nulls and zeros are left out, and read back as they were. Its state
    and ``scheduled`` stay, at their defaults too: without them it would drop out of the timer's query."""
    job = make_job("j-1")
    document = cosmos_store.job_document(job)
    assert (document["state"], document["scheduled"]) == ("Queued", False)
    assert not {"exit_code", "started_at", "history", "attempts"} & document.keys()
    assert None not in document["spec"].values()
    assert cosmos_store.job_from_document({**document, "_etag": "e"}) == job.model_copy(update={"etag": "e"})
    cluster = make_cluster()
    document = cosmos_store.cluster_document(cluster)
    assert not {"jobs", "errors", "quota_settle_by", "identity"} & document.keys()
    assert cosmos_store.cluster_from_document({**document, "_etag": "e"}) == cluster.model_copy(update={"etag": "e"})


def cosmos_error(status: int) -> CosmosHttpResponseError:
    return CosmosHttpResponseError(status_code=status, message=f"HTTP {status}")  # type: ignore[no-untyped-call]

