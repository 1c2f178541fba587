"""The chaos soak, small: a few hundred events with duplicates, reordering, crashes and store faults lose no job
and break no promise. The big run is
``python -m bench.chaos --events 10000 --clusters 20``."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from bench.chaos import SoakConfig, main, render, run_soak


def test_a_quick_soak_loses_no_job_and_breaks_no_new_promise(tmp_path: Path) -> None:
    report = run_soak(SoakConfig(events=600, clusters=5, seed=1), tmp_path)
    assert report.events_sent >= 600 and report.duplicates > 0
    assert report.crashes > 0 and report.faults > 0
    assert report.jobs_lost == []
    assert report.violations == set()
    out = Console(width=200, record=True)
    out.print(render(report))
    text = out.export_text()
    for figure in ("events sent", "deliveries", "duplicates", "crashes injected", "faults injected",
                   "events applied", "dead-lettered", "jobs lost", "invariant violations", "wall time"):
        assert figure in text


def test_the_quick_mode_of_the_command_prints_one_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--seed", "2"]) == 0
    assert capsys.readouterr().out.count("Chaos soak:") == 1
