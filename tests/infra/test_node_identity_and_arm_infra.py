"""What a deployed app needs beyond provisioning pools: the identity every Batch pool carries to fetch jobs' code and
mount checkpoints (with storage roles on exactly those two containers, and the app allowed to assign it), and the
settings of the ARM-shaped API (Entra tokens of the deployment's tenant, for the audience the operator registers)."""

from __future__ import annotations

from typing import Any

from shared.config import AzureBatchSettings
from tests.infra.test_infra import INFRA, _app_settings, _code, _parsed, _resources_of_type

MANAGED_IDENTITY_OPERATOR = "f1a07417-d97a-45cb-824c-7a7467783830"
STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"


def _role_id(parsed: dict[str, Any], assignment: dict[str, Any]) -> str:
    """The built-in role id an assignment's subscriptionResourceId(...roleDefinitions, <var>) names."""
    call = assignment["properties"]["roleDefinitionId"]["function"]
    assert call["type"] == "subscription_resource_id"
    assert call["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    value: str = parsed["variables"][call["parameters"]["resource_name_1"]]["value"]
    return value


def _module(name: str) -> dict[str, Any]:
    module: dict[str, Any] = _parsed(INFRA / "main.bicep")["modules"][name]
    return module


def _only_with_batch(module: dict[str, Any]) -> bool:
    condition = module["config"].get("condition", {}).get("operator", {})
    return condition.get("type") == "equals" and condition.get("operands") == {
        "operand_1": "nodeProvider", "operand_2": "azurebatch"}


def test_every_pool_carries_a_node_identity_the_app_may_assign_and_nothing_wider() -> None:
    parsed = _parsed(INFRA / "app" / "batch.bicep")
    [identity] = [name for name, resource in parsed["resources"].items()
                  if resource["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities"]
    [operator] = [resource["config"] for resource in parsed["resources"].values()
                  if resource["type"] == "Microsoft.Authorization/roleAssignments"
                  and resource["config"].get("scope") == identity]
    assert _role_id(parsed, operator) == MANAGED_IDENTITY_OPERATOR
    assert operator["properties"]["principalId"] == "appPrincipalId"
    assert "condition" not in operator  # not tied to grantManagedIdentityOperator: pools cannot be created without it
    assert parsed["outputs"]["nodeIdentityId"]["value"]["operator"]["operands"] == {
        "operand_1": identity, "operand_2": "id"}


def test_the_node_identity_reads_snapshots_and_writes_checkpoints_on_those_containers_only() -> None:
    parsed = _parsed(INFRA / "app" / "node-storage-rbac.bicep")
    containers = {name: resource["config"]["name"] for name, resource in parsed["resources"].items()
                  if resource["type"] == "Microsoft.Storage/storageAccounts/blobServices/containers"}
    assert sorted(containers.values()) == ["checkpointContainerName", "snapshotContainerName"]
    roles = {containers[assignment["scope"]]: _role_id(parsed, assignment)
             for assignment in _resources_of_type(parsed, "Microsoft.Authorization/roleAssignments")}
    assert roles == {"snapshotContainerName": STORAGE_BLOB_DATA_READER,
                     "checkpointContainerName": STORAGE_BLOB_DATA_CONTRIBUTOR}
    for assignment in _resources_of_type(parsed, "Microsoft.Authorization/roleAssignments"):
        assert assignment["properties"]["principalId"] == "nodePrincipalId"


def test_the_checkpoints_container_is_private_and_made_only_for_batch() -> None:
    storage = _parsed(INFRA / "app" / "storage.bicep")
    [container] = [resource["config"] for resource in storage["resources"].values()
                   if resource["type"] == "Microsoft.Storage/storageAccounts/blobServices/containers"
                   and resource["config"].get("config", {}).get("name") == "checkpoints"]
    assert container["condition"] == "createCheckpointContainer"
    assert container["config"]["properties"]["publicAccess"] == "None"
    storage_module = _module("storage")["config"]["params"]["createCheckpointContainer"]
    assert storage_module["operator"]["operands"] == {"operand_1": "nodeProvider", "operand_2": "azurebatch"}
    assert _only_with_batch(_module("batch")) and _only_with_batch(_module("nodeStorageRbac"))
    assert "scope" not in _module("nodeStorageRbac")["config"]["config"]  # the storage account's resource group


def test_the_app_is_told_the_node_identity_and_the_checkpoint_container_and_reads_them() -> None:
    settings = _app_settings(_code("app/api.bicep"))
    assert settings["COMPUTEPLANE_BATCH_NODE_IDENTITY"] == "batchNodeIdentityId"
    assert settings["COMPUTEPLANE_CHECKPOINT_CONTAINER"] == "checkpointContainerName"
    params = _module("api")["config"]["params"]
    assert params["checkpointContainerName"]["operator"]["operands"]["operand_2"]["operator"]["operands"][
        "operand_2"] == "checkpointContainerName"
    assert "nodeIdentityId" in str(params["batchNodeIdentityId"])
    batch = AzureBatchSettings.from_env({
        "AZURE_SUBSCRIPTION_ID": "sub", "COMPUTEPLANE_NODE_RESOURCE_GROUP": "rg", "COMPUTEPLANE_BATCH_ACCOUNT": "b",
        "COMPUTEPLANE_BATCH_ACCOUNT_ENDPOINT": "https://b.eastus.batch.azure.com",
        "COMPUTEPLANE_SNAPSHOT_ACCOUNT_URL": "https://st.blob.core.windows.net/",
        "COMPUTEPLANE_CHECKPOINT_CONTAINER": "checkpoints", "COMPUTEPLANE_BATCH_NODE_IDENTITY": "/subscriptions/x"})
    assert batch.checkpoint_container_url == "https://st.blob.core.windows.net/checkpoints"
    assert batch.node_identity_id == "/subscriptions/x"


def test_the_arm_api_checks_entra_tokens_of_the_deployment_tenant_for_the_registered_audience() -> None:
    settings = _app_settings(_code("app/api.bicep"))
    assert settings["COMPUTEPLANE_ARM_AUTH"] == "'entra'"
    assert settings["COMPUTEPLANE_ARM_TENANT_ID"] == "tenant().tenantId"
    assert settings["COMPUTEPLANE_ARM_AUDIENCE"] == "armAudience"
    main = _parsed(INFRA / "main.bicep")
    assert main["parameters"]["armAudience"]["default"] == ""
    assert _module("api")["config"]["params"]["armAudience"] == "armAudience"
    readme = (INFRA / "README.md").read_text(encoding="utf-8")
    assert "az ad app create" in readme and "--identifier-uris" in readme
    assert "ComputePlane.All" in readme and "Workspace.<name>" in readme
