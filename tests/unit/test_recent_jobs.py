"""A job's next projection starts from the copy this process wrote last (no read), and stays right when someone else
wrote the document since: the conditional write fails and the document is read afresh. Real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from shared.adapters.sqlite_store import SqliteStore
from shared.domain.job import Job, JobSpec, JobState, JobUpdate, apply_job_update
from shared.handlers.jobs import project_job
from tests.fakes.deps import handler_deps

WS = "ws"


def test_a_finish_after_someone_else_canceled_the_job_keeps_the_cancel(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    with handler_deps(tmp_path, store) as (deps, _):
        store.create_job(Job.submitted(WS, "j1", "cpu", JobSpec(command=["true"]), deps.clock.now()))
        project_job(deps, WS, JobUpdate(job_id="j1", state=JobState.RUNNING, attempt=1, nodes=["n1"]))
        # Another process (the API, say) cancels it: the copy this process kept is now stale.
        other = store.get_job(WS, "j1")
        assert other is not None and other.state == JobState.RUNNING
        other.state, other.reason = JobState.CANCELED, "Canceled by the user"
        store.replace_job(other)

        project_job(deps, WS, JobUpdate(job_id="j1", state=JobState.COMPLETED, attempt=1, exit_code=0))

        final = store.get_job(WS, "j1")
        assert final is not None and final.state == JobState.CANCELED and final.reason == "Canceled by the user"



def test_a_working_copy_takes_an_update_and_the_original_stays_as_it_was() -> None:
    original = Job.submitted(WS, "j1", "cpu", JobSpec(command=["true"]), datetime(2026, 2, 1, tzinfo=UTC))
    original.etag = "7"
    copy = original.working_copy()
    assert apply_job_update(copy, JobUpdate(job_id="j1", state=JobState.RUNNING, attempt=1, nodes=["n1"]),
                            datetime(2026, 2, 1, 0, 1, tzinfo=UTC))
    assert (original.state, original.nodes, original.history, original.scheduled) == (JobState.QUEUED, [], [], False)
    assert (copy.state, copy.nodes, len(copy.history), copy.etag) == (JobState.RUNNING, ["n1"], 1, "7")
