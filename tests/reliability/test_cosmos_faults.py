"""The Cosmos DB store while Cosmos is failing, through fault-injecting HTTP transports in front of
@vercel/cosmosdb-server (which itself never fails): a connection that drops requests, and answers Azure sends when
it is busy or failing (429 with ``x-ms-retry-after-ms``, 503, 408, a read timeout), also after a write was applied.
Nothing is lost, nothing is written twice, and a failure that outlasts every retry surfaces as a transient one.

What the SDK (azure-cosmos 4.17) retries by itself with ``shared.adapters.cosmos_client``'s options, on a
single-region account such as the local server (read from its ``_retry_utility`` and retry policies, and observed
through the transport; the tests assert what the store and the handlers rely on):

- 429, reads and writes: up to ``SDK_RETRY_TOTAL`` retries, each after the ``x-ms-retry-after-ms`` the service
  advertised, while their sum stays under ``SDK_RETRY_BACKOFF_MAX_SECONDS``. A query nests two such loops (its
  page fetch and the request), so a query gets up to (SDK_RETRY_TOTAL + 1)² attempts.
- 503, reads and writes: one retry after 500 ms (fixed in the SDK). A write retried this way whose first attempt
  did land answers 409 (create) or 412 (conditional replace): the store reports ``AlreadyExists`` /
  ``ConcurrencyConflict``, and the handlers treat both as "look again".
- 408 and read timeouts: reads are retried (408: once, after 500 ms); writes never, since they may have been applied.
- A connection that could not be made: up to 3 retries (azure-core's ``retry_connect``), reads and writes.
- Then ours: ``retry_read`` runs a read ``READ_ATTEMPTS`` times; anything still failing leaves the store as
  ``TransientError``, and a queue message is redelivered, never dead-lettered for it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline.transport import RequestsTransport

from computeplane.client import ComputePlaneClient
from shared.adapters.cosmos_client import EMULATOR_KEY, READ_ATTEMPTS, SDK_RETRY_TOTAL
from shared.adapters.cosmos_store import CosmosStore
from shared.api import app as api_app
from shared.bootstrap import Container
from shared.config import Settings
from shared.domain.cluster import ClusterSpec
from shared.domain.cluster_changes import new_cluster
from shared.domain.errors import ConcurrencyConflict, TransientError
from shared.domain.job import Job, JobSpec
from tests.contract.uvicorn_server import running_uvicorn
from tests.reliability.cosmos_transport import (
    APPLIED_RESPONSE_LOST,
    APPLIED_THEN_TIMEOUT,
    APPLIED_THEN_UNAVAILABLE,
    READ_TIMEOUT,
    REQUEST_TIMEOUT,
    THROTTLED,
    THROTTLED_SUBSTATUS,
    UNAVAILABLE,
    CosmosRequest,
    Fault,
    FaultyCosmosTransport,
)
from tests.reliability.faults import FaultyStore
from tests.reliability.ledger import LedgerStore
from tests.reliability.world import WORKSPACE, World

# The client of a module-scoped store outlives the per-test warning filter cosmos_client installs for loopback hosts.
pytestmark = pytest.mark.filterwarnings("ignore:Unverified HTTPS request is being made to host '127.0.0.1'")

T0 = datetime(2026, 5, 1, tzinfo=UTC)
RETRY_AFTER_MS = 10  # what the injected 429s advertise: short, so the tests stay fast
SPEC = ClusterSpec(vm_size="Standard_D2_v2", max_nodes=4)


def _database() -> str:
    return f"faults-{uuid.uuid4().hex[:8]}"


def _job(job_id: str, workspace: str = "ws", cluster: str = "flaky") -> Job:
    return Job(workspace=workspace, id=job_id, cluster=cluster, spec=JobSpec(command=["true"]), submitted_at=T0)


def _writes(request: CosmosRequest) -> bool:
    return request.is_document and request.is_write


def _operation(name: str) -> Callable[[CosmosRequest], bool]:
    return lambda request: request.is_document and request.operation == name


def _waits_after(transport: FaultyCosmosTransport, fault: Fault) -> list[float]:
    """Seconds between each ``fault`` answer and the SDK's next attempt of the same request."""
    exchanges = transport.exchanges
    waits: list[float] = []
    for n, faulted in enumerate(exchanges):
        if faulted.fault != fault:
            continue
        key = (faulted.request.method, faulted.request.path, faulted.request.body)
        retry = next((e for e in exchanges[n + 1:] if (e.request.method, e.request.path, e.request.body) == key),
                     None)
        if retry is not None:
            waits.append(retry.started - faulted.ended)
    return waits


def _open(endpoint: str) -> tuple[CosmosStore, FaultyCosmosTransport]:
    transport = FaultyCosmosTransport(retry_after_ms=RETRY_AFTER_MS)
    store = CosmosStore(endpoint, EMULATOR_KEY, database=_database(), container="state", transport=transport)
    store.get_cluster("ws", "warm-up")  # opens the database and container before any fault is armed
    transport.reset_log()
    return store, transport


@pytest.fixture(scope="module")
def shared_cosmos(cosmosdb_endpoint: str) -> Iterator[tuple[CosmosStore, FaultyCosmosTransport]]:
    """One database (and client) for the store-level tests: each has a workspace (partition) of its own."""
    store, transport = _open(cosmosdb_endpoint)
    yield store, transport
    store.close()


@pytest.fixture
def transport(shared_cosmos: tuple[CosmosStore, FaultyCosmosTransport]) -> Iterator[FaultyCosmosTransport]:
    transport = shared_cosmos[1]
    transport.heal()
    transport.reset_log()
    yield transport
    transport.heal()


@pytest.fixture
def store(shared_cosmos: tuple[CosmosStore, FaultyCosmosTransport], transport: FaultyCosmosTransport) -> CosmosStore:
    return shared_cosmos[0]


@pytest.fixture
def ws() -> str:
    return f"ws-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def world_cosmos(cosmosdb_endpoint: str) -> Iterator[tuple[CosmosStore, FaultyCosmosTransport]]:
    store, transport = _open(cosmosdb_endpoint)  # a database of its own: the timer's sweep reads every partition
    yield store, transport
    store.close()


@pytest.fixture
def faults(world_cosmos: tuple[CosmosStore, FaultyCosmosTransport]) -> FaultyCosmosTransport:
    """The transport under the world's store."""
    return world_cosmos[1]


@pytest.fixture
def world(tmp_path: Path, world_cosmos: tuple[CosmosStore, FaultyCosmosTransport]) -> World:
    """The whole control plane of ``tests.reliability.world`` (real handlers, fake clock, broker and provider), with
    its state in Cosmos through ``faults``."""
    store = world_cosmos[0]
    world = World(tmp_path)
    world.store = store  # type: ignore[assignment]  # the World's checks read the store through the Store port
    world.ledger = LedgerStore(store)
    world.deps = dataclasses.replace(world.deps, store=FaultyStore(world.ledger, world.plan))
    return world


@pytest.fixture
def http(world: World) -> Iterator[httpx.Client]:
    """The HTTP API under uvicorn, on the world's handlers. No API keys (auth is not under test here)."""
    served = Container(settings=Settings(), deps=world.deps)  # no API keys
    app = api_app.create_app(lambda: served)
    # A connection per request: after an unhandled exception (a 500) uvicorn drops the connection it came on.
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    with running_uvicorn(app) as url, httpx.Client(base_url=url, timeout=30, limits=no_reuse) as client:
        yield client


# --- connection failures --------------------------------------------------------------------------------------------
class DroppingTransport(RequestsTransport):
    """Fails every ``period``-th request with a connection error (the request never reached the server)."""

    def __init__(self, period: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.period, self.sent, self.dropped = period, 0, 0
        self._lock = threading.Lock()

    def send(self, request: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.sent += 1
            drop = self.sent % self.period == 0
            self.dropped += drop
        if drop:
            raise ServiceRequestError("injected: connection reset before the request was sent")
        return super().send(request, **kwargs)


def test_a_flaky_connection_to_cosmos_loses_and_duplicates_nothing(cosmosdb_endpoint: str) -> None:
    transport = DroppingTransport(period=3, connection_verify=False)
    store = CosmosStore(cosmosdb_endpoint, EMULATOR_KEY, database=_database(), container="state",
                        transport=transport)
    cluster = store.create_cluster(new_cluster("ws", "flaky", SPEC, uuid.uuid4().hex, T0))
    for n in range(15):  # conditional read-modify-writes, each through the faulty connection
        cluster = store.get_cluster("ws", "flaky") or cluster
        cluster.node_seq = n + 1
        cluster = store.replace_cluster(cluster)
    for n in range(10):
        store.create_job(_job(f"job-{n}"))
    assert transport.dropped >= 10  # the faults really happened
    final = store.get_cluster("ws", "flaky")
    assert final is not None and final.node_seq == 15  # no update lost
    assert sorted(j.id for j in store.list_jobs("ws", "flaky")) == sorted(f"job-{n}" for n in range(10))  # none twice
    store.close()


# --- throttling (429) -----------------------------------------------------------------------------------------------
def test_throttled_requests_are_retried_after_the_advertised_wait_and_nothing_is_lost_or_doubled(
        store: CosmosStore, transport: FaultyCosmosTransport, ws: str) -> None:
    transport.fail(THROTTLED, attempts=2)  # every document request is answered 429 twice, then goes through
    cluster = store.create_cluster(new_cluster(ws, "flaky", SPEC, uuid.uuid4().hex, T0))
    for n in range(4):
        cluster = store.get_cluster(ws, "flaky") or cluster
        cluster.node_seq = n + 1
        cluster = store.replace_cluster(cluster)
    for n in range(3):
        store.create_job(_job(f"job-{n}", ws))
    jobs = store.list_jobs(ws, "flaky")
    due = [(w, name) for w, name in store.due_clusters(T0) if w == ws]
    transport.heal()
    throttled, forwarded = transport.faulted(THROTTLED), transport.forwarded()
    waits = _waits_after(transport, THROTTLED)

    assert {e.request.operation for e in forwarded} >= {"Create", "Read", "Replace", "SqlQuery"}
    assert len(throttled) == 2 * len(forwarded)  # each went through on its third attempt
    assert len(waits) == len(throttled) and min(waits) >= RETRY_AFTER_MS / 1000  # the SDK waited what 429 asked
    final = store.get_cluster(ws, "flaky")
    assert final is not None and final.node_seq == 4  # no update lost
    assert sorted(j.id for j in jobs) == ["job-0", "job-1", "job-2"]  # none twice
    assert due == [(ws, "flaky")]


def test_a_throttling_burst_shorter_than_the_sdk_budget_is_waited_out_unseen_by_the_caller(
        store: CosmosStore, transport: FaultyCosmosTransport, ws: str) -> None:
    store.create_job(_job("steady", ws))
    transport.reset_log()
    transport.fail(THROTTLED, seconds=0.05)  # every document request, for 50 ms (< 9 waits of 10 ms)
    job = store.get_job(ws, "steady")
    transport.heal()

    assert job is not None and job.id == "steady"
    assert len(transport.forwarded()) == 1  # the one attempt after the throttling, answered
    assert 1 <= len(transport.faulted(THROTTLED)) <= SDK_RETRY_TOTAL


def test_a_write_throttled_past_the_sdk_budget_fails_as_transient_and_writes_nothing(
        store: CosmosStore, transport: FaultyCosmosTransport, ws: str) -> None:
    """Once the SDK gives up, the store's caller sees a transient error carrying what Cosmos answered."""
    transport.fail(THROTTLED, when=_writes)
    started = time.monotonic()
    with pytest.raises(TransientError, match="429") as raised:
        store.create_job(_job("refused", ws))
    elapsed = time.monotonic() - started
    transport.heal()

    error = raised.value.__cause__
    assert getattr(error, "status_code", None) == 429 and getattr(error, "sub_status", None) == THROTTLED_SUBSTATUS
    assert getattr(error, "headers", {}).get("x-ms-retry-after-ms") == str(RETRY_AFTER_MS)
    # Writes: the SDK's own budget only, SDK_RETRY_TOTAL retries, each after the advertised wait.
    assert len(transport.faulted(THROTTLED)) == SDK_RETRY_TOTAL + 1
    assert elapsed >= SDK_RETRY_TOTAL * RETRY_AFTER_MS / 1000
    assert store.get_job(ws, "refused") is None  # a 429 means nothing was written


def test_jobs_submitted_through_the_handlers_while_cosmos_throttles_all_end_correctly(
        world: World, faults: FaultyCosmosTransport) -> None:
    faults.fail(THROTTLED, attempts=1)  # for the whole run: every document request waits out one 429
    world.http_create("throttled", max_nodes=1, idle=5)
    job_id = world.http_submit("throttled", seconds=2)
    world.settle(40)
    faults.heal()
    throttled, forwarded = faults.faulted(THROTTLED), faults.forwarded()
    waits = _waits_after(faults, THROTTLED)

    assert len(throttled) == len(forwarded) > 20  # every store call of every handler on the way was throttled
    assert len(waits) == len(throttled) and min(waits) >= RETRY_AFTER_MS / 1000
    assert world.stats.handler_failures == 0  # the SDK absorbed every 429: no message needed a redelivery
    jobs = world.jobs()
    assert list(jobs) == [job_id] and jobs[job_id].state.value == "Completed"  # not lost, not twice
    assert world.broker.dead_letters == []
    assert world.broken_promises(settled=True, scaled_down=True) == []  # includes: no event applied twice


def test_throttling_longer_than_the_retry_budget_redelivers_the_message_and_dead_letters_nothing(
        world: World, faults: FaultyCosmosTransport) -> None:
    faults.fail(THROTTLED)  # until healed
    world.create("patient", max_nodes=1)
    started = time.monotonic()
    assert world.deliver_one()
    elapsed = time.monotonic() - started

    assert world.stats.failure_kinds == {"TransientError": 1}  # abandoned for redelivery: not a permanent failure
    assert world.broker.dead_letters == []
    # The handler's first call is a point read: our READ_ATTEMPTS, each the SDK's 1 + SDK_RETRY_TOTAL attempts.
    assert len(faults.faulted(THROTTLED)) == READ_ATTEMPTS * (SDK_RETRY_TOTAL + 1)
    assert elapsed >= READ_ATTEMPTS * SDK_RETRY_TOTAL * RETRY_AFTER_MS / 1000
    assert faults.forwarded() == []

    faults.heal()
    world.settle(30)
    assert world.store.get_cluster(WORKSPACE, "patient") is not None
    assert world.broker.completed_ids["create-patient"] == 1
    assert world.broker.dead_letters == []
    assert world.broken_promises(settled=True) == []


def test_a_create_refused_over_http_while_throttled_answers_503_and_is_created_once_when_the_user_retries(
        http: httpx.Client, faults: FaultyCosmosTransport, world: World) -> None:
    body = {"name": "busy", "vm_size": "STANDARD_D2_V2", "max_nodes": 2}
    faults.fail(THROTTLED, when=_writes)  # the command's read passes; its create is throttled past the budget
    refused = http.post("/api/workspaces/ws/clusters", json=body)
    faults.heal()
    assert faults.faulted(THROTTLED)
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"].startswith("application/json")
    assert int(refused.headers["Retry-After"]) >= 1
    error = refused.json()["error"]
    assert error["code"] and error["message"] and "Traceback" not in refused.text
    assert world.store.get_cluster(WORKSPACE, "busy") is None and world.broker.stats.published == 0

    retried = http.post("/api/workspaces/ws/clusters", json=body)
    assert retried.status_code == 202, retried.text
    again = http.post("/api/workspaces/ws/clusters", json=body)
    assert again.status_code == 200  # get-or-create: the same request is a no-op
    assert [c.name for c in world.store.list_clusters(WORKSPACE)] == ["busy"]


# --- unavailable (503), request timeout (408), no answer in time ----------------------------------------------------
# (fault, operation) -> does the SDK retry it by itself? Writes that timed out are not retried: they may have landed.
# (A query goes through the same policies as a point read.)
RETRIED_BY_THE_SDK = {
    (UNAVAILABLE, "Read"): True, (UNAVAILABLE, "Create"): True, (UNAVAILABLE, "Replace"): True,
    (REQUEST_TIMEOUT, "Read"): True, (REQUEST_TIMEOUT, "Create"): False, (REQUEST_TIMEOUT, "Replace"): False,
    (READ_TIMEOUT, "Read"): True, (READ_TIMEOUT, "Create"): False, (READ_TIMEOUT, "Replace"): False,
}


@pytest.mark.parametrize("fault", [UNAVAILABLE, REQUEST_TIMEOUT, READ_TIMEOUT], ids=lambda f: f.name)
def test_a_request_refused_once_is_retried_by_the_sdk_or_surfaces_as_transient(
        store: CosmosStore, transport: FaultyCosmosTransport, ws: str, fault: Fault) -> None:
    cluster = store.create_cluster(new_cluster(ws, "flaky", SPEC, uuid.uuid4().hex, T0))
    outcomes: dict[str, str] = {}

    def once(operation: str, call: Callable[[], object]) -> None:
        transport.fail(fault, requests=1, when=_operation(operation))
        try:
            call()
            outcomes[operation] = "ok"
        except TransientError:
            outcomes[operation] = "transient"
        transport.heal()

    once("Read", lambda: store.get_cluster(ws, "flaky"))
    once("Create", lambda: store.create_job(_job("job-1", ws)))
    cluster.node_seq = 7
    once("Replace", lambda: store.replace_cluster(cluster))

    assert len(transport.faulted(fault)) == 3
    expected = {op: "ok" if RETRIED_BY_THE_SDK[(fault, op)] else "transient" for op in outcomes}
    assert outcomes == expected
    # Refused before reaching the server: a write the SDK did not retry was not applied, and nothing was applied twice.
    written = expected["Create"] == "ok"
    assert [j.id for j in store.list_jobs(ws)] == (["job-1"] if written else [])
    final = store.get_cluster(ws, "flaky")
    assert final is not None and final.node_seq == (7 if expected["Replace"] == "ok" else 0)


# --- writes applied, but the answer is an error -------------------------------------------------------------------
@pytest.mark.parametrize("fault", [APPLIED_THEN_UNAVAILABLE, APPLIED_THEN_TIMEOUT, APPLIED_RESPONSE_LOST],
                         ids=lambda f: f.name)
def test_the_store_recognises_its_own_write_that_landed_or_reports_a_transient_error(
        store: CosmosStore, transport: FaultyCosmosTransport, ws: str, fault: Fault) -> None:
    """After a 503 the SDK sends the write again: it answers 409 (create) or 412 (replace), because the first
    attempt landed; the store reads the document, finds exactly what it sent, and reports success with the
    stored etag. After a 408 or a lost answer the SDK does not retry: the caller gets a transient error. Either
    way the write is there, once, and no caller is told it succeeded with an etag that is not the stored one."""
    cluster = store.create_cluster(new_cluster(ws, "flaky", SPEC, uuid.uuid4().hex, T0))
    transport.reset_log()
    transport.fail(fault, requests=1, when=_operation("Create"))
    cluster.node_seq = 7
    if fault is APPLIED_THEN_UNAVAILABLE:
        created = store.create_job(_job("job-1", ws))
        transport.fail(fault, requests=1, when=_operation("Replace"))
        replaced = store.replace_cluster(cluster)
        assert [e.status for e in transport.forwarded(_writes)] == [409, 412]  # the retry met the first attempt
        stored_job, stored_cluster = store.get_job(ws, "job-1"), store.get_cluster(ws, "flaky")
        assert stored_job is not None and stored_job.etag == created.etag
        assert stored_cluster is not None and stored_cluster.etag == replaced.etag
    else:
        with pytest.raises(TransientError):
            store.create_job(_job("job-1", ws))
        transport.fail(fault, requests=1, when=_operation("Replace"))
        with pytest.raises(TransientError):
            store.replace_cluster(cluster)
        assert transport.forwarded(_writes) == []
    transport.heal()
    assert [j.id for j in store.list_jobs(ws)] == ["job-1"]
    final = store.get_cluster(ws, "flaky")
    assert final is not None and final.node_seq == 7


def test_a_write_refused_because_someone_else_wrote_is_still_a_conflict_after_a_503_retry(
        store: CosmosStore, transport: FaultyCosmosTransport, ws: str) -> None:
    """Recognising our own write must not hide another writer's: a stale replace stays a conflict."""
    mine = store.create_cluster(new_cluster(ws, "shared", SPEC, uuid.uuid4().hex, T0))
    theirs = store.get_cluster(ws, "shared")
    assert theirs is not None
    theirs.node_seq = 3
    store.replace_cluster(theirs)
    mine.node_seq = 5
    transport.fail(UNAVAILABLE, requests=1, when=_operation("Replace"))
    with pytest.raises(ConcurrencyConflict):
        store.replace_cluster(mine)
    transport.heal()
    final = store.get_cluster(ws, "shared")
    assert final is not None and final.node_seq == 3


@pytest.mark.parametrize("fault", [APPLIED_THEN_UNAVAILABLE, APPLIED_RESPONSE_LOST], ids=lambda f: f.name)
def test_event_handlers_lose_and_double_nothing_when_writes_land_but_their_answers_do_not(
        world: World, faults: FaultyCosmosTransport, fault: Fault) -> None:
    faults.fail(fault, requests=3, attempts=1, when=_writes)  # the cluster's create, the job's, the first replace
    world.create("landed", max_nodes=1, idle=5)
    world.submit("landed", "j1", seconds=2)
    world.settle(40)
    faults.heal()
    faulted, answers = faults.faulted(fault), [e.status or 0 for e in faults.forwarded(_writes)]

    assert sorted(e.request.operation for e in faulted) == ["Create", "Create", "Replace"]
    if fault is APPLIED_THEN_UNAVAILABLE:  # the SDK sent each again: the first attempt was there already
        assert sorted(answers[:3]) == [409, 409, 412]
    else:  # not retried by the SDK: the handler failed, the message came again and found the write done
        assert world.stats.failure_kinds == {"TransientError": 3}
    jobs = world.jobs()
    assert list(jobs) == ["j1"] and jobs["j1"].state.value == "Completed"
    assert [c.name for c in world.store.list_clusters(WORKSPACE)] == ["landed"]
    assert world.broker.dead_letters == []
    assert world.broken_promises(settled=True, scaled_down=True) == []  # includes: no event applied twice


def test_a_cluster_created_over_http_whose_create_landed_but_answered_503_is_provisioned_once(
        http: httpx.Client, faults: FaultyCosmosTransport, world: World) -> None:
    faults.fail(APPLIED_THEN_UNAVAILABLE, requests=1, when=_operation("Create"))
    response = http.post("/api/workspaces/ws/clusters",
                         json={"name": "landed", "vm_size": "STANDARD_D2_V2", "max_nodes": 1, "min_nodes": 1,
                               "idle_seconds_before_scaledown": 5})
    faults.heal()
    assert [e.status for e in faults.forwarded(_operation("Create"))] == [409]
    # The create landed and the SDK's retry answered 409: the store recognises its own document, so the command
    # answers 202 and publishes the create event as if nothing had happened.
    assert response.status_code == 202, response.text
    world.settle(120)
    [cluster] = world.store.list_clusters(WORKSPACE)
    assert cluster.name == "landed" and cluster.node_state_counts()["idle"] == 1
    assert world.broken_promises(settled=True) == []


def test_a_job_submitted_over_http_whose_create_landed_but_answered_503_is_accepted_once(
        http: httpx.Client, faults: FaultyCosmosTransport, world: World) -> None:
    world.http_create("landed", max_nodes=1, idle=5)
    faults.reset_log()
    faults.fail(APPLIED_THEN_UNAVAILABLE, requests=1, when=_operation("Create"))
    response = http.post("/api/workspaces/ws/clusters/landed/jobs", json={"command": ["python", "-c", "pass"]})
    faults.heal()
    assert [e.status for e in faults.forwarded(_operation("Create"))] == [409]
    [job] = world.jobs().values()  # stored once, whatever the answer
    assert response.status_code == 202, response.text
    assert response.json()["id"] == job.id


def test_the_client_sends_a_submit_whose_answer_was_lost_again_and_gets_one_job(
        http: httpx.Client, faults: FaultyCosmosTransport, world: World) -> None:
    """The job's create lands but its answer is lost: the API answers 503, the client sends the submit again with
    the same Idempotency-Key, and gets the job the first attempt stored. Without the key, that retry would have
    queued the job twice."""
    world.http_create("landed", max_nodes=1, idle=5)
    faults.reset_log()
    faults.fail(APPLIED_RESPONSE_LOST, requests=1, when=_operation("Create"))
    with ComputePlaneClient(str(http.base_url), workspace=WORKSPACE, api_key="") as client:
        submitted = client.submit_job("landed", ["python", "-c", "pass"],
                                      environment_variables={"FAKE_RUN_SECONDS": "2"})
    faults.heal()
    assert len(faults.faulted(APPLIED_RESPONSE_LOST)) == 1  # the first attempt's answer was lost
    [job] = world.jobs().values()
    assert submitted["id"] == job.id
    world.settle(40)
    assert world.jobs()[job.id].state.value == "Completed"
    assert world.broken_promises(settled=True) == []
