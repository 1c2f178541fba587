"""COMPUTEPLANE_JOB_SANDBOX against the real kernel: a sandbox that cannot work on this machine stops the server
when it is required, and is skipped with one warning when it is not (the README's promise to laptops without user
namespaces). The sandbox is made to fail for real: hiding the directory of this very Python means no job could run."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from shared.adapters.job_sandbox import JobSandboxUnavailable, choose_sandbox

HIDING_THE_INTERPRETER = Path(sys.executable).parent


def test_a_required_sandbox_that_cannot_run_jobs_here_refuses_to_start_and_says_why() -> None:
    with pytest.raises(JobSandboxUnavailable, match="COMPUTEPLANE_JOB_SANDBOX=required") as refused:
        choose_sandbox("required", HIDING_THE_INTERPRETER)
    assert "cannot" in str(refused.value) and (sys.executable in str(refused.value)
                                                 or not sys.platform.startswith("linux"))


def test_an_automatic_sandbox_that_cannot_run_jobs_here_is_skipped_with_one_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="shared.adapters.job_sandbox"):
        assert choose_sandbox("auto", HIDING_THE_INTERPRETER) is None
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "NOT isolated" in warnings[0].getMessage()


def test_a_sandbox_turned_off_is_never_probed_and_warns_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="shared.adapters.job_sandbox"):
        assert choose_sandbox("off", HIDING_THE_INTERPRETER) is None  # a probe here would fail: none was made
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "not isolated" in caplog.records[0].getMessage()
