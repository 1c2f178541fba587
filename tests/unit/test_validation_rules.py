"""Every field rule of a cluster spec, one table: the fields changed from a valid spec, and the field and rule text
the error must carry (or None for a valid spec)."""

from __future__ import annotations

import pytest

from shared.domain.errors import InvalidField
from shared.domain.validation import (
    DEFAULT_ENABLE_NODE_PUBLIC_IP,
    DEFAULT_IDLE_SECONDS_BEFORE_SCALEDOWN,
    DEFAULT_MIN_NODES,
    DEFAULT_REMOTE_LOGIN_PORT_PUBLIC_ACCESS,
    DEFAULT_VM_PRIORITY,
    validate_cluster_spec_fields,
)

ABSENT = object()  # a field removed from the valid spec
IDENTITY_ID = ("/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/my-rg/providers/"
               "Microsoft.ManagedIdentity/userAssignedIdentities/job-identity")
OTHER_IDENTITY_ID = IDENTITY_ID.replace("job-identity", "other-identity")
VNET: dict[str, object] = {"vnet_resourcegroup_name": "net-rg", "vnet_name": "vnet", "subnet_name": "default"}
VALID_SPEC: dict[str, object] = {"name": "cpu-cluster", "vm_size": "Standard_D2_v2", "max_nodes": 4}

# (case id, fields changed from VALID_SPEC, expected field or None, substring of the rule)
CASES: list[tuple[str, dict[str, object], str | None, str]] = [
    # valid specs
    ("minimal spec from the v1 sample", {}, None, ""),
    ("name of 3 characters", {"name": "cpu"}, None, ""),
    ("name of 24 characters", {"name": "a" * 24}, None, ""),
    ("name with digits then a dash and a letter", {"name": "gpu1-a"}, None, ""),
    ("upper case name", {"name": "CpuCluster2"}, None, ""),
    ("vm size in any case", {"vm_size": "STANDARD_D2_V2"}, None, ""),
    ("vm size offered in the location", {"vm_size": "Standard_NC6s_v3", "location": "westeurope"}, None, ""),
    ("location with spaces and capitals", {"location": "East US"}, None, ""),
    ("low priority", {"vm_priority": "lowpriority"}, None, ""),
    ("fixed size cluster", {"min_nodes": 4, "max_nodes": 4}, None, ""),
    ("max nodes 0 as v1 allows", {"max_nodes": 0}, None, ""),
    ("100 nodes with inter-node communication", {"max_nodes": 100}, None, ""),
    ("thousands of nodes without inter-node communication",
     {"max_nodes": 2000, "inter_node_communication": "Disabled"}, None, ""),
    ("scale down at once", {"idle_seconds_before_scaledown": 0}, None, ""),
    ("explicit nulls take the defaults", {"vm_priority": None, "idle_seconds_before_scaledown": None,
                                          "enable_node_public_ip": None, "min_nodes": None}, None, ""),
    ("vnet, all three", VNET, None, ""),
    ("no public ip inside a vnet", {**VNET, "enable_node_public_ip": False}, None, ""),
    ("username and password", {"admin_username": "azureuser", "admin_user_password": "Secret-pass1"}, None, ""),
    ("username and ssh key", {"admin_username": "azureuser", "admin_user_ssh_key": "ssh-ed25519 AAAAC3"}, None, ""),
    ("password of 3 classes without special", {"admin_username": "u", "admin_user_password": "abcDEF123"}, None, ""),
    ("remote login disabled", {"remote_login_port_public_access": "Disabled"}, None, ""),
    ("system assigned identity", {"identity_type": "SystemAssigned"}, None, ""),
    ("user assigned identities", {"identity_type": "UserAssigned", "identity_id": [IDENTITY_ID, OTHER_IDENTITY_ID]},
     None, ""),
    ("arm id in lower case", {"identity_type": "UserAssigned", "identity_id": [IDENTITY_ID.lower()]}, None, ""),
    ("tags and description", {"tags": {"team": "ml"}, "description": "training"}, None, ""),
    # name
    ("name missing", {"name": ABSENT}, "name", "mandatory"),
    ("name too short", {"name": "ab"}, "name", "between 3 and 24 characters"),
    ("name too long", {"name": "a" * 25}, "name", "between 3 and 24 characters"),
    ("name with underscore", {"name": "cpu_cluster"}, "name", "letters, digits and the - character"),
    ("name with space", {"name": "cpu cluster"}, "name", "letters, digits and the - character"),
    ("name starting with a digit", {"name": "1cluster"}, "name", "must start with a letter"),
    ("name starting with a dash", {"name": "-cluster"}, "name", "must start with a letter"),
    ("name ending in dash and digit", {"name": "cpu-cluster-1"}, "name", "followed by at least one letter"),
    ("name ending in a dash", {"name": "cpu-"}, "name", "followed by at least one letter"),
    ("reserved name local", {"name": "local"}, "name", "reserved name"),
    ("reserved name in capitals", {"name": "AmlCompute"}, "name", "reserved name"),
    ("reserved name containerinstance", {"name": "containerinstance"}, "name", "reserved name"),
    # vm size and location
    ("vm size missing", {"vm_size": ABSENT}, "vm_size", "mandatory"),
    ("unknown vm size", {"vm_size": "Standard_D2_v9"}, "vm_size", "did you mean Standard_D2_v2"),
    ("vm size not offered in the location", {"vm_size": "Standard_ND40rs_v2", "location": "japaneast"},
     "vm_size", "not offered in location 'japaneast'"),
    ("unknown location", {"location": "moonbase1"}, "location", "unknown location"),
    # vm priority
    ("unknown vm priority", {"vm_priority": "spot"}, "vm_priority", "dedicated, lowpriority"),
    ("vm priority in v2 casing", {"vm_priority": "LowPriority"}, "vm_priority", "dedicated, lowpriority"),
    # node counts
    ("max nodes missing", {"max_nodes": ABSENT}, "max_nodes", "max nodes count is mandatory"),
    ("max nodes null", {"max_nodes": None}, "max_nodes", "max nodes count is mandatory"),
    ("max nodes not a number", {"max_nodes": "4"}, "max_nodes", "whole number"),
    ("max nodes a boolean", {"max_nodes": True}, "max_nodes", "whole number"),
    ("min nodes not a number", {"min_nodes": 1.5}, "min_nodes", "whole number"),
    ("negative min nodes", {"min_nodes": -1}, "min_nodes", "greater than or equal to 0"),
    ("negative max nodes", {"max_nodes": -1, "min_nodes": -2}, "min_nodes", "greater than or equal to 0"),
    ("negative max nodes alone", {"max_nodes": -1}, "max_nodes", "greater than or equal to 0"),
    ("min nodes above max nodes", {"min_nodes": 5}, "max_nodes", "greater than or equal to min nodes count"),
    # inter-node communication
    ("over 100 nodes with inter-node communication", {"max_nodes": 101}, "max_nodes",
     "inter-node communication enabled scales to at most 100"),
    ("over the cap without inter-node communication", {"max_nodes": 4001, "inter_node_communication": "Disabled"},
     "max_nodes", "at most 4000"),
    ("unknown inter-node communication", {"inter_node_communication": "Off"}, "inter_node_communication",
     "Enabled, Disabled"),
    # idle time
    ("negative idle time", {"idle_seconds_before_scaledown": -1}, "idle_seconds_before_scaledown",
     "between 0 and"),
    ("idle time above a year", {"idle_seconds_before_scaledown": 365 * 24 * 3600 + 1},
     "idle_seconds_before_scaledown", "between 0 and"),
    ("idle time as text", {"idle_seconds_before_scaledown": "PT30M"}, "idle_seconds_before_scaledown",
     "whole number"),
    # vnet and public ip
    ("vnet without subnet", {"vnet_resourcegroup_name": "net-rg", "vnet_name": "vnet"}, "subnet_name",
     "together, or none"),
    ("subnet alone", {"subnet_name": "default"}, "vnet_resourcegroup_name",
     "missing: vnet_resourcegroup_name, vnet_name"),
    ("empty vnet name", {**VNET, "vnet_name": ""}, "vnet_name", "non-empty"),
    ("no public ip without vnet", {"enable_node_public_ip": False}, "enable_node_public_ip",
     "need a virtual network"),
    ("public ip flag as text", {"enable_node_public_ip": "no"}, "enable_node_public_ip", "true or false"),
    # admin credentials
    ("password without username", {"admin_user_password": "Secret-pass1"}, "admin_username",
     "admin username must be provided"),
    ("ssh key without username", {"admin_user_ssh_key": "ssh-ed25519 AAAAC3"}, "admin_username",
     "admin username must be provided"),
    ("username without password or key", {"admin_username": "azureuser"}, "admin_user_password",
     "no password or key information provided"),
    ("empty username", {"admin_username": "", "admin_user_password": "Secret-pass1"}, "admin_username",
     "non-empty"),
    ("password too short", {"admin_username": "u", "admin_user_password": "aB1!"}, "admin_user_password",
     "between 6 and 72 characters"),
    ("password too long", {"admin_username": "u", "admin_user_password": "aB1!" * 19}, "admin_user_password",
     "between 6 and 72 characters"),
    ("password of 2 classes", {"admin_username": "u", "admin_user_password": "abcdefgh12"}, "admin_user_password",
     "must have 3 of the following"),
    ("password whose only special is not in the v1 list", {"admin_username": "u", "admin_user_password": "abcd-1234"},
     "admin_user_password", "1 special character"),
    # remote login
    ("unknown remote login access", {"remote_login_port_public_access": "Open"}, "remote_login_port_public_access",
     "Enabled, Disabled, NotSpecified"),
    # identity
    ("unknown identity type", {"identity_type": "Managed"}, "identity_type", "SystemAssigned, UserAssigned"),
    ("user assigned without ids", {"identity_type": "UserAssigned"}, "identity_id", "non-empty list"),
    ("user assigned with an empty list", {"identity_type": "UserAssigned", "identity_id": []}, "identity_id",
     "non-empty list"),
    ("user assigned with a bare string", {"identity_type": "UserAssigned", "identity_id": IDENTITY_ID},
     "identity_id", "non-empty list"),
    ("malformed arm id", {"identity_type": "UserAssigned", "identity_id": ["/subscriptions/x/identities/y"]},
     "identity_id", "not a user-assigned identity resource id"),
    ("arm id of another resource type", {"identity_type": "UserAssigned",
                                         "identity_id": [IDENTITY_ID.replace("ManagedIdentity", "Compute")]},
     "identity_id", "not a user-assigned identity resource id"),
    ("same identity twice", {"identity_type": "UserAssigned", "identity_id": [IDENTITY_ID, IDENTITY_ID.upper()]},
     "identity_id", "listed twice"),
    ("ids with system assigned", {"identity_type": "SystemAssigned", "identity_id": [IDENTITY_ID]}, "identity_id",
     "cannot be set when identity type is not UserAssigned"),
    ("ids without identity type", {"identity_id": [IDENTITY_ID]}, "identity_id",
     "cannot be set when identity type is not UserAssigned"),
    # tags and description
    ("tags with a number value", {"tags": {"cost": 1}}, "tags", "string values"),
    ("description not text", {"description": 42}, "description", "must be a string"),
]


def spec_with(changes: dict[str, object]) -> dict[str, object]:
    spec = {**VALID_SPEC, **changes}
    return {name: value for name, value in spec.items() if value is not ABSENT}


@pytest.mark.parametrize(("changes", "field", "rule_part"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cluster_spec_field_rules(changes: dict[str, object], field: str | None, rule_part: str) -> None:
    if field is None:
        validate_cluster_spec_fields(spec_with(changes))
        return
    with pytest.raises(InvalidField) as raised:
        validate_cluster_spec_fields(spec_with(changes))
    assert raised.value.field == field
    assert rule_part in raised.value.rule
    assert str(changes.get("admin_user_password", "\0")) not in raised.value.message  # never echo a password


def test_defaults_are_those_of_azureml_core_v1() -> None:
    assert (DEFAULT_VM_PRIORITY, DEFAULT_MIN_NODES, DEFAULT_IDLE_SECONDS_BEFORE_SCALEDOWN,
            DEFAULT_REMOTE_LOGIN_PORT_PUBLIC_ACCESS, DEFAULT_ENABLE_NODE_PUBLIC_IP) == (
        "dedicated", 0, 1800, "NotSpecified", True)
