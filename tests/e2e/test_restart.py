"""Stopping ``computeplane serve`` (cleanly or with SIGKILL) while a job runs loses nothing and leaks nothing."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.e2e.server import http, start_server, wait_for
from tests.e2e.test_lifecycle import cluster, create_cluster, finished, job, submit

# Sleeps on its first attempt, ends at once on the next: a re-run after the restart completes quickly. Leaves its
# process id in its working directory.
RESUMABLE = ["python", "-c", "import os, time; open('pid', 'w').write(str(os.getpid()))"
             "; time.sleep(60 if os.environ['COMPUTEPLANE_ATTEMPT'] == '1' else 0)"
             "; print('attempt', os.environ['COMPUTEPLANE_ATTEMPT'])"]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_a_job_running_when_serve_stops_dies_with_it_is_rerun_after_restart_and_no_node_leaks(
        tmp_path: Path, stop_signal: int) -> None:
    data = tmp_path / "data"
    first = start_server(data)
    try:
        create_cluster(first, "durable")
        job_id = submit(first, "durable", RESUMABLE)
        wait_for(lambda: job(first, job_id)["state"] == "Running", what="Running")
        pid_file = first.runs_dir / job_id / "attempt-1" / "node-0" / "pid"
        job_pid = int(wait_for(lambda: pid_file.is_file() and pid_file.read_text(), what="the job's pid"))
    finally:
        first.stop(stop_signal)
    # Even after SIGKILL, which gives serve no chance to end it: the job had the parent-death signal.
    wait_for(lambda: not _alive(job_pid), timeout=10, what=f"job process {job_pid} to end with serve")

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


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
