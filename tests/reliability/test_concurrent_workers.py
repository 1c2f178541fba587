"""Two and four workers consuming the same queues against the same store at once (a SQLite file; the Cosmos DB
API of @vercel/cosmosdb-server), each with its own connections and local provider: no lost update, no event
applied twice, no job run twice, quota never exceeded, every invariant holds at the end."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.adapters.sqlite_connections import connect
from shared.domain.cluster import applied_event_key
from shared.domain.job import JobSpec
from shared.domain.requests import ClusterCreate
from shared.handlers import use_cases
from shared.ports import Store
from tests.reliability.invariants import LocalProviderView, check_invariants, check_scaled_down
from tests.reliability.workers import QUOTA_VCPUS, Worker

WORKSPACE = "default"
CLUSTERS = ("alpha", "beta", "gamma")
JOBS_PER_CLUSTER = 10
QUICK = ["python", "-c", "pass"]
SLOW = ["python", "-c", "import time; time.sleep(120)"]  # canceled once running: long enough to outlast a busy CI


class NodeCountMonitor:
    """Samples how many nodes the provider holds in the region, to check quota at every moment."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / "provider.db"
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        conn = connect(self._path)
        while not self._stop.wait(0.01):
            self.most = max(self.most, int(conn.execute("SELECT COUNT(*) FROM nodes").fetchone()[0]))

    def __enter__(self) -> NodeCountMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _states(store: Store) -> dict[str, int]:
    return dict(Counter(j.state.value for j in store.list_jobs(WORKSPACE)))


def _submit_all(api: Worker) -> tuple[list[str], list[str]]:
    """Jobs for every cluster from one thread per cluster, at once; every fifth is a long one, canceled later."""
    quick: list[str] = []
    slow: list[str] = []

    def submit(cluster: str) -> None:
        for n in range(JOBS_PER_CLUSTER):
            command = SLOW if n % 5 == 4 else QUICK
            job, _ = use_cases.submit_job(api.deps, WORKSPACE, cluster, JobSpec(command=command, max_retries=0))
            (slow if command is SLOW else quick).append(job.id)

    threads = [threading.Thread(target=submit, args=(c,)) for c in CLUSTERS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return quick, slow


def _wait(predicate: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what()}")


def _cancel_once_running(api: Worker, slow: list[str]) -> Callable[[], bool]:
    """Cancels each long job once it runs (so cancels hit running jobs); True when all are canceled."""
    left = set(slow)

    def step() -> bool:
        for job_id in sorted(left):
            job = api.deps.store.get_job(WORKSPACE, job_id)
            if job is not None and job.state.value == "Running":
                use_cases.cancel_job(api.deps, WORKSPACE, job_id)
                left.discard(job_id)
        return not left

    return step


@pytest.mark.parametrize(("store", "workers", "sessions"), [
    ("sqlite", 2, True), ("sqlite", 4, True), ("sqlite", 2, False), ("sqlite", 4, False), ("cosmos", 2, False),
    ("cosmos", 4, False)],
    ids=["sqlite-2-sessions", "sqlite-4-sessions", "sqlite-2-no-sessions", "sqlite-4-no-sessions",
         "cosmos-2-no-sessions", "cosmos-4-no-sessions"])
def test_workers_sharing_one_store_lose_no_update(tmp_path: Path, workers: int, sessions: bool, store: str,
                                                   request: pytest.FixtureRequest) -> None:
    applied: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()
    cosmos = (request.getfixturevalue("cosmosdb_endpoint"), f"workers-{uuid.uuid4().hex[:8]}") \
        if store == "cosmos" else None
    pool = [Worker(tmp_path, f"w{n}", applied, lock, sessions, cosmos) for n in range(workers)]
    api = Worker(tmp_path, "api", applied, lock, sessions, cosmos)
    documents = api.container.deps.store
    for cluster in CLUSTERS:
        use_cases.create_cluster(api.deps, WORKSPACE, ClusterCreate(
            name=cluster, vm_size="STANDARD_D2_V2", max_nodes=3, idle_seconds_before_scaledown=1))
    for worker in pool:
        worker.start()
    try:
        with NodeCountMonitor(tmp_path) as monitor:
            quick, slow = _submit_all(api)
            _wait(_cancel_once_running(api, slow), 90, lambda: f"long jobs to run: {_states(documents)}")
            _wait(lambda: all(j.state.is_terminal for j in documents.list_jobs(WORKSPACE)), 60,
                  lambda: f"every job to end: {_states(documents)}")
            _wait(lambda: not any(c.nodes for c in documents.list_clusters(WORKSPACE)), 30,
                  lambda: f"idle nodes to go: {[c.node_state_counts() for c in documents.list_clusters(WORKSPACE)]}")
    finally:
        for worker in pool:
            worker.stop()
    jobs = {j.id: j for j in documents.list_jobs(WORKSPACE)}
    assert len(jobs) == len(CLUSTERS) * JOBS_PER_CLUSTER  # no job lost
    assert {jobs[j].state.value for j in quick} == {"Completed"}, [  # with the run's log, to tell why
        (j, jobs[j].state.value, jobs[j].reason, api.container.provider.read_logs(j, jobs[j].attempts))
        for j in quick if jobs[j].state.value != "Completed"]
    assert {jobs[j].state.value for j in slow} == {"Canceled"}, [
        (j, jobs[j].state.value, jobs[j].reason) for j in slow if jobs[j].state.value != "Canceled"]
    assert all(count == 1 for count in applied.values()), [e for e, n in applied.items() if n > 1]
    submits = {applied_event_key(f"submit-{j}") for j in jobs}
    assert submits <= {e for _, e in applied}  # no lost update dropped a submit
    assert 0 < monitor.most * 2 <= QUOTA_VCPUS  # STANDARD_D2_V2 has 2 vCPUs; 0 would mean the monitor died
    with connect(tmp_path / "provider.db") as runs:
        assert runs.execute("SELECT job_id FROM runs WHERE node_ids != '[]' "  # (not a stop that came first)
                            "GROUP BY job_id HAVING COUNT(*) > 1").fetchall() == []
    assert api.container.queue is not None and api.container.queue.dead_letters() == []
    view = LocalProviderView(tmp_path)
    assert check_invariants(documents, view, WORKSPACE, settled=True) == []
    assert check_scaled_down(documents, view, WORKSPACE) == []
