"""In Azure, telemetry goes to Application Insights through azure-monitor-opentelemetry, configured from
APPLICATIONINSIGHTS_CONNECTION_STRING with the managed identity (no key). Run in a subprocess: it sets the
process's global providers. Nothing is sent (the ingestion endpoint is a closed local port)."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
from shared.telemetry.setup import TelemetrySettings, configure_telemetry
from shared.telemetry.state import current
from opentelemetry import trace
settings = TelemetrySettings.from_env()
assert settings.app_insights_connection_string and configure_telemetry(settings)
from opentelemetry import metrics
provider = trace.get_tracer_provider()
assert current() is not None and type(provider).__module__ == "opentelemetry.sdk.trace", provider
assert type(provider.sampler).__module__.startswith("azure.monitor.opentelemetry"), provider.sampler
assert type(metrics.get_meter_provider()).__module__.startswith("opentelemetry.sdk.metrics")
print("configured")
"""


def test_application_insights_is_configured_from_the_connection_string_with_the_managed_identity() -> None:
    env = {**os.environ, "APPLICATIONINSIGHTS_CONNECTION_STRING":
           "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/",
           "AZURE_CLIENT_ID": "11111111-1111-1111-1111-111111111111", "IDENTITY_ENDPOINT": "http://127.0.0.1:9/msi",
           "IDENTITY_HEADER": "placeholder", "OTEL_BSP_SCHEDULE_DELAY": "60000"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "configured" in done.stdout
