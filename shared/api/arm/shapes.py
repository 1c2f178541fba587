"""Compute resources as ARM writes them (field names and casing of real answers, recorded in
``tests/data/arm/``), and ARM request bodies turned into the bodies today's API takes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from shared.api.arm.durations import format_duration, parse_duration
from shared.api.arm.scope import PROVIDER, ArmWorkspace
from shared.domain.cluster import Cluster
from shared.domain.cluster_changes import ScaleSettingsUpdate
from shared.domain.errors import InvalidField
from shared.domain.requests import ClusterCreate, IdentityAssignment

M = TypeVar("M", ClusterCreate, IdentityAssignment, ScaleSettingsUpdate)
COMPUTE_TYPE = f"{PROVIDER}/workspaces/computes"
_PRIORITY_TO_ARM = {"dedicated": "Dedicated", "lowpriority": "LowPriority"}
_SUBNET_ID = re.compile(r"^/subscriptions/[^/]+/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Network"
                        r"/virtualNetworks/(?P<vnet>[^/]+)/subnets/(?P<subnet>[^/]+)$", re.IGNORECASE)
# Where each field of today's API sits in an ARM compute body, so an error names the field the caller sent.
ARM_PATHS = {
    "vm_size": "properties.properties.vmSize",
    "vm_priority": "properties.properties.vmPriority",
    "max_nodes": "properties.properties.scaleSettings.maxNodeCount",
    "min_nodes": "properties.properties.scaleSettings.minNodeCount",
    "idle_seconds_before_scaledown": "properties.properties.scaleSettings.nodeIdleTimeBeforeScaleDown",
    "location": "location", "tags": "tags", "description": "properties.description",
    "vnet_resourcegroup_name": "properties.properties.subnet.id", "vnet_name": "properties.properties.subnet.id",
    "subnet_name": "properties.properties.subnet.id",
    "admin_username": "properties.properties.userAccountCredentials.adminUserName",
    "admin_user_ssh_key": "properties.properties.userAccountCredentials.adminUserSshPublicKey",
    "admin_user_password": "properties.properties.userAccountCredentials.adminUserPassword",
    "remote_login_port_public_access": "properties.properties.remoteLoginPortPublicAccess",
    "enable_node_public_ip": "properties.properties.enableNodePublicIp",
    "identity_type": "identity.type", "identity_id": "identity.userAssignedIdentities",
}


def _object(value: object, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidField(field, "must be a JSON object")
    return value


def cluster_create_of(name: str, body: object) -> ClusterCreate:
    """An ARM compute PUT body as today's create body. Fields ARM clients send that have no meaning here
    (``osType`` Linux, ``isolatedNetwork``, ``propertyBag``) are accepted and ignored."""
    top = _object(body, "body")
    outer = _object(top.get("properties"), "properties")
    compute_type = outer.get("computeType")
    if compute_type != "AmlCompute":
        raise InvalidField("properties.computeType", f"only AmlCompute is served here, got {compute_type!r}")
    inner = _object(outer.get("properties"), "properties.properties")
    scale = _object(inner.get("scaleSettings"), "properties.properties.scaleSettings")
    account = _object(inner.get("userAccountCredentials"), "properties.properties.userAccountCredentials")
    if inner.get("osType") not in (None, "Linux"):
        raise InvalidField("properties.properties.osType", "only Linux nodes are served here")
    raw: dict[str, Any] = {
        "name": name, "vm_size": inner.get("vmSize"), "max_nodes": scale.get("maxNodeCount"),
        "min_nodes": scale.get("minNodeCount", 0), "location": top.get("location"),
        "tags": top.get("tags") or {}, "description": outer.get("description"),
        "admin_username": account.get("adminUserName"), "admin_user_ssh_key": account.get("adminUserSshPublicKey"),
        "admin_user_password": account.get("adminUserPassword"),
    }
    priority = inner.get("vmPriority")
    if priority is not None:
        if not isinstance(priority, str) or priority.lower() not in _PRIORITY_TO_ARM:
            raise InvalidField("properties.properties.vmPriority",
                               f"must be Dedicated or LowPriority, got {priority!r}")
        raw["vm_priority"] = priority.lower()
    idle = scale.get("nodeIdleTimeBeforeScaleDown")
    if idle is not None:
        raw["idle_seconds_before_scaledown"] = parse_duration(idle, ARM_PATHS["idle_seconds_before_scaledown"])
    for arm_name, field in (("remoteLoginPortPublicAccess", "remote_login_port_public_access"),
                            ("enableNodePublicIp", "enable_node_public_ip")):
        if inner.get(arm_name) is not None:
            raw[field] = inner[arm_name]
    subnet = _object(inner.get("subnet"), "properties.properties.subnet").get("id")
    if subnet:
        match = _SUBNET_ID.match(subnet) if isinstance(subnet, str) else None
        if match is None:
            raise InvalidField("properties.properties.subnet.id", "must be /subscriptions/{s}/resourceGroups/{rg}"
                               "/providers/Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}")
        raw |= {"vnet_resourcegroup_name": match["rg"], "vnet_name": match["vnet"], "subnet_name": match["subnet"]}
    identity = identity_request_of(top.get("identity"))
    if identity is not None:
        raw |= {"identity_type": identity.identity_type, "identity_id": identity.identity_id}
    return validated(ClusterCreate, {k: v for k, v in raw.items() if v is not None or k == "min_nodes"})


def identity_request_of(value: object) -> IdentityAssignment | None:
    """ARM's ``identity`` object; ``None`` for no identity (absent, or type None)."""
    identity = _object(value, "identity")
    kind = identity.get("type")
    if kind in (None, "None"):
        return None
    if kind not in ("SystemAssigned", "UserAssigned"):
        raise InvalidField("identity.type", "must be SystemAssigned, UserAssigned or None (a compute has a system-"
                                            f"assigned identity or user-assigned ones, never both), got {kind!r}")
    ids = list(_object(identity.get("userAssignedIdentities"), "identity.userAssignedIdentities"))
    return validated(IdentityAssignment, {"identity_type": kind, "identity_id": ids or None})


@dataclass(frozen=True)
class IdentityPatch:
    """A PATCH's ``identity``, read as ARM's merge patch: type None removes every identity; a user-assigned id
    mapped to null is removed, one mapped to an object is added; SystemAssigned adds the system identity."""

    remove_all: bool
    add: IdentityAssignment | None
    remove: list[str]


def identity_patch_of(value: object) -> IdentityPatch:
    identity = _object(value, "identity")
    kind = identity.get("type")
    if kind in (None, "None"):
        return IdentityPatch(remove_all=True, add=None, remove=[])
    listed = _object(identity.get("userAssignedIdentities"), "identity.userAssignedIdentities")
    removed = [i for i, v in listed.items() if v is None]
    added = {i: v for i, v in listed.items() if v is not None}
    wanted = identity_request_of({"type": kind, "userAssignedIdentities": added}) \
        if kind == "SystemAssigned" or added else None
    return IdentityPatch(remove_all=False, add=wanted, remove=removed)


def scale_update_of(body: object) -> ScaleSettingsUpdate:
    """A PATCH body (``properties.properties.scaleSettings`` as the SDKs send it, or ``properties.scaleSettings``)."""
    outer = _object(_object(body, "body").get("properties"), "properties")
    inner = _object(outer.get("properties"), "properties.properties")
    scale = _object(inner.get("scaleSettings") or outer.get("scaleSettings"), "properties.properties.scaleSettings")
    raw: dict[str, Any] = {"min_nodes": scale.get("minNodeCount"), "max_nodes": scale.get("maxNodeCount")}
    idle = scale.get("nodeIdleTimeBeforeScaleDown")
    if idle is not None:
        raw["idle_seconds_before_scaledown"] = parse_duration(idle, ARM_PATHS["idle_seconds_before_scaledown"])
    return validated(ScaleSettingsUpdate, raw)


def validated(model: type[M], raw: dict[str, Any]) -> M:
    """Today's model checks the types; the first problem is reported under the ARM name of its field."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "body"
        raise InvalidField(ARM_PATHS.get(field, field), first["msg"]) from None


def _time(value: datetime) -> str:
    return value.isoformat()


def compute_resource(cluster: Cluster, workspace: ArmWorkspace, tenant_id: str) -> dict[str, Any]:
    s = cluster.spec
    location = s.location
    counts = cluster.node_state_counts()
    subnet = None
    if s.vnet_name:
        subnet = {"id": f"/subscriptions/{workspace.subscription}/resourceGroups/{s.vnet_resourcegroup_name}"
                        f"/providers/Microsoft.Network/virtualNetworks/{s.vnet_name}/subnets/{s.subnet_name}"}
    errors = [{"error": {"code": e.code, "message": e.message}} for e in cluster.errors] or None
    provisioning_errors = errors if cluster.provisioning_state.value == "Failed" else None
    return {
        "id": workspace.compute_id(cluster.name), "name": cluster.name, "type": COMPUTE_TYPE, "location": location,
        "tags": s.tags, "identity": identity_view(cluster, tenant_id),
        "properties": {
            "createdOn": _time(cluster.created_at), "modifiedOn": _time(cluster.modified_at),
            "disableLocalAuth": False, "description": s.description, "resourceId": None,
            "computeType": "AmlCompute", "computeLocation": location,
            "provisioningState": cluster.provisioning_state.value, "provisioningErrors": provisioning_errors,
            "isAttachedCompute": False,
            "properties": {
                "vmSize": s.vm_size, "vmPriority": _PRIORITY_TO_ARM[s.vm_priority],
                "scaleSettings": {"maxNodeCount": s.max_nodes, "minNodeCount": s.min_nodes,
                                  "nodeIdleTimeBeforeScaleDown": format_duration(s.idle_seconds_before_scaledown)},
                # Always an object (azureml-core indexes into it); the password is never stored nor shown.
                "userAccountCredentials": {"adminUserName": s.admin_username, "adminUserPassword": None,
                                           "adminUserSshPublicKey": s.admin_user_ssh_key},
                "subnet": subnet, "currentNodeCount": cluster.current_node_count,
                "targetNodeCount": cluster.target_node_count,
                "nodeStateCounts": {f"{state}NodeCount": counts[state] for state in
                                    ("preparing", "running", "idle", "unusable", "leaving", "preempted")},
                "allocationState": cluster.allocation_state.value,
                "allocationStateTransitionTime": _time(cluster.allocation_state_transition_time),
                "errors": errors, "remoteLoginPortPublicAccess": s.remote_login_port_public_access,
                "osType": "Linux", "virtualMachineImage": None, "isolatedNetwork": False,
                "enableNodePublicIp": s.enable_node_public_ip, "propertyBag": {},
            },
        },
    }


def identity_view(cluster: Cluster, tenant_id: str) -> dict[str, Any]:
    """Always an object: ``{"type": "None"}`` without identity, which azureml-core's remove_identity reads back."""
    ids = cluster.identity.identities
    if not ids:
        return {"type": "None"}
    if cluster.identity.type == "SystemAssigned":
        return {"type": "SystemAssigned", "principalId": ids[0].principal_id, "tenantId": tenant_id}
    return {"type": "UserAssigned", "tenantId": tenant_id,
            "userAssignedIdentities": {i.resource_id: {"principalId": i.principal_id, "clientId": i.client_id}
                                       for i in ids if i.resource_id}}


def node_view(cluster: Cluster) -> list[dict[str, Any]]:
    return [{"nodeId": n.node_id, "privateIpAddress": n.private_ip, "publicIpAddress": None, "port": None,
             "nodeState": n.state.value, "runId": n.run_id} for n in cluster.nodes]
