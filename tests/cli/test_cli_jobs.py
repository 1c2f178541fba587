"""``computeplane job ...`` in-process against a real server: submit and wait, logs, failures, cancel."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from typer.testing import Result

from tests.cli.direct_api import api_get
from tests.e2e.server import Server

RunCli = Callable[..., Result]


@pytest.fixture
def cluster(run_cli: RunCli, unique_name: Callable[[str], str]) -> str:
    name = unique_name("jobs")
    created = run_cli("cluster", "create", name, "-s", "STANDARD_D2_V2", "--max-nodes", "2", "--wait")
    assert created.exit_code == 0, created.output
    return name


def test_submit_with_wait_streams_the_output_and_logs_shows_it(run_cli: RunCli, cluster: str,
                                                               shared_server: Server) -> None:
    result = run_cli("job", "submit", "--cluster", cluster, "--env", "GREETING=hello", "--wait", "--",
                     "python", "-c", "import os; print(os.environ['GREETING'], 'from a node')")
    assert result.exit_code == 0, result.output
    assert "hello from a node" in result.stdout
    assert "Completed" in result.stderr
    job = api_get(f"{shared_server.api()}/jobs")[-1]
    logs = run_cli("job", "logs", job["id"])
    assert logs.exit_code == 0 and logs.stdout == "hello from a node\n"
    as_json = run_cli("-o", "json", "job", "logs", job["id"])
    assert json.loads(as_json.stdout) == api_get(f"{shared_server.api()}/jobs/{job['id']}/logs")


def test_options_after_the_program_belong_to_the_program(run_cli: RunCli, cluster: str) -> None:
    result = run_cli("-o", "json", "job", "submit", "-c", cluster, "--wait",
                     "python", "-c", "import sys; print(sys.argv[1:])", "--output", "x")
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert job["state"] == "Completed" and job["command"][-2:] == ["--output", "x"]


def test_a_failed_job_exits_1_and_cancel_of_a_finished_job_exits_1(run_cli: RunCli, cluster: str) -> None:
    failed = run_cli("job", "submit", "-c", cluster, "--max-retries", "0", "--wait", "--",
                     "python", "-c", "import sys; sys.exit(3)")
    assert failed.exit_code == 1
    assert "failed" in failed.stderr.lower()
    listed = json.loads(run_cli("-o", "json", "job", "list", "--cluster", cluster).stdout)
    assert [j["state"] for j in listed] == ["Failed"]
    canceled = run_cli("job", "cancel", listed[0]["id"])
    assert canceled.exit_code == 1 and "OperationNotAllowed" in canceled.stderr


def test_a_job_bigger_than_the_cluster_is_bad_input(run_cli: RunCli, cluster: str) -> None:
    result = run_cli("job", "submit", "-c", cluster, "--node-count", "5", "--", "true")
    assert result.exit_code == 2 and "max_nodes" in result.stderr


def test_show_and_list_jobs(run_cli: RunCli, cluster: str) -> None:
    submitted = run_cli("-o", "json", "job", "submit", "-c", cluster, "--", "python", "-c", "print(1)")
    job_id = json.loads(submitted.stdout)["id"]
    shown = run_cli("job", "show", job_id)
    assert shown.exit_code == 0 and job_id in shown.stdout
    assert job_id in run_cli("job", "list").stdout
    assert run_cli("job", "show", "no-such-job").exit_code == 1
