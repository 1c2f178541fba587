"""Stopping ``computeplane serve`` (cleanly or with SIGKILL) while a job runs loses nothing and leaks nothing."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.e2e.server import http, start_server, wait_for
from tests.e2e.test_lifecycle import cluster, create_cluster, finished, job, submit

# Sleeps on its first attempt, ends at once on the next: a re-run after the restart completes quickly.
RESUMABLE = ["python", "-c", "import os, time; time.sleep(60 if os.environ['COMPUTEPLANE_ATTEMPT'] == '1' else 0)"
             "; print('attempt', os.environ['COMPUTEPLANE_ATTEMPT'])"]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_a_job_running_when_serve_stops_is_rerun_after_restart_and_no_node_leaks(tmp_path: Path,
                                                                                   stop_signal: int) -> None:
    data = tmp_path / "data"
    first = start_server(data)
    try:
        create_cluster(first, "durable")
        job_id = submit(first, "durable", RESUMABLE)
        wait_for(lambda: job(first, job_id)["state"] == "Running", what="Running")
        pids_file = list(data.glob(f"runs/{job_id}/attempt-1/node-0"))
        assert pids_file
    finally:
        first.stop(stop_signal)

    second = start_server(data)
    try:
        assert cluster(second, "durable")["provisioning_state"] == "Succeeded"  # the cluster survived
        done = wait_for(lambda: finished(second, job_id), timeout=30, what="re-run")
        assert done["state"] == "Completed" and done["attempts"] == 2
        assert any("RunLost" in (h["reason"] or "") for h in done["history"])
        logs = http.get(f"{second.api()}/jobs/{job_id}/logs").json()
        assert logs["attempt"] == 2 and "attempt 2" in logs["logs"]
        wait_for(lambda: cluster(second, "durable")["current_node_count"] == 0, timeout=20, what="no leaked node")
    finally:
        second.stop()
