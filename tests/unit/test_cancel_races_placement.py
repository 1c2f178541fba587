"""A cancel that lands between the decision that places a job and the start of its run: the run never starts.

The placement is saved first (the cluster says the job runs on its node, and its document says running, in the same
write), its run started after; a cancel handled in between (another queue, another worker thread) stops a run that
does not exist yet. The cancel's projection takes the copy of the job document the placement kept, so the start reads
the document and finds it canceled: no process runs a canceled job with freshly minted tokens. A worker in another
process keeps no such copy and starts it; the local provider, told to stop that attempt first, then runs nothing.
(The Azure Batch provider cannot: there the cluster's next reconcile stops the orphan, ``_stop_orphaned_runs``.)"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from shared.bootstrap import Container
from shared.domain import events as ev
from shared.domain.job import JobState
from shared.handlers.deps import Deps
from shared.handlers.messages import handle_message
from shared.handlers.recent_documents import RecentJobs, RecentLedgers
from shared.ports import RunRequest, Store
from tests.fakes.clock import FakeClock
from tests.fakes.deps import quota_limited_container

WS, NAME = "ws", "cpu"


class AfterFirstSave:
    """Wraps the store: just after the first save of the cluster (the placement saved), runs ``meanwhile``."""

    def __init__(self, inner: Store, meanwhile: Callable[[], object]) -> None:
        self.inner, self.meanwhile, self.ran = inner, meanwhile, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def replace_cluster(self, cluster: Any) -> Any:
        return self._then_meanwhile(self.inner.replace_cluster(cluster))

    def replace_cluster_with_jobs(self, cluster: Any, jobs: Any, archive: Any = None) -> Any:
        return self._then_meanwhile(self.inner.replace_cluster_with_jobs(cluster, jobs, archive))

    def _then_meanwhile(self, saved: Any) -> Any:
        if not self.ran:
            self.ran = True
            self.meanwhile()
        return saved


class RecordsStarts:
    """Wraps the provider: records the runs started (and starts them)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.started = inner, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def start_run(self, node_ids: Sequence[str], run: RunRequest) -> None:
        self.started.append(run.job_id)
        self.inner.start_run(node_ids, run)


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    with quota_limited_container(tmp_path, "eastus", regional_vcpus=8) as built:
        yield built


def handle(deps: Deps, event: ev.CloudEvent) -> None:
    handle_message(event.queue, event.id, event.to_json(), deps)


def place_with_a_cancel_meanwhile(container: Container, canceling: Callable[[Deps], Deps]) -> RecordsStarts:
    """A job submitted to a one-node cluster, then the decision that places it on the booted node, with the job's
    cancel handled (by ``canceling(deps)``) just after that decision's save. Returns the provider's record."""
    provider = RecordsStarts(container.deps.provider)
    deps = dataclasses.replace(container.deps, provider=provider)  # type: ignore[arg-type]
    handle(deps, ev.new_event(ev.CLUSTER_CREATE, WS, NAME, {"name": NAME, "vm_size": "STANDARD_D2_V2",
                                                            "max_nodes": 1}, event_id="create"))
    handle(deps, ev.new_event(ev.JOB_SUBMIT, WS, NAME, {"job_id": "j", "command": ["sleep", "60"]},
                              event_id="submit-j"))
    assert isinstance(deps.clock, FakeClock)
    deps.clock.advance(10)  # the node has booted: the next decision places the job
    canceler = canceling(deps)

    def cancel() -> None:
        handle(canceler, ev.new_event(ev.JOB_CANCEL, WS, NAME, {"job_id": "j"}, event_id="cancel-j"))

    placing = dataclasses.replace(deps, store=AfterFirstSave(deps.store, cancel))  # type: ignore[arg-type]
    handle(placing, ev.new_event(ev.SCALE_REQUEST, WS, NAME, {"reason": "test"}, event_id="wake"))

    job = deps.store.get_job(WS, "j")
    assert job is not None and job.state is JobState.CANCELED
    cluster = deps.store.get_cluster(WS, NAME)
    assert cluster is not None and cluster.job("j") is None
    return provider


def test_a_job_canceled_after_its_placement_was_saved_never_starts(container: Container) -> None:
    provider = place_with_a_cancel_meanwhile(container, lambda deps: deps)  # a worker thread of this process
    assert provider.started == []  # the placement's start found the job canceled


def test_a_cancel_by_another_process_before_the_start_leaves_nothing_running(container: Container,
                                                                           tmp_path: Path) -> None:
    """The other process keeps no copy here: the start goes ahead on the copy its placement kept, and the provider,
    told to stop the attempt first, runs nothing."""
    provider = place_with_a_cancel_meanwhile(
        container, lambda deps: dataclasses.replace(deps, recent_jobs=RecentJobs(), recent_ledgers=RecentLedgers()))
    assert provider.started == ["j"]  # asked to start, after the stop
    with sqlite3.connect(tmp_path / "provider.db") as runs:
        assert runs.execute("SELECT node_ids, processes, exit_code FROM runs").fetchall() == [("[]", None, -15)]
