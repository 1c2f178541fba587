"""Turning telemetry on, once per process, from the environment:

- ``APPLICATIONINSIGHTS_CONNECTION_STRING`` (Azure, set by the Bicep): ``azure-monitor-opentelemetry`` exports
  traces, metrics and logs to Application Insights; no key in code.
- ``OTEL_EXPORTER_OTLP_ENDPOINT``: OTLP over HTTP (the exporter reads the standard OTEL_* variables itself).
- ``COMPUTEPLANE_TELEMETRY_CONSOLE=1`` (``computeplane serve --telemetry-console``): spans and metrics printed.

None of them: telemetry stays off and costs one boolean test per hook."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from shared.telemetry.batching import batch_span_processor
from shared.telemetry.state import current, install

log = logging.getLogger(__name__)
SERVICE = "computeplane"
_lock = threading.Lock()


@dataclass(frozen=True)
class TelemetrySettings:
    app_insights_connection_string: str | None = None
    otlp_endpoint: str | None = None
    console: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.app_insights_connection_string or self.otlp_endpoint or self.console)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TelemetrySettings:
        env = os.environ if env is None else env
        return cls(app_insights_connection_string=env.get("APPLICATIONINSIGHTS_CONNECTION_STRING") or None,
                   otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
                   console=env.get("COMPUTEPLANE_TELEMETRY_CONSOLE", "").lower() in ("1", "true", "yes"))


def configure_telemetry(settings: TelemetrySettings) -> bool:
    """Turn telemetry on as the settings say (once; later calls change nothing). True when it is on."""
    with _lock:
        if current() is not None or not settings.enabled:
            return current() is not None
        if settings.app_insights_connection_string:
            _azure_monitor()
            install(trace.get_tracer_provider(), metrics.get_meter_provider())
        else:
            tracer_provider, meter_provider = _local_providers(settings)
            trace.set_tracer_provider(tracer_provider)
            metrics.set_meter_provider(meter_provider)
            install(tracer_provider, meter_provider)
        log.info("telemetry on: %s", ", ".join(name for name, on in (
            ("Application Insights", settings.app_insights_connection_string),
            ("OTLP", settings.otlp_endpoint), ("console", settings.console)) if on))
        return True


def _azure_monitor() -> None:
    from shared.adapters.azure_monitor import export_to_application_insights  # imported only in Azure

    export_to_application_insights(Resource.create({SERVICE_NAME: SERVICE}))


def _local_providers(settings: TelemetrySettings) -> tuple[TracerProvider, MeterProvider]:
    processors: list[SpanProcessor] = []
    readers: list[MetricReader] = []
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processors.append(batch_span_processor(OTLPSpanExporter()))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    if settings.console:
        processors.append(batch_span_processor(ConsoleSpanExporter()))
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=30_000))
    resource = Resource.create({SERVICE_NAME: SERVICE})
    tracer_provider = TracerProvider(resource=resource)
    for processor in processors:
        tracer_provider.add_span_processor(processor)
    # Exemplars (a sampled measurement tied to its span) would cost each measurement a look at the span.
    return tracer_provider, MeterProvider(resource=resource, metric_readers=readers,
                                          exemplar_filter=AlwaysOffExemplarFilter())
