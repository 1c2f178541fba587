"""Batch sends no events: the provider schedules its own wake-ups (shared/adapters/azure_batch/wakeups.py), so a
job's node readiness and its task's end are seen within a poll interval, not at the next resync. Here the resync is
ten minutes and the boot timeout one: the job completes in seconds only if the wake-ups work."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.azure_batch.serving import StandIn, TokenEndpoint
from tests.azure_batch.test_serve_end_to_end import batch_server
from tests.azure_batch.tls import ServerCertificate
from tests.e2e.server import Server, wait_for
from tests.e2e.test_lifecycle import create_cluster, finished, submit


@pytest.fixture
def server(tmp_path: Path, standin: StandIn, certificate: ServerCertificate,
           token_endpoint: TokenEndpoint, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    yield from batch_server(tmp_path, standin, certificate, token_endpoint, monkeypatch, {
        "COMPUTEPLANE_RESYNC_SECONDS": "600", "COMPUTEPLANE_BOOT_TIMEOUT_SECONDS": "600",
        "COMPUTEPLANE_BATCH_POLL_SECONDS": "1", "COMPUTEPLANE_BATCH_EXPECTED_BOOT_SECONDS": "1"})


def test_a_job_on_batch_is_seen_ready_and_finished_within_poll_intervals_not_resyncs(server: Server) -> None:
    assert create_cluster(server, "polled", max_nodes=1).status_code == 202
    job_id = submit(server, "polled", ["python", "-c", "import time; time.sleep(2); print('done')"])
    done = wait_for(lambda: finished(server, job_id), timeout=60, what="the job, well before a resync")
    assert done["state"] == "Completed", done
