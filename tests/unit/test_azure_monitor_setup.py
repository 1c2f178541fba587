"""In Azure, telemetry goes to Application Insights through azure-monitor-opentelemetry, configured from
APPLICATIONINSIGHTS_CONNECTION_STRING with the managed identity (no key). Run in a subprocess: it sets the
process's global providers. Nothing is sent (the ingestion endpoint is a closed local port)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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


def _azure_env() -> dict[str, str]:
    return {**os.environ, "APPLICATIONINSIGHTS_CONNECTION_STRING":
           "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/",
           "AZURE_CLIENT_ID": "11111111-1111-1111-1111-111111111111", "IDENTITY_ENDPOINT": "http://127.0.0.1:9/msi",
           "IDENTITY_HEADER": "placeholder", "OTEL_BSP_SCHEDULE_DELAY": "60000"}


def test_application_insights_is_configured_from_the_connection_string_with_the_managed_identity() -> None:
    env = {name: value for name, value in _azure_env().items() if not name.startswith("OTEL_TRACES_SAMPLER")}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "configured" in done.stdout


DEPLOYED_SAMPLER = """
from shared.telemetry.setup import TelemetrySettings, configure_telemetry
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import ParentBased
assert configure_telemetry(TelemetrySettings.from_env())
sampler = trace.get_tracer_provider().sampler
assert isinstance(sampler, ParentBased), sampler
print(sampler.get_description())
"""


def _bicep_setting(name: str) -> str:
    bicep = (Path(__file__).parents[2] / "infra" / "app" / "api.bicep").read_text()
    value = re.search(rf"name: '{name}'\s+value: (\S+)", bicep)
    assert value, f"{name} is not set in api.bicep"
    if value.group(1).startswith("'"):
        return value.group(1).strip("'")
    default = re.search(rf"param {value.group(1)} string = '([^']*)'", bicep)
    assert default, value.group(1)
    return default.group(1)


def test_the_deployed_sampler_follows_the_callers_sampled_flag() -> None:
    """The Bicep's OTEL_TRACES_SAMPLER, as the distro reads it: parent-based, with its ratio where a trace starts."""
    sampler, ratio = _bicep_setting("OTEL_TRACES_SAMPLER"), _bicep_setting("OTEL_TRACES_SAMPLER_ARG")
    assert 0 < float(ratio) <= 1, ratio
    env = {**_azure_env(), "OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": ratio}
    done = subprocess.run([sys.executable, "-c", DEPLOYED_SAMPLER], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"TraceIdRatioBased{{{float(ratio)}}}" in done.stdout, done.stdout
