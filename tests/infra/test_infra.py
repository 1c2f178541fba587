"""The Bicep in infra/ parses, agrees with the names the code uses, and passes checkov.

The names the code and the infrastructure must agree on (queues, Cosmos database/container/partition
key, app settings) are pinned here as constants, checked against the Bicep text on every run, and
also compared with `shared.config` when that module exposes them.
"""

from __future__ import annotations

import enum
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.cosmos_store import INDEXING_POLICY

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# --- the contract between code and infrastructure ------------------------------------------------

QUEUE_NAMES = ("cluster-events", "job-events", "scale-events")
COSMOS_DATABASE = "computeplane"
COSMOS_CONTAINER = "state"
COSMOS_PARTITION_KEY = "/workspace"

# App settings of the Function App. Identity-based connections only: a `__credential` and a
# `__clientId` next to every endpoint, never a key or a connection string with a secret.
SETTING_NAMES = (
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "ServiceBusConnection__fullyQualifiedNamespace",
    "ServiceBusConnection__credential",
    "ServiceBusConnection__clientId",
    "COSMOS__accountEndpoint",
    "COSMOS_DATABASE",
    "COSMOS_CONTAINER",
    "AZURE_CLIENT_ID",
    "COMPUTEPLANE_STORE",
    "COMPUTEPLANE_BUS",
    "COMPUTEPLANE_WORKSPACE_LOCATION",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
)
FIXED_SETTING_VALUES = {
    "AzureWebJobsStorage__credential": "managedidentity",
    "ServiceBusConnection__credential": "managedidentity",
    "COMPUTEPLANE_STORE": "cosmos",
    "COMPUTEPLANE_BUS": "servicebus",
}
# Settings the code itself reads (the others are read by the Functions host or the SDKs).
SETTINGS_READ_BY_CODE = (
    "COSMOS__accountEndpoint",
    "COSMOS_DATABASE",
    "COSMOS_CONTAINER",
    "COMPUTEPLANE_STORE",
    "COMPUTEPLANE_BUS",
    "COMPUTEPLANE_WORKSPACE_LOCATION",
)
# A setting with one of these prefixes, if the code declares it, must be provided in Azure.
CLOUD_SETTING_PREFIXES = (
    "AzureWebJobsStorage__",
    "ServiceBusConnection__",
    "COSMOS",
    "AZURE_CLIENT_ID",
    "APPLICATIONINSIGHTS_",
)

ROLE_IDS = {
    "Azure Service Bus Data Sender": "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
    "Azure Service Bus Data Receiver": "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Cosmos DB Built-in Data Contributor": "00000000-0000-0000-0000-000000000002",
}

# --- reading Bicep without a Bicep toolchain -----------------------------------------------------


def _strip_comments(text: str) -> str:
    """Bicep source without // and /* */ comments; string literals (which may hold '//') kept."""
    out: list[str] = []
    i, n, in_string = 0, len(text), False
    while i < n:
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if ch == "'":
                in_string = False
            i += 1
        elif ch == "'":
            in_string = True
            out.append(ch)
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end == -1 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end == -1 else end + 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _code(relative: str) -> str:
    return _strip_comments((INFRA / relative).read_text(encoding="utf-8"))


def _all_code() -> str:
    return "\n".join(_strip_comments(p.read_text(encoding="utf-8")) for p in BICEP_FILES)


def _string_literals(code: str) -> set[str]:
    return set(re.findall(r"'((?:[^'\\]|\\.)*)'", code))


def _app_settings(code: str) -> dict[str, str]:
    """`{ name: 'X' value: <expr> }` pairs of siteConfig.appSettings, as name -> value text."""
    pairs = re.findall(r"name:\s*'([^']+)'\s*\n\s*value:\s*([^\n]+)", code)
    return {name: value.strip() for name, value in pairs}


def _parsed(path: Path) -> dict[str, Any]:
    pycep = pytest.importorskip("pycep", reason="pycep-parser is a dev dependency")
    parsed: dict[str, Any] = pycep.BicepParser().parse(file_path=path)
    return parsed


def _resources_of_type(parsed: Mapping[str, Any], resource_type: str) -> list[dict[str, Any]]:
    """Resource bodies of one type; a `[for ...]` loop's body is unwrapped."""
    found = []
    for resource in parsed.get("resources", {}).values():
        if resource.get("type") == resource_type and not resource.get("existing"):
            config = resource["config"]
            found.append(config.get("config", config) if "loop_type" in config else config)
    return found


def _names(value: Any) -> set[str]:
    """Names held by a config constant: a str, a mapping (its values), an Enum or an iterable."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, type) and issubclass(value, enum.Enum):
        return {str(member.value) for member in value}
    if isinstance(value, Mapping):
        return {str(v) for v in value.values()}
    if isinstance(value, Iterable):
        return {str(v) for v in value}
    raise TypeError(f"cannot read names from {value!r}")


def _code_config() -> Any:
    """`shared.config` if the code has it; the comparison tests skip otherwise."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    try:
        return importlib.import_module("shared.config")
    except ModuleNotFoundError as error:
        if error.name not in ("shared", "shared.config"):
            raise  # shared.config exists but is broken: that is a failure, not a skip
        pytest.skip("shared.config does not exist yet")


def _code_constant(name: str) -> Any:
    config = _code_config()
    if not hasattr(config, name):
        pytest.skip(f"shared.config does not expose {name}")
    return getattr(config, name)


# --- 1. every Bicep file parses --------------------------------------------------------------------


def test_infra_has_a_main_template_and_modules() -> None:
    assert (INFRA / "main.bicep").is_file()
    modules = {p.name for p in (INFRA / "app").glob("*.bicep")}
    assert {"api.bicep", "servicebus.bicep", "db.bicep", "monitoring.bicep", "storage.bicep", "rbac.bicep"} <= modules


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_bicep_file_parses(path: Path) -> None:
    parsed = _parsed(path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path} declares nothing"


def test_main_references_only_modules_that_exist() -> None:
    for module_path in re.findall(r"^module\s+\w+\s+'([^']+)'", _code("main.bicep"), flags=re.M):
        assert (INFRA / module_path).is_file(), module_path


def test_every_parameter_is_described() -> None:
    for path in BICEP_FILES:
        for name, param in _parsed(path).get("parameters", {}).items():
            kinds = {d["type"] for d in param.get("decorators", [])}
            assert "description" in kinds, f"{path.relative_to(INFRA)}: param {name} has no @description"


# --- 2. names line up with the code --------------------------------------------------------------


def test_queue_names_are_declared() -> None:
    literals = _string_literals(_code("app/servicebus.bicep"))
    assert set(QUEUE_NAMES) <= literals
    declared = re.search(r"var queueNames = \[(.*?)\]", _code("app/servicebus.bicep"), flags=re.S)
    assert declared, "servicebus.bicep must declare var queueNames"
    assert sorted(re.findall(r"'([^']+)'", declared.group(1))) == sorted(QUEUE_NAMES), "exactly three queues"


def test_cosmos_names_and_partition_key_are_declared() -> None:
    main = _code("main.bicep")
    assert re.search(rf"var cosmosDatabaseName = '{COSMOS_DATABASE}'", main)
    assert re.search(rf"var cosmosContainerName = '{COSMOS_CONTAINER}'", main)
    assert re.search(rf"partitionKeyPath: '{COSMOS_PARTITION_KEY}'", main)
    db = _string_literals(_code("app/db.bicep"))
    assert {COSMOS_DATABASE, COSMOS_CONTAINER, COSMOS_PARTITION_KEY} <= db, "db.bicep defaults"


def test_app_settings_are_identity_based_and_named_as_the_code_expects() -> None:
    settings = _app_settings(_code("app/api.bicep"))
    missing = [name for name in SETTING_NAMES if name not in settings]
    assert not missing, f"app settings missing from api.bicep: {missing}"
    for name, value in FIXED_SETTING_VALUES.items():
        assert settings[name] == f"'{value}'", (name, settings[name])
    for prefix in ("AzureWebJobsStorage", "ServiceBusConnection"):
        assert settings[f"{prefix}__clientId"] == "identityClientId"
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert "Authorization=AAD;ClientId=${identityClientId}" in settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    code = _all_code()
    for forbidden in ("listKeys(", "listConnectionStrings(", "AccountKey=", "SharedAccessKey"):
        assert forbidden not in code, f"keys do not belong in the infrastructure: {forbidden}"


def test_code_names_match_infra_when_shared_config_exposes_them() -> None:
    """Runs whenever shared.config exists; each constant it lacks is reported as a skip."""
    config = _code_config()
    checked = []
    if hasattr(config, "QUEUE_NAMES"):
        assert _names(config.QUEUE_NAMES) == set(QUEUE_NAMES)
        checked.append("QUEUE_NAMES")
    if hasattr(config, "COSMOS_DATABASE_DEFAULT"):
        assert config.COSMOS_DATABASE_DEFAULT == COSMOS_DATABASE
        checked.append("COSMOS_DATABASE_DEFAULT")
    if hasattr(config, "COSMOS_CONTAINER_DEFAULT"):
        assert config.COSMOS_CONTAINER_DEFAULT == COSMOS_CONTAINER
        checked.append("COSMOS_CONTAINER_DEFAULT")
    if hasattr(config, "SETTING_NAMES"):
        code_names = _names(config.SETTING_NAMES)
        unread = sorted(set(SETTINGS_READ_BY_CODE) - code_names)
        assert not unread, f"the infra sets {unread} but shared.config.SETTING_NAMES does not read them"
        provided = _app_settings(_code("app/api.bicep"))
        cloud = {name for name in code_names if name.startswith(CLOUD_SETTING_PREFIXES)}
        unprovided = sorted(cloud - set(provided))
        assert not unprovided, f"shared.config reads {unprovided} but api.bicep does not set them"
        checked.append("SETTING_NAMES")
    if not checked:
        pytest.skip("shared.config exposes none of QUEUE_NAMES, COSMOS_*_DEFAULT, SETTING_NAMES")


# --- the properties the design depends on ---------------------------------------------------------


def test_queues_are_sessionful_deduplicated_and_dead_letter() -> None:
    parsed = _parsed(INFRA / "app/servicebus.bicep")
    event_queues, dead_letters = _resources_of_type(parsed, "Microsoft.ServiceBus/namespaces/queues")
    assert dead_letters["name"] == "deadletter" and dead_letters["properties"]["requiresSession"] is False
    queue = event_queues
    expected = {
        "requiresSession": True,
        "requiresDuplicateDetection": True,
        "duplicateDetectionHistoryTimeWindow": "PT10M",
        "maxDeliveryCount": 10,
        "deadLetteringOnMessageExpiration": True,
        "lockDuration": "PT1M",
    }
    assert {key: queue["properties"].get(key) for key in expected} == expected
    (namespace,) = _resources_of_type(parsed, "Microsoft.ServiceBus/namespaces")
    assert namespace["sku"]["name"] == "Standard"
    assert namespace["properties"]["disableLocalAuth"] is True


def test_cosmos_is_serverless_keyless_with_the_reconcile_index() -> None:
    parsed = _parsed(INFRA / "app/db.bicep")
    (account,) = _resources_of_type(parsed, "Microsoft.DocumentDB/databaseAccounts")
    assert {"name": "EnableServerless"} in account["properties"]["capabilities"]
    assert account["properties"]["disableLocalAuth"] is True
    (container,) = _resources_of_type(parsed, "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers")
    resource = container["properties"]["resource"]
    assert resource["indexingPolicy"] == INDEXING_POLICY  # the store creates the same one on the local server
    # Tombstones of deleted clusters expire. pycep spells -1 as unary minus applied to 1.
    assert resource["defaultTtl"] == {"operator": {"type": "minus", "operands": {"integer_value": 1}}}


def test_host_storage_is_keyless_and_has_a_deployment_container() -> None:
    parsed = _parsed(INFRA / "app/storage.bicep")
    (account,) = _resources_of_type(parsed, "Microsoft.Storage/storageAccounts")
    properties = account["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["supportsHttpsTrafficOnly"] is True
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert _resources_of_type(parsed, "Microsoft.Storage/storageAccounts/blobServices/containers")


def test_function_app_is_flex_consumption_python_with_a_user_assigned_identity() -> None:
    parsed = _parsed(INFRA / "app/api.bicep")
    (plan,) = _resources_of_type(parsed, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    (site,) = _resources_of_type(parsed, "Microsoft.Web/sites")
    assert site["identity"]["type"] == "UserAssigned"
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"]["name"] == "python"
    assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert parsed["parameters"]["pythonVersion"]["default"] == "3.11"


def test_app_identity_gets_the_data_roles_it_needs() -> None:
    rbac = _code("app/rbac.bicep")
    for role, role_id in ROLE_IDS.items():
        assert role_id in rbac, f"rbac.bicep does not grant {role}"
    assert "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments" in rbac
    provisioning = _code("app/provisioning-rbac.bicep")
    assert "b24988ac-6180-42dd-ab2e-4da4d60c2bf7" in provisioning  # Contributor
    assert "9980e02c-c2be-4d73-94e8-173b1dc7cf3c" in provisioning  # Virtual Machine Contributor
    assert re.search(r"scope: resourceGroup\(nodeGroupName\)", _code("main.bicep"))


def test_every_checkov_skip_gives_a_reason() -> None:
    for path in BICEP_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            if "checkov:skip=" in line:
                assert re.search(r"checkov:skip=CKV2?_AZURE_\d+:\s*\S.{20,}", line), f"{path.name}: {line.strip()}"


# --- 3. checkov passes -----------------------------------------------------------------------------


def _checkov_command() -> list[str] | None:
    """checkov from this interpreter's environment, else $CHECKOV, else PATH.

    checkov 3.3.30 pins packaging<24 and pycep-parser==0.5.1, which conflict with pytest>=9 and
    pycep-parser 0.7.1, so it may live in its own environment (pipx, uv tool, a venv).
    """
    script = Path(sys.executable).parent / "checkov"
    if script.is_file():
        return [str(script)]
    try:
        importlib.import_module("checkov")
    except ImportError:
        pass
    else:
        return [sys.executable, "-m", "checkov.main"]
    for candidate in (os.environ.get("CHECKOV"), shutil.which("checkov")):
        if candidate and Path(candidate).is_file():
            return [candidate]
    return None


def test_checkov_passes(tmp_path: Path) -> None:
    command = _checkov_command()
    if command is None:
        pytest.skip("checkov is not installed (pip install checkov==3.3.30, or set CHECKOV=/path/to/checkov)")
    report = tmp_path / "checkov.json"
    options = ["-d", "infra", "--framework", "bicep", "--quiet", "--compact"]
    offline = ["--skip-download"]  # no guideline lookups on Prisma Cloud
    outputs = ["-o", "cli", "-o", "json", "--output-file-path", f"console,{report}"]
    result = subprocess.run(
        [*command, *options, *offline, *outputs],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )
    assert result.returncode == 0, f"checkov failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    reports = json.loads(report.read_text(encoding="utf-8"))
    summaries = [r["summary"] for r in reports] if isinstance(reports, list) else [reports.get("summary", reports)]
    for summary in summaries:
        assert summary["failed"] == 0, result.stdout
        assert summary["parsing_errors"] == 0, "checkov could not parse every .bicep file"
        assert summary["passed"] + summary["skipped"] > 0, "checkov checked nothing"
