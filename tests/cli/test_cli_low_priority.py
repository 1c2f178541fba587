"""``cluster create --low-priority-fallback``, the preemption options of ``job submit`` and ``computeplane simulate``
with a spot trace, against a real server (or none, for simulate)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from computeplane.cli import app
from tests.cli.test_cli_clusters import RunCli

TRACE = Path(__file__).parents[2] / "shared" / "data" / "preemption" / "aws-04-22-2023_us-east-1c_v100_1.json"


def test_a_low_priority_cluster_with_a_fallback_and_a_job_that_checkpoints(
        run_cli: RunCli, unique_name: Callable[[str], str]) -> None:
    name = unique_name("spotfb")
    created = run_cli("-o", "json", "cluster", "create", name, "-s", "STANDARD_D2_V2", "--max-nodes", "2", "-p",
                      "lowpriority", "--low-priority-fallback", "lost_time:900",
                      "--on-preemption-retries-exhausted", "dedicated")
    assert created.exit_code == 0, created.output
    body = json.loads(created.stdout)
    assert body["low_priority_fallback"] == {"trigger": "lost_time", "after_preemptions": 2,
                                             "lost_time_budget_seconds": 900}
    assert body["on_preemption_retries_exhausted"] == "dedicated"
    shown = run_cli("cluster", "show", name)
    assert "lost_time_budget_seconds 900" in shown.stdout and "dedicated 0" in shown.stdout
    submitted = run_cli("-o", "json", "job", "submit", "--cluster", name, "--checkpoint-interval", "600",
                        "--max-preemption-retries", "5", "--deadline", "2030-01-01T00:00:00Z",
                        "--expected-runtime", "3600", "--", "true")
    assert submitted.exit_code == 0, submitted.output
    job = json.loads(submitted.stdout)
    assert (job["checkpoint_interval_seconds"], job["max_preemption_retries"], job["expected_runtime_seconds"]) \
        == (600, 5, 3600)
    assert job["deadline"].startswith("2030-01-01T00:00:00")


def test_bad_fallback_values_are_usage_errors_naming_the_option(
        run_cli: RunCli, unique_name: Callable[[str], str]) -> None:
    bad = run_cli("cluster", "create", unique_name("spotbad"), "-s", "STANDARD_D2_V2", "--max-nodes", "2", "-p",
                  "lowpriority", "--low-priority-fallback", "sometimes")
    assert bad.exit_code == 2 and "--low-priority-fallback" in bad.output
    on_dedicated = run_cli("cluster", "create", unique_name("plainfb"), "-s", "STANDARD_D2_V2", "--max-nodes", "2",
                           "--low-priority-fallback", "on")
    assert on_dedicated.exit_code == 2 and "low_priority_fallback" in on_dedicated.output


def test_simulate_replays_a_spot_trace_with_the_fallback_and_checkpoints(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("submit_time,duration,node_count\n0,360000,1\n60,600,1\n")
    result = CliRunner().invoke(app, ["-o", "json", "simulate", "--jobs", str(jobs), "--preemption-trace",
                                      str(TRACE), "--checkpoint-seconds", "1800", "--low-priority-fallback",
                                      "preemptions:1", "--seed", "3"])
    assert result.exit_code == 0, result.output
    [computeplane] = json.loads(result.stdout)
    assert computeplane["jobs_failed"] == 0 and computeplane["preemptions"] >= 1
    assert computeplane["dedicated_node_hours"] > 0  # the 100-hour job went to a dedicated node
    refused = CliRunner().invoke(app, ["simulate", "--jobs", str(jobs), "--low-priority-fallback", "never"])
    assert refused.exit_code == 2
