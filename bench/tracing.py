"""``--tracing`` for the benchmarks: telemetry on as in production (our batch span processor, see
``shared.telemetry.batching``, and the SDK's metric aggregation), with an exporter that only counts, so the figure
is our instrumentation's cost, not a network's."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from shared.telemetry import state
from shared.telemetry.batching import batch_span_processor


class CountingExporter(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


class TracingOn:
    def __init__(self) -> None:
        self.exporter = CountingExporter()
        self._tracer_provider = TracerProvider()
        self._tracer_provider.add_span_processor(batch_span_processor(self.exporter))
        self._reader = InMemoryMetricReader()
        state.install(self._tracer_provider, MeterProvider(metric_readers=[self._reader],
                                                          exemplar_filter=AlwaysOffExemplarFilter()))

    def finish(self) -> int:
        """Flush, turn telemetry off again; the number of spans exported."""
        self._tracer_provider.force_flush()
        self._reader.get_metrics_data()
        state.uninstall()
        return self.exporter.spans
