"""Application Insights through ``azure-monitor-opentelemetry``: traces, metrics and logs of this process.

It reads ``APPLICATIONINSIGHTS_CONNECTION_STRING`` itself (set by the Bicep). The component has local (key)
authentication disabled, so telemetry is sent with the app's managed identity (``AZURE_CLIENT_ID``; the Bicep
grants it Monitoring Metrics Publisher): no key anywhere. Our own ASGI middleware makes the request spans, so the
distro's FastAPI instrumentation would only double them."""

from __future__ import annotations

import os

from azure.monitor.opentelemetry import configure_azure_monitor
from opentelemetry.sdk.resources import Resource

from shared.adapters.credentials import azure_credential


def export_to_application_insights(resource: Resource) -> None:
    configure_azure_monitor(resource=resource, credential=azure_credential(os.environ.get("AZURE_CLIENT_ID")),
                            instrumentation_options={"fastapi": {"enabled": False}})
