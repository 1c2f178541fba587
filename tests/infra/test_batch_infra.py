"""The Batch account in infra/ and what the app needs to provision nodes with it (COMPUTEPLANE_PROVIDER=azurebatch):
the settings the code reads, the roles its identity gets, and where."""

from __future__ import annotations

import re

import pytest

from shared.config import AzureBatchSettings
from tests.infra.test_infra import INFRA, _app_settings, _code, _parsed, _resources_of_type

BATCH_ACCOUNT_CONTRIBUTOR = "29fe4964-1e60-436b-bd3a-77fd4c178b3c"
BATCH_DATA_CONTRIBUTOR = "6aaa78f1-f7de-44ca-8722-c64a23943cae"
MANAGED_IDENTITY_CONTRIBUTOR = "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59"
MANAGED_IDENTITY_OPERATOR = "f1a07417-d97a-45cb-824c-7a7467783830"


def test_the_batch_account_takes_entra_tokens_only_and_allocates_pools_itself() -> None:
    [account] = _resources_of_type(_parsed(INFRA / "app" / "batch.bicep"), "Microsoft.Batch/batchAccounts")
    properties = account["properties"]
    assert properties["allowedAuthenticationModes"] == ["AAD"]  # no shared keys: the app's identity only
    assert properties["poolAllocationMode"] == "BatchService"


def test_the_app_identity_gets_the_batch_roles_on_the_account_and_identity_roles_on_the_node_group() -> None:
    batch = _code("app/batch.bicep")
    for role in (BATCH_ACCOUNT_CONTRIBUTOR, BATCH_DATA_CONTRIBUTOR, MANAGED_IDENTITY_CONTRIBUTOR):
        assert role in batch
    assignments = _resources_of_type(_parsed(INFRA / "app" / "batch.bicep"),
                                     "Microsoft.Authorization/roleAssignments")
    assert len(assignments) == 4  # and Managed Identity Operator on the node identity (its own test file)
    assert len(re.findall(r"scope:\s*account", batch)) == 2  # the Batch roles on the account, not wider
    assert MANAGED_IDENTITY_OPERATOR in _code("app/provisioning-rbac.bicep")  # attaching identities to pools


def test_the_batch_account_lives_in_the_node_resource_group_and_only_when_batch_provisions() -> None:
    main = _code("main.bicep")
    module = re.search(r"module batch 'app/batch.bicep' = if \(nodeProvider == 'azurebatch'\) \{(.*?)\n\}", main,
                       re.S)
    assert module is not None
    assert "scope: resourceGroup(nodeGroupName)" in module.group(1)
    assert re.search(r"param nodeProvider string = 'azurebatch'", main)


def test_the_function_app_has_every_setting_the_batch_provider_reads() -> None:
    settings = _app_settings(_code("app/api.bicep"))
    required = {"AZURE_SUBSCRIPTION_ID", "COMPUTEPLANE_NODE_RESOURCE_GROUP", "COMPUTEPLANE_BATCH_ACCOUNT",
                "COMPUTEPLANE_BATCH_ACCOUNT_ENDPOINT", "COMPUTEPLANE_BATCH_NODE_IMAGE", "COMPUTEPLANE_PROVIDER",
                "AZURE_CLIENT_ID"}
    assert required <= set(settings)
    assert settings["COMPUTEPLANE_PROVIDER"] == "nodeProvider"
    # Every name AzureBatchSettings.from_env requires is among them (a missing one stops the app at start).
    with pytest.raises(ValueError) as refused:
        AzureBatchSettings.from_env({})
    named = set(re.findall(r"[A-Z_]{6,}", str(refused.value).split(":")[0]))
    assert len(named) == 4 and named <= set(settings), named - set(settings)
    endpoint = re.search(r"output endpoint string = '(.*)'", _code("app/batch.bicep"))
    assert endpoint is not None and endpoint.group(1).startswith("https://")
