"""What a new user meets in the CLI: errors as JSON under -o json, --version, Ctrl-C during --wait, a cancel that
says it was requested, node counts as AmlCompute shows them, deleted clusters' jobs, `make run PORT= DATA_DIR=`,
and v1's Workspace.from_config()."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import Result

from computeplane.azureml.workspace import UserErrorException, Workspace
from computeplane.client import ComputePlaneClient, wait_for_job
from tests.cli.test_installed_script import REPO_ROOT, console_script
from tests.e2e.server import Server, free_port, wait_for


def test_errors_are_json_on_stderr_under_output_json(run_cli: Callable[..., Result]) -> None:
    missing = run_cli("cluster", "show", "nosuchcluster", "-o", "json")
    assert missing.exit_code == 1
    assert missing.stdout == ""
    assert json.loads(missing.stderr)["error"]["code"] == "ComputeTargetNotFound"
    bad = run_cli("-o", "json", "vm-sizes", "list", "--location", "mars")
    assert bad.exit_code == 2
    error = json.loads(bad.stderr)["error"]
    assert error["details"][0]["field"] == "location" and "eastus" in error["details"][0]["rule"]
    usage = run_cli("cluster", "create", "x", "-o", "json")
    assert usage.exit_code == 2 and json.loads(usage.stderr)["error"]["code"] == "UsageError"


def test_an_unknown_location_in_a_table_is_exit_2_with_the_reason(run_cli: Callable[..., Result]) -> None:
    result = run_cli("vm-sizes", "list", "--location", "mars")
    assert result.exit_code == 2 and "unknown location 'mars'" in result.stderr


def test_version_is_printed(run_cli: Callable[..., Result]) -> None:
    result = run_cli("--version")
    assert result.exit_code == 0 and result.stdout.startswith("computeplane 0.")


def test_a_bad_workspace_name_is_named_not_blamed_on_an_older_server(run_cli: Callable[..., Result]) -> None:
    result = run_cli("--workspace", "team/a", "cluster", "list")
    assert result.exit_code == 2
    assert "workspace 'team/a'" in result.stderr and "older" not in result.stderr


def test_ctrl_c_on_wait_leaves_the_job_running_and_says_how_to_cancel_it(shared_server: Server,
                                                                          unique_name: Callable[[str], str]) -> None:
    name = unique_name("ctrlc")
    with ComputePlaneClient(shared_server.url) as client:
        client.create_cluster(name, "STANDARD_D2_V2", 1)
        waiting = subprocess.Popen(
            [*console_script(), "--endpoint", shared_server.url, "job", "submit", "-c", name, "--wait", "--",
             "python", "-c", "import time; print('started', flush=True); time.sleep(600)"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
        try:
            job = wait_for(lambda: next((j for j in client.list_jobs(name) if j["state"] == "Running"), None),
                           timeout=60, what="the job to run")
            wait_for(lambda: "started" in client.job_logs(job["id"])["logs"], timeout=30, what="its output")
            waiting.send_signal(signal.SIGINT)
            _, stderr = waiting.communicate(timeout=30)
        finally:
            waiting.kill()
        assert waiting.returncode == 130
        assert f"Job {job['id']} goes on" in stderr and f"computeplane job cancel {job['id']}" in stderr
        assert "Traceback" not in stderr
        assert client.get_job(job["id"])["state"] == "Running"

        canceled = client.cancel_job(job["id"])
        assert canceled["cancel_requested"] is True and canceled["state"] == "Running"
        final = wait_for_job(client, job["id"], timeout=60, raise_on_error=False)
        assert final["state"] == "Canceled" and final["cancel_requested"] is False


def test_a_steady_cluster_shows_its_idle_node_as_its_target_as_amlcompute_does(
        shared_server: Server, unique_name: Callable[[str], str], run_cli: Callable[..., Result]) -> None:
    name = unique_name("steady")
    with ComputePlaneClient(shared_server.url) as client:
        client.create_cluster(name, "STANDARD_D2_V2", 2, idle_seconds_before_scaledown=600)
        job = client.submit_job(name, ["true"])
        wait_for_job(client, job["id"], timeout=60)
        shown = wait_for(lambda: (c := client.get_cluster(name))["allocation_state"] == "Steady" and c,
                         timeout=30, what="the cluster to settle")
    assert (shown["current_node_count"], shown["target_node_count"]) == (1, 1)
    assert shown["node_state_counts"]["idle"] == 1


def test_job_list_of_a_deleted_cluster_says_where_its_jobs_are(shared_server: Server,
                                                               unique_name: Callable[[str], str],
                                                               run_cli: Callable[..., Result]) -> None:
    name = unique_name("gone")
    with ComputePlaneClient(shared_server.url) as client:
        client.create_cluster(name, "STANDARD_D2_V2", 1)
        job = client.submit_job(name, ["true"])
        wait_for_job(client, job["id"], timeout=60)
    assert run_cli("cluster", "delete", name, "--yes", "--wait").exit_code == 0
    listed = run_cli("job", "list", "--cluster", name)
    assert listed.exit_code == 1
    assert "without --cluster lists every job" in listed.stderr
    everything = run_cli("job", "list", "-o", "json")
    assert job["id"] in [j["id"] for j in json.loads(everything.stdout)]


def test_make_run_takes_port_and_data_dir(tmp_path: Path) -> None:
    port, data_dir = free_port(), tmp_path / "make-data"
    venv = Path(sys.executable).parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    process = subprocess.Popen(["make", "--no-print-directory", "-o", str(venv / ".installed"), "run",
                                f"PORT={port}", f"DATA_DIR={data_dir}", f"VENV={venv}"],
                               cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/api/health"), timeout=60, what="make run to serve")
        assert (data_dir / "api-keys.json").exists()
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_workspace_from_config_reads_config_json_as_v1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "config.json").write_text(json.dumps({
        "subscription_id": "00000000-0000-0000-0000-000000000000", "resource_group": "rg",
        "workspace_name": "team-a", "endpoint": "http://127.0.0.1:7999"}))
    monkeypatch.chdir(project / "notebooks")  # v1 looks in the parents too
    ws = Workspace.from_config()
    assert (ws.name, ws.resource_group, ws.client.endpoint) == ("team-a", "rg", "http://127.0.0.1:7999")

    (project / "config.json").unlink()
    (project / ".azureml").mkdir()
    (project / ".azureml" / "config.json").write_text(json.dumps({"workspace_name": "team-b"}))
    assert Workspace.from_config().name == "team-b"
    assert Workspace.from_config(path=str(project)).name == "team-b"
    with pytest.raises(UserErrorException, match=r"could not find config\.json"):
        Workspace.from_config(path=str(tmp_path / "nowhere"))
