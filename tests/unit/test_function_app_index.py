"""Index ``function_app.app`` as the Functions host does and check every function against the code's settings,
``infra/``, ``host.json`` and ``local.settings.example.json``: what a deployment would otherwise find out late."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from croniter import croniter

from function_app import app
from functions.queues import queue_triggers
from shared.config import SERVICE_BUS_CONNECTION, SETTING_NAMES, queue_batches_on
from shared.domain.events import QUEUE_NAMES
from shared.ports import MAX_LOCK_RENEWAL, MAX_MESSAGE_BATCH

ROOT = Path(__file__).resolve().parents[2]
# Probes and load balancers carry no function key; ARM clients carry an Entra bearer token instead (the app checks
# it); the dashboard page holds no data (it asks for a key and calls the API with it).
ANONYMOUS_FUNCTIONS = {"health", "arm", "dashboard"}
# Key-like secrets: storage/Service Bus keys, or any long base64 run (a key pasted without its name).
SECRET_PATTERNS = (re.compile(r"AccountKey=", re.I), re.compile(r"SharedAccessKey=", re.I),
                   re.compile(r"[A-Za-z0-9+/]{40,}={0,2}"))


def index() -> list[tuple[str, dict[str, Any]]]:
    """(function name, trigger binding) for every registered function."""
    # get_functions() remembers the names it indexed and rejects them on a second call (the host indexes once
    # per process); forget them so this module can index the real app whatever ran before it.
    app.functions_bindings = None
    indexed = []
    for fn in app.get_functions():
        trigger = fn.get_trigger()
        assert trigger is not None, fn.get_function_name()
        indexed.append((str(fn.get_function_name()), trigger.get_dict_repr()))
    return indexed


def triggers_of(kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [(name, trigger) for name, trigger in index() if trigger["type"] == kind]


def local_settings() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / "local.settings.example.json").read_text())
    return loaded


def host_json() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / "host.json").read_text())
    return loaded


def test_function_names_are_unique() -> None:
    names = [name for name, _ in index()]
    assert len(names) == len(set(names)), names


def test_queue_triggers_are_exactly_the_event_queues_with_sessions_on_the_shared_connection() -> None:
    queue_triggers = triggers_of("serviceBusTrigger")
    assert sorted(t["queueName"] for _, t in queue_triggers) == sorted(QUEUE_NAMES)
    for name, trigger in queue_triggers:
        assert trigger["connection"] == SERVICE_BUS_CONNECTION == "ServiceBusConnection", name
        assert trigger["isSessionsEnabled"] is True, name  # the queues require sessions (infra)
        # batches of one session: a cluster's look-only events among them are reconciled once
        assert trigger["cardinality"] == func.Cardinality.MANY, name


def test_queue_names_match_the_service_bus_bicep() -> None:
    candidates = [p for p in sorted((ROOT / "infra").rglob("*.bicep"))
                  if all(q in p.read_text() for q in QUEUE_NAMES)]
    if not candidates:
        pytest.skip("no .bicep file declares the queues")
    for path in candidates:
        declared = set(re.findall(r"'([a-z0-9-]+-events)'", path.read_text()))
        assert declared == set(QUEUE_NAMES), path


def test_the_connection_settings_appear_in_local_settings() -> None:
    values = local_settings()["Values"]
    assert f"{SERVICE_BUS_CONNECTION}__fullyQualifiedNamespace" in values
    assert "ServiceBusConnection__fullyQualifiedNamespace" in SETTING_NAMES


def test_every_setting_the_app_reads_is_in_local_settings() -> None:
    settings = local_settings()
    assert settings["IsEncrypted"] is False
    assert settings["Values"]["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert sorted(set(SETTING_NAMES) - set(settings["Values"])) == []
    for name in ("ServiceBusConnection__credential", "ServiceBusConnection__clientId", "COSMOS__accountEndpoint",
                 "COSMOS__credential", "COSMOS__clientId", "AZURE_CLIENT_ID", "AzureWebJobsStorage"):
        assert name in settings["Values"], name


def test_local_settings_hold_placeholders_not_secrets() -> None:
    text = (ROOT / "local.settings.example.json").read_text()
    for pattern in SECRET_PATTERNS:
        assert pattern.search(text) is None, pattern.pattern
    assert "<your-namespace>.servicebus.windows.net" in text


@pytest.mark.parametrize("pasted", [
    "DefaultEndpointsProtocol=https;AccountName=st;AccountKey=<key>",
    "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=<key>",
    "a1B2c3D4" * 6 + "==",
])
def test_the_secret_check_would_catch_a_pasted_key(pasted: str) -> None:
    assert any(p.search(pasted) for p in SECRET_PATTERNS)


def test_timer_schedules_are_valid_six_field_ncrontab() -> None:
    timers = triggers_of("timerTrigger")
    assert timers, "the sweep timer is registered"
    for name, trigger in timers:
        schedule = trigger["schedule"]
        assert len(schedule.split()) == 6, (name, schedule)  # NCRONTAB: second minute hour day month weekday
        assert croniter.is_valid(schedule, second_at_beginning=True), (name, schedule)


def test_http_functions_need_a_function_key_except_health() -> None:
    http = triggers_of("httpTrigger")
    assert {name for name, _ in http} >= ANONYMOUS_FUNCTIONS
    for name, trigger in http:
        expected = func.AuthLevel.ANONYMOUS if name in ANONYMOUS_FUNCTIONS else func.AuthLevel.FUNCTION
        assert trigger["authLevel"] == expected, name


def test_host_json_pins_the_bundle_and_the_service_bus_settings() -> None:
    host = host_json()
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}
    assert host["functionTimeout"] == "00:05:00"
    service_bus = host["extensions"]["serviceBus"]
    assert service_bus["prefetchCount"] == 0
    assert service_bus["autoCompleteMessages"] is True
    assert service_bus["maxConcurrentCalls"] == 16
    assert service_bus["maxConcurrentSessions"] == 8
    # the batch the local host and receiver hand a trigger is the one the Functions host hands it
    assert service_bus["maxMessageBatchSize"] == MAX_MESSAGE_BATCH
    assert service_bus["sessionIdleTimeout"] == "00:00:05"
    # a function that outlives its lock renewal would run twice: renewal must cover the whole timeout
    assert service_bus["maxAutoLockRenewalDuration"] == host["functionTimeout"]
    # ... and the local host and receiver renew as long as the Functions host does
    hours, minutes, seconds = (int(part) for part in service_bus["maxAutoLockRenewalDuration"].split(":"))
    assert timedelta(hours=hours, minutes=minutes, seconds=seconds) == MAX_LOCK_RENEWAL
    assert service_bus["clientRetryOptions"]["mode"] == "exponential"
    assert set(service_bus["clientRetryOptions"]) == {"mode", "tryTimeout", "delay", "maxDelay", "maxRetries"}
    # the extension 5.x names: the older nested sections are ignored by it
    assert not {"messageHandlerOptions", "sessionHandlerOptions", "batchOptions"} & set(service_bus)


def test_host_json_logging_levels() -> None:
    logging = host_json()["logging"]
    assert logging["logLevel"]["default"] == "Information"
    assert logging["logLevel"]["Host.Results"] == "Error"
    assert logging["logLevel"]["Function"] == "Information"
    assert logging["applicationInsights"]["samplingSettings"]["isEnabled"] is True


def test_queue_batches_are_a_setting_that_azure_turns_off_and_a_wrong_value_is_named() -> None:
    assert queue_batches_on({}) is True  # the embedded queue: the local host batches, and moves on at once
    assert queue_batches_on({"COMPUTEPLANE_BUS": "servicebus"}) is False  # Azure's host would serialise sessions
    assert queue_batches_on({"COMPUTEPLANE_BUS": "servicebus", "COMPUTEPLANE_QUEUE_BATCHES": "on"}) is True
    assert queue_batches_on({"COMPUTEPLANE_QUEUE_BATCHES": "OFF"}) is False
    with pytest.raises(ValueError, match="COMPUTEPLANE_QUEUE_BATCHES: must be on or off, got 'maybe'"):
        queue_batches_on({"COMPUTEPLANE_QUEUE_BATCHES": "maybe"})
    bicep = (ROOT / "infra" / "app" / "api.bicep").read_text()
    # the extension serves a batch trigger on sessions one session at a time per instance: Azure takes singles
    assert re.search(r"name: 'COMPUTEPLANE_QUEUE_BATCHES'\s*\n\s*value: 'off'", bicep)
    single = func.FunctionApp()
    single.register_functions(queue_triggers(batches=False))
    triggers = [fn.get_trigger().get_dict_repr() for fn in single.get_functions()]
    assert sorted(t["queueName"] for t in triggers) == sorted(QUEUE_NAMES)
    assert {t["cardinality"] for t in triggers} == {func.Cardinality.ONE}
    assert all(t["isSessionsEnabled"] is True for t in triggers)
