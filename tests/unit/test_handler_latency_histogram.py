"""The handler-latency histogram hands its measurements to the SDK in batches: a collection must still see every
one recorded before it, with its own value and labels."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from shared.telemetry import state
from shared.telemetry.state import BufferedHistogram


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    metric_reader = InMemoryMetricReader()
    state.install(TracerProvider(), MeterProvider(metric_readers=[metric_reader]))
    yield metric_reader
    state.uninstall()


def _latency_points(reader: InMemoryMetricReader) -> dict[str, HistogramDataPoint]:
    data = reader.get_metrics_data()
    assert data is not None
    return {str(point.attributes["computeplane.outcome"]): point
            for resource in data.resource_metrics for scope in resource.scope_metrics
            for metric in scope.metrics if metric.name == "computeplane.handler.duration"
            for point in metric.data.data_points if isinstance(point, HistogramDataPoint)}


BATCH = BufferedHistogram.BATCH


@pytest.mark.parametrize("events", [1, BATCH - 1, BATCH, 2 * BATCH + 5])
def test_a_collection_sees_every_latency_recorded_before_it(reader: InMemoryMetricReader, events: int) -> None:
    instruments = state.current()
    assert instruments is not None
    seconds = [0.001 * (n + 1) for n in range(events)]
    for n, value in enumerate(seconds):
        outcome = "retried" if n % 3 == 0 else "ok"
        instruments.handler_duration.record(value, {"cloudevents.event_type": "computeplane.job.submit",
                                                    "computeplane.outcome": outcome})
    points = _latency_points(reader)
    retried = [v for n, v in enumerate(seconds) if n % 3 == 0]
    ok = [v for n, v in enumerate(seconds) if n % 3]
    assert points["retried"].count == len(retried) and points["retried"].sum == pytest.approx(sum(retried))
    assert points["retried"].max == pytest.approx(max(retried))
    if ok:
        assert points["ok"].count == len(ok) and points["ok"].min == pytest.approx(min(ok))
    # and the next collection adds only what came after (cumulative: the same totals, nothing twice)
    assert _latency_points(reader)["retried"].count == len(retried)
