"""Where local jobs run, as the README describes it: beside the data directory, never inside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import Settings


def test_jobs_run_beside_the_data_directory_unless_told_where(tmp_path: Path) -> None:
    data = tmp_path / "state"
    assert Settings.from_env({"COMPUTEPLANE_DATA_DIR": str(data)}).runs_root == tmp_path / "state-runs"
    elsewhere = Settings.from_env({"COMPUTEPLANE_DATA_DIR": str(data), "COMPUTEPLANE_RUNS_DIR": str(tmp_path / "j")})
    assert elsewhere.runs_root == tmp_path / "j"


@pytest.mark.parametrize("inside", ["state", "state/runs"])
def test_a_runs_directory_inside_the_data_directory_is_refused(tmp_path: Path, inside: str) -> None:
    with pytest.raises(ValueError, match="COMPUTEPLANE_RUNS_DIR: must be outside the data directory"):
        Settings.from_env({"COMPUTEPLANE_DATA_DIR": str(tmp_path / "state"),
                           "COMPUTEPLANE_RUNS_DIR": str(tmp_path / inside)})


def test_the_job_sandbox_setting_names_its_choices() -> None:
    assert Settings.from_env({}).job_sandbox == "auto"
    assert Settings.from_env({"COMPUTEPLANE_JOB_SANDBOX": "required"}).job_sandbox == "required"
    with pytest.raises(ValueError, match="COMPUTEPLANE_JOB_SANDBOX: must be auto, required or off"):
        Settings.from_env({"COMPUTEPLANE_JOB_SANDBOX": "yes"})
