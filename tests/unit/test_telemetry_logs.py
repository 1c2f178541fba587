"""Logs made while an event is handled carry its workspace, cluster, job and event ids, as text and as record
attributes (which Azure Monitor keeps as custom dimensions); telemetry off or on."""

from __future__ import annotations

import io
import logging

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from shared.domain.events import new_event
from shared.telemetry import state
from shared.telemetry.events import handling
from shared.telemetry.log_context import add_ids_to_logs


@pytest.mark.parametrize("telemetry_on", [False, True])
def test_records_made_while_handling_an_event_carry_its_ids(telemetry_on: bool) -> None:
    if telemetry_on:
        state.install(TracerProvider(), MeterProvider())
    logger, out = logging.getLogger(f"test.ids.{telemetry_on}"), io.StringIO()
    logger.addHandler(logging.StreamHandler(out))
    logger.propagate = False
    add_ids_to_logs(logger)
    records: list[logging.LogRecord] = []
    logger.addFilter(lambda record: records.append(record) or True)
    event = new_event("computeplane.job.cancel", "team-a", "gpu1", {"job_id": "job-7"}, event_id="ev-1")
    try:
        with handling("job-events", event):
            logger.warning("inside")
        logger.warning("outside")
    finally:
        state.uninstall()
    inside, outside = out.getvalue().splitlines()
    assert "workspace=team-a cluster=gpu1 job=job-7 event=ev-1 inside" in inside
    assert "workspace=" not in outside
    assert records[-1].computeplane_job == ""  # type: ignore[attr-defined]
