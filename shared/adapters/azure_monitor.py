"""Application Insights through ``azure-monitor-opentelemetry``: traces, metrics and logs of this process.

It reads ``APPLICATIONINSIGHTS_CONNECTION_STRING`` itself (set by the Bicep; no key in code). Our own ASGI
middleware makes the request spans, so its FastAPI instrumentation would only double them."""

from __future__ import annotations

from azure.monitor.opentelemetry import configure_azure_monitor
from opentelemetry.sdk.resources import Resource


def export_to_application_insights(resource: Resource) -> None:
    configure_azure_monitor(resource=resource, instrumentation_options={"fastapi": {"enabled": False}})
