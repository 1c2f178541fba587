"""One list of settings: SETTING_NAMES (what the code reads), local.settings.example.json (every one, with a
placeholder) and the app settings of infra/app/api.bicep (the deployed ones) say the same; each is a typed field."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from shared.config import DEPLOYED_SETTING_NAMES, SETTING_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]


def read_by_the_host(name: str) -> bool:
    """Settings of the Functions host, of the identity-based connections and of the OpenTelemetry SDK (its sampler),
    which the app's code never reads."""
    return (name in ("FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING")
            or name.startswith(("AzureWebJobsStorage__", "OTEL_TRACES_SAMPLER"))
            or name.endswith(("__credential", "__clientId")))


def bicep_app_settings() -> set[str]:
    code = (ROOT / "infra" / "app" / "api.bicep").read_text()
    return set(re.findall(r"name:\s*'([^']+)'\s*\n\s*value:", code))


def test_the_example_lists_exactly_the_settings_the_code_reads() -> None:
    example = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert sorted(n for n in example if not read_by_the_host(n)) == sorted(SETTING_NAMES)
    assert len(SETTING_NAMES) == len(set(SETTING_NAMES))


def test_the_bicep_gives_exactly_the_deployed_settings() -> None:
    assert sorted(n for n in bicep_app_settings() if not read_by_the_host(n)) == sorted(DEPLOYED_SETTING_NAMES)
    assert set(DEPLOYED_SETTING_NAMES) <= set(SETTING_NAMES)


def test_every_setting_is_a_typed_field_not_a_raw_copy() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert "extra" not in fields
    example = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    settings = Settings.from_env({n: v for n, v in example.items() if not v.startswith("<") and n not in (
        "COMPUTEPLANE_PROVIDER", "COMPUTEPLANE_RUNS_DIR")})
    assert settings.quota_limits.total_regional_dedicated_vcpus == 350
    assert Settings.from_env({"COMPUTEPLANE_DENIED_RESOURCES": "https://a,https://b"}).denied_resources == {
        "https://a", "https://b"}
    assert Settings.from_env({"COMPUTEPLANE_PREEMPTION_RATE_PER_NODE_HOUR": "2.5"}).preemption_rate_per_node_hour == 2.5
