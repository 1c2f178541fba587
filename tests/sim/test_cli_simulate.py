"""``computeplane simulate`` on a team's job history, through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from computeplane.cli_context import GlobalOptionsCommand
from computeplane.cli_simulate import simulate

app = typer.Typer()


@app.callback()
def root() -> None:
    """A stand-in for ``computeplane``'s own app."""


app.command("simulate", cls=GlobalOptionsCommand)(simulate)


@pytest.fixture
def jobs_csv(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.csv"
    path.write_text("submit_time,duration,node_count\n0,600,1\n700,300,1\n2000,100,2\n")
    return path


def test_simulate_prints_cost_and_waits_for_computeplane(jobs_csv: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--jobs", str(jobs_csv), "--idle-seconds", "300"])
    assert result.exit_code == 0, result.output
    assert "node-hours" in result.output and "job wait p50" in result.output
    assert "ComputePlane (idle 300 s)" in result.output


def test_simulate_json_output_has_the_exact_figures(jobs_csv: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--jobs", str(jobs_csv), "--idle-seconds", "300", "-o", "json"])
    assert result.exit_code == 0, result.output
    (figures,) = json.loads(result.output)
    assert figures["node_hours"] == pytest.approx(2780 / 3600)
    assert figures["wait_p50_seconds"] == 120.0
    assert figures["cost_usd"] == pytest.approx(2780 / 3600 * 3.06)


def test_simulate_compares_the_peers_on_request(jobs_csv: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--jobs", str(jobs_csv), "--policy", "adaptive", "--compare"])
    assert result.exit_code == 0, result.output
    for column in ("Adaptive 1b", "ComputePlane", "AML v2", "K8s CA", "Batch 15m", "lower bound"):
        assert column in result.output


def test_simulate_refuses_a_malformed_file_or_an_unknown_vm_size(jobs_csv: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("when,how_long\n1,2\n")
    assert CliRunner().invoke(app, ["simulate", "--jobs", str(bad)]).exit_code == 2
    assert CliRunner().invoke(app, ["simulate", "--jobs", str(jobs_csv), "--vm-size", "Standard_Nope"]).exit_code == 2
