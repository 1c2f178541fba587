"""``computeplane serve`` killed with SIGKILL while it works, then started again on the same data directory: the
embedded queue and store lose nothing that was committed (every job answered 202 ends Completed), nothing is left
running twice, no node leaks."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx

from shared.adapters.clock import SystemClock
from shared.adapters.sqlite_queue import SqliteQueue
from shared.adapters.sqlite_store import SqliteStore
from tests.e2e.server import Server, start_server, wait_for
from tests.reliability.http import client, create_cluster, job, submit
from tests.reliability.invariants import LocalProviderView, check_invariants, check_scaled_down

SHORT = ["python", "-c", "import time; time.sleep(0.3)"]


def _all_completed(server: Server, job_ids: list[str]) -> None:
    with client(server) as http:
        def states() -> set[str] | None:
            seen = {job(http, j)["state"] for j in job_ids}
            return seen if seen <= {"Completed", "Failed", "Canceled"} else None

        assert wait_for(states, timeout=60, what="every accepted job to end") == {"Completed"}
        wait_for(lambda: http.get("/api/workspaces/default/clusters/durable").json()["current_node_count"] == 0,
                 timeout=30, what="the nodes to go")


def _stored_job_ids(server: Server) -> list[str]:
    with client(server) as http:
        response = http.get("/api/workspaces/default/jobs")
        response.raise_for_status()
        return [str(j["id"]) for j in response.json()]


def _nothing_lost_or_doubled(data: Path) -> None:
    queue = SqliteQueue(data / "queue.db", SystemClock())
    assert queue.dead_letters() == []
    store, view = SqliteStore(data / "state.db"), LocalProviderView(data)
    assert check_invariants(store, view, "default", settled=True) == []
    assert check_scaled_down(store, view, "default") == []


def test_twenty_jobs_submitted_then_sigkill_all_complete_after_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_server(data)
    try:
        with client(first) as http:
            assert create_cluster(http, "durable", max_nodes=4).status_code == 202
            accepted = [submit(http, "durable", SHORT).json()["id"] for _ in range(20)]
            wait_for(lambda: any(job(http, j)["state"] == "Running" for j in accepted), what="a job running")
    finally:
        first.stop(signal.SIGKILL)
    second = start_server(data)
    try:
        _all_completed(second, accepted)
    finally:
        second.stop()
    _nothing_lost_or_doubled(data)


def test_sigkill_in_the_middle_of_a_burst_of_submissions_loses_no_accepted_job(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_server(data)
    accepted: list[str] = []
    try:
        with client(first) as http:
            create_cluster(http, "durable", max_nodes=4)
            killer = threading.Timer(0.05, first.process.send_signal, args=(signal.SIGKILL,))
            for n in range(10_000):  # until the kill cuts the burst off: some answers never come
                if n == 12:
                    killer.start()
                try:
                    response = submit(http, "durable", SHORT)
                except httpx.TransportError:
                    break
                if response.status_code == 202:
                    accepted.append(response.json()["id"])
    finally:
        first.stop(signal.SIGKILL)
    assert 12 <= len(accepted) < 10_000
    second = start_server(data)
    try:
        _all_completed(second, accepted)
        # A submission the kill cut off after its job was stored, before its event was sent, got no answer: the
        # timer's sweep sends it on once it has waited UNSCHEDULED_GRACE. It must end too, not stay Queued.
        _all_completed(second, _stored_job_ids(second))
    finally:
        second.stop()
    _nothing_lost_or_doubled(data)
