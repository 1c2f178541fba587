"""Error kinds as kopf names them: permanent errors are dead-lettered at once, temporary ones redelivered, after
their own delay when they know one; domain errors carry no transport (HTTP lives in shared/api)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import azure.functions as func
import pytest

from shared.adapters.sqlite_queue import SqliteQueue
from shared.api.errors import error_body, status_of
from shared.domain.errors import (
    ClusterSpecConflict,
    ClusterStillDeleting,
    DomainError,
    InvalidEvent,
    OperationNotAllowed,
    PermanentError,
    TemporaryError,
    TransientError,
    reason_of,
)
from shared.local.host import LocalFunctionsHost, QueueFunction, redelivery_delay
from tests.fakes.clock import FakeClock

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_kinds() -> None:
    assert issubclass(DomainError, PermanentError) and not issubclass(DomainError, TemporaryError)
    assert issubclass(TransientError, TemporaryError) and issubclass(ClusterStillDeleting, TemporaryError)
    assert ClusterStillDeleting("ws", "a").delay is None  # the transport's growing backoff spans a release


def test_the_reason_a_dead_letter_carries() -> None:
    assert reason_of(InvalidEvent("data.name: required")) == "data.name: required"
    assert reason_of(OperationNotAllowed("job finished")) == "OperationNotAllowed: job finished"


def test_http_status_and_body_come_from_the_api() -> None:
    conflict = ClusterSpecConflict("gpu", {"max_nodes": (2, 3)})
    assert status_of(conflict) == 409
    assert error_body(conflict)["error"] == {
        "code": "ComputeTargetSpecConflict", "message": conflict.message,
        "details": [{"field": "max_nodes", "existing": 2, "requested": 3}]}


@pytest.mark.parametrize(("delay", "expected"), [(None, redelivery_delay(1)), (timedelta(minutes=5),
                                                                                timedelta(minutes=5))])
def test_the_local_host_waits_a_temporary_error_s_delay_before_redelivery(
        tmp_path: Path, delay: timedelta | None, expected: timedelta) -> None:
    clock = FakeClock(NOW)
    queue = SqliteQueue(tmp_path / "queue.db", clock)
    queue.send("q", "m1", b"{}", session_id="s")

    def busy(_: func.ServiceBusMessage) -> None:
        raise TemporaryError("not yet", delay=delay)

    host = LocalFunctionsHost(func.FunctionApp(), queue)
    message = queue.receive("q")
    assert message is not None
    host.deliver(QueueFunction("busy", "q", busy), message)
    assert queue.dead_letters() == []
    assert queue.next_visible_at("q") == NOW + expected


def test_a_job_entry_written_before_the_enum_reads_as_nothing_shown_yet() -> None:
    from shared.domain.cluster import JobEntry
    from shared.domain.job import JobState

    old = {"job_id": "j1", "node_count": 1, "max_retries": 0, "submitted_at": "2026-01-01T00:00:00.000000Z"}
    assert JobEntry.model_validate({**old, "visible_state": ""}).visible_state is None
    assert JobEntry.model_validate({**old, "visible_state": "Running"}).visible_state is JobState.RUNNING
    assert JobEntry.model_validate(old).model_dump(mode="json")["visible_state"] == "Queued"
