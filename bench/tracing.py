"""``--tracing`` for the benchmarks: telemetry on as in production (our batch span processor, see
``shared.telemetry.batching``, and the SDK's metric aggregation), with an exporter that only counts, so the figure
is our instrumentation's cost, not a network's. And ``--tracing-overhead``: what that costs per event, measured
paired (``paired_overhead``)."""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from azure.monitor.opentelemetry.exporter import RateLimitedSampler
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased

from bench.embedded_runtime import DrainStats, start_runtime
from bench.workload_mix import create_clusters, run_wave
from shared.telemetry import state
from shared.telemetry.batching import batch_span_processor


class CountingExporter(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


# The sampler decides which traces are recorded; the others cost a non-recording span and their metrics only.
SAMPLERS = {
    "always-on": "every trace recorded (the SDK's default, and so local OTLP export's)",
    "azure-default": "azure-monitor-opentelemetry's default in Azure: at most 5 traces a second (rate limited)",
    "parent-ratio": "what the Bicep deploys (OTEL_TRACES_SAMPLER=parentbased_trace_id_ratio, _ARG=0.05): 1 trace "
                    "in 20, decided where it starts and followed by every process after",
}
PARENT_RATIO = 0.05


def sampler_named(name: str) -> Sampler | None:
    if name == "azure-default":
        # What configure_azure_monitor sets up when no OTEL_TRACES_SAMPLER is given (azure-monitor-opentelemetry 1.8).
        return RateLimitedSampler(target_spans_per_second_limit=5.0)
    if name == "parent-ratio":  # what the Azure distro builds from those two variables (infra/app/api.bicep)
        return ParentBased(TraceIdRatioBased(PARENT_RATIO))
    return None


class TracingOn:
    def __init__(self, sampler: str = "always-on") -> None:
        self.exporter = CountingExporter()
        self._tracer_provider = TracerProvider(sampler=sampler_named(sampler))
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


@dataclass
class PairedRound:
    """One round of ``paired_overhead``: CPU seconds and events of each wave, untraced and traced."""

    untraced: list[DrainStats] = field(default_factory=list)
    traced: list[DrainStats] = field(default_factory=list)
    spans: int = 0

    @staticmethod
    def cpu_us_per_event(waves: list[DrainStats]) -> float:
        return 1e6 * sum(w.cpu_seconds for w in waves) / max(sum(w.messages for w in waves), 1)

    @property
    def overhead(self) -> float:
        """Traced CPU per event over untraced, minus one, over the whole round."""
        return self.cpu_us_per_event(self.traced) / self.cpu_us_per_event(self.untraced) - 1

    @property
    def median_wave_overhead(self) -> float:
        """The median of the per-wave-pair overheads: a wave the machine slowed down in weighs no more."""
        return statistics.median(self.cpu_us_per_event([on]) / self.cpu_us_per_event([off]) - 1
                                 for off, on in zip(self.untraced, self.traced, strict=True))


def paired_overhead(clusters: int, waves: int, sampler: str = "always-on") -> PairedRound:
    """Two fresh runtimes in one process, one built and run with telemetry off, one with it on, taking turns wave
    by wave (which goes first swapped each wave). On a shared machine the CPU's speed drifts within seconds by
    more than tracing costs, so runs taken one after the other measure the drift; paired waves see the same
    machine. CPU is this process's (all threads, the span processor's included) while draining."""
    measured = PairedRound()
    with tempfile.TemporaryDirectory(prefix="cp-untraced-") as untraced_dir, \
            tempfile.TemporaryDirectory(prefix="cp-traced-") as traced_dir:
        untraced = start_runtime(Path(untraced_dir))  # built while telemetry is off: its ports are not wrapped
        untraced_names = create_clusters(untraced, clusters)
        tracing = TracingOn(sampler)
        traced = start_runtime(Path(traced_dir))
        traced_names = create_clusters(traced, clusters)
        for wave in range(waves):
            for traced_turn in ((True, False) if wave % 2 else (False, True)):
                stats = DrainStats()
                if traced_turn:
                    run_wave(traced, traced_names, stats)
                    measured.traced.append(stats)
                else:
                    with state.suspended():
                        run_wave(untraced, untraced_names, stats)
                    measured.untraced.append(stats)
        measured.spans = tracing.finish()
    return measured
