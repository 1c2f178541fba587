"""The ARM-shaped routes. Each checks the bearer token and the workspace, calls today's command handlers, and
answers in ARM's shapes (``shapes.py``) and error shape (``errors.py``).

PUT on an existing compute is ARM's create-or-update within what AmlCompute lets change on a live cluster: the scale
settings (as ``update()``) and the identity (as ``add_identity`` / ``remove_identity``); any other difference is
today's 409 ``ComputeTargetSpecConflict`` naming the fields. DELETE of a missing compute is 204, as ARM answers.
Computes are also served under ``/rp/workspaces`` + the workspace id, the prefix azureml-core uses for reads.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse, Response

from shared.api import catalogue
from shared.api.arm.context import ArmContext, arm_context, origin
from shared.api.arm.errors import ApiVersionMissing, arm_errors
from shared.api.arm.operations import RETRY_AFTER_SECONDS, Operation, OperationKind
from shared.api.arm.scope import PROVIDER, ArmWorkspace
from shared.api.arm.shapes import (
    cluster_create_of,
    compute_resource,
    identity_patch_of,
    identity_request_of,
    node_view,
    scale_update_of,
)
from shared.api.arm.tokens import Caller, TokenRefused
from shared.api.deps import DepsDep
from shared.domain.cluster import Cluster, ProvisioningState
from shared.domain.cluster_changes import ScaleSettingsUpdate
from shared.domain.cluster_identity import same_identity_request
from shared.domain.errors import ClusterSpecConflict, InvalidField
from shared.domain.requests import ClusterCreate, IdentityRemoval, check_cluster_create
from shared.domain.vm_sizes import load_catalogue, normalize_location
from shared.handlers import identity, use_cases
from shared.handlers.deps import Deps

WORKSPACE = ("/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
             f"{PROVIDER}/workspaces/{{workspace}}")
LOCATION = f"/subscriptions/{{subscription}}/providers/{PROVIDER}/locations/{{location}}"
ApiVersion = Annotated[str | None, Query(alias="api-version")]
ArmBody = Annotated[Any, Body()]
SCALE_FIELDS = frozenset({"min_nodes", "max_nodes", "idle_seconds_before_scaledown"})

routes = APIRouter(include_in_schema=False)


def caller_of(request: Request, context: ArmContext, api_version: str | None) -> Caller:
    if not api_version:
        raise ApiVersionMissing("the api-version query parameter is required")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenRefused("an Authorization: Bearer token is required (see `computeplane token issue`)")
    return context.checker().check(token.strip(), context.audience(request))


def workspace_of(request: Request, api_version: str | None, subscription: str, resource_group: str,
                 workspace: str) -> ArmWorkspace:
    context = arm_context(request)
    caller = caller_of(request, context, api_version)
    scope = context.mapping.resolve(subscription, resource_group, workspace)
    if not caller.allows(scope.workspace):
        raise PermissionError(f"this token is not valid for workspace '{scope.workspace}'")
    return scope


def operation_headers(request: Request, scope: ArmWorkspace, operation: Operation, location: str,
                      api_version: str) -> dict[str, str]:
    url = (f"{origin(request)}/subscriptions/{scope.subscription}/providers/{PROVIDER}/locations/{location}"
           f"/computeOperationsStatus/{operation.id}?api-version={api_version}")
    return {"Azure-AsyncOperation": url, "Retry-After": str(RETRY_AFTER_SECONDS)}


def resource(request: Request, cluster: Cluster, scope: ArmWorkspace, status: int = 200,
             headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(compute_resource(cluster, scope, arm_context(request).tenant_id), status_code=status,
                        headers=headers)


# --- computes --------------------------------------------------------------------------------------------------

@arm_errors
def list_computes(request: Request, subscription: str, resource_group: str, workspace: str, deps: DepsDep,
                  api_version: ApiVersion = None) -> Response:
    scope = workspace_of(request, api_version, subscription, resource_group, workspace)
    tenant = arm_context(request).tenant_id
    return JSONResponse({"value": [compute_resource(c, scope, tenant) for c in deps.store.list_clusters(
        scope.workspace)]})  # no nextLink key at all: azureml-core follows one even when it is null


@arm_errors
def get_compute(request: Request, subscription: str, resource_group: str, workspace: str, name: str,
                deps: DepsDep, api_version: ApiVersion = None) -> Response:
    scope = workspace_of(request, api_version, subscription, resource_group, workspace)
    return resource(request, use_cases.get_cluster(deps, scope.workspace, name), scope)


@arm_errors
def put_compute(request: Request, subscription: str, resource_group: str, workspace: str, name: str,
                deps: DepsDep, body: ArmBody = None, api_version: ApiVersion = None) -> Response:
    scope = workspace_of(request, api_version, subscription, resource_group, workspace)
    assert api_version is not None
    create = cluster_create_of(name, decoded(body))
    existing = deps.store.get_cluster(scope.workspace, name)
    kind: OperationKind = "create"
    if existing is None or existing.provisioning_state is ProvisioningState.DELETING:
        cluster, _ = use_cases.create_cluster(deps, scope.workspace, create)
    else:
        cluster, kind = update_in_place(deps, existing, create), "update"
    location = cluster.spec.location or normalize_location(deps.workspace_location)
    headers = operation_headers(request, scope, Operation(kind, scope.workspace, name, cluster.uid), location,
                                api_version)
    # AmlCompute answers 201 to an update too (see tests/data/arm)
    return resource(request, cluster, scope, 201, headers)


def decoded(body: Any) -> Any:
    """azureml-core's remove_identity sends its JSON document JSON-encoded again (a string); ARM takes it."""
    if isinstance(body, str):
        try:
            return json.loads(body)
        except json.JSONDecodeError:
            raise InvalidField("body", "must be a JSON object") from None
    return body


def update_in_place(deps: Deps, existing: Cluster, create: ClusterCreate) -> Cluster:
    """A PUT on a live compute: today's create checks, then update() and the identity calls for what differs."""
    spec = check_cluster_create(create, deps.workspace_location).spec
    differing = {k: v for k, v in existing.spec.differences(spec).items() if k not in SCALE_FIELDS}
    if differing:
        raise ClusterSpecConflict(existing.name, differing)
    cluster = use_cases.update_cluster(deps, existing.workspace, existing.name, ScaleSettingsUpdate(
        min_nodes=spec.min_nodes, max_nodes=spec.max_nodes,
        idle_seconds_before_scaledown=spec.idle_seconds_before_scaledown))
    if not same_identity_request(cluster.identity, create.identity_type, create.identity_id):
        cluster = set_identity(deps, cluster, create.identity_type, create.identity_id)
    return cluster


def set_identity(deps: Deps, cluster: Cluster, identity_type: str | None, identity_ids: list[str] | None) -> Cluster:
    if cluster.identity.type is not None:
        cluster = identity.unassign_identity(deps, cluster.workspace, cluster.name, IdentityRemoval())
    if identity_type is None:
        return cluster
    wanted = identity_request_of({"type": identity_type,
                                  "userAssignedIdentities": {i: {} for i in identity_ids or ()}})
    assert wanted is not None
    return identity.assign_identity(deps, cluster.workspace, cluster.name, wanted)


@arm_errors
def patch_compute(request: Request, subscription: str, resource_group: str, workspace: str, name: str,
                  deps: DepsDep, body: ArmBody = None, api_version: ApiVersion = None) -> Response:
    """ARM's ClusterUpdateParameters (scale settings, as ``update()`` sends them) and an ``identity`` merge patch
    (as ``add_identity`` / ``remove_identity`` send it)."""
    scope = workspace_of(request, api_version, subscription, resource_group, workspace)
    assert api_version is not None
    body = decoded(body)
    update = scale_update_of(body)
    cluster = use_cases.update_cluster(deps, scope.workspace, name, update) if update.model_dump(exclude_none=True) \
        else use_cases.get_cluster(deps, scope.workspace, name)
    if isinstance(body, dict) and "identity" in body:
        patch = identity_patch_of(body["identity"])
        if (patch.remove_all and cluster.identity.type is not None) or patch.remove:
            cluster = identity.unassign_identity(deps, scope.workspace, name, IdentityRemoval(
                identity_id=None if patch.remove_all else patch.remove))
        if patch.add is not None:
            cluster = identity.assign_identity(deps, scope.workspace, name, patch.add)
    location = cluster.spec.location or normalize_location(deps.workspace_location)
    headers = operation_headers(request, scope, Operation("update", scope.workspace, name, cluster.uid), location,
                                api_version)
    return resource(request, cluster, scope, 200, headers)


@arm_errors
def delete_compute(request: Request, subscription: str, resource_group: str, workspace: str, name: str,
                   deps: DepsDep, api_version: ApiVersion = None,
                   underlying_resource_action: Annotated[str | None, Query(alias="underlyingResourceAction")] = None,
                   ) -> Response:
    scope = workspace_of(request, api_version, subscription, resource_group, workspace)
    assert api_version is not None
    if (underlying_resource_action or "delete").lower() != "delete":  # azureml-core sends "delete"
        raise InvalidField("underlyingResourceAction", "must be Delete: an AmlCompute cluster belongs to the "
                                                       "workspace and cannot be detached")
    if deps.store.get_cluster(scope.workspace, name) is None:
        return Response(status_code=204)
    cluster = use_cases.delete_cluster(deps, scope.workspace, name)
    location = cluster.spec.location or normalize_location(deps.workspace_location)
    headers = operation_headers(request, scope, Operation("delete", scope.workspace, name, cluster.uid), location,
                                api_version)
    return Response(status_code=202, headers={**headers, "Location": headers["Azure-AsyncOperation"]})


@arm_errors
def list_nodes(request: Request, subscription: str, resource_group: str, workspace: str, name: str,
               deps: DepsDep, api_version: ApiVersion = None) -> Response:
    scope = workspace_of(request, api_version, subscription, resource_group, workspace)
    return JSONResponse({"nodes": node_view(use_cases.get_cluster(deps, scope.workspace, name))})


for prefix in (WORKSPACE, "/rp/workspaces" + WORKSPACE):
    routes.add_api_route(prefix + "/computes", list_computes, methods=["GET"])
    routes.add_api_route(prefix + "/computes/{name}", get_compute, methods=["GET"])
    routes.add_api_route(prefix + "/computes/{name}", put_compute, methods=["PUT"])
    routes.add_api_route(prefix + "/computes/{name}", patch_compute, methods=["PATCH"])
    routes.add_api_route(prefix + "/computes/{name}", delete_compute, methods=["DELETE"])
    routes.add_api_route(prefix + "/computes/{name}/listNodes", list_nodes, methods=["POST"])


# --- operations, sizes and usages of a location ------------------------------------------------------------------

@routes.get(LOCATION + "/computeOperationsStatus/{operation_id}")
@arm_errors
def operation_status(request: Request, subscription: str, location: str, operation_id: str, deps: DepsDep,
                     api_version: ApiVersion = None) -> Response:
    context = arm_context(request)
    caller = caller_of(request, context, api_version)
    operation = Operation.parse(operation_id)
    if not caller.allows(operation.workspace):
        raise PermissionError(f"this token is not valid for workspace '{operation.workspace}'")
    status = operation.status(deps.store.get_cluster(operation.workspace, operation.cluster))
    # Without Retry-After, azure-core's poller waits its own default (30 s in azure-ai-ml) between polls.
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status["status"] == "InProgress" else None
    return JSONResponse(status, headers=headers)


@routes.get(LOCATION + "/vmSizes")
@arm_errors
def vm_sizes(request: Request, subscription: str, location: str, api_version: ApiVersion = None) -> Response:
    """Both shapes at once: ``amlCompute`` is what azureml-core reads, ``value`` what azure-ai-ml reads."""
    caller_of(request, arm_context(request), api_version)
    sizes = [{
        "name": v.name, "family": v.family, "vCPUs": v.vcpus, "gpus": v.gpus, "osVhdSizeMB": None,
        "maxResourceVolumeMB": None, "memoryGB": v.memory_gb, "lowPriorityCapable": True, "premiumIO": None,
        "estimatedVMPrices": {"billingCurrency": "USD", "unitOfMeasure": "OneHour", "values": [
            {"retailPrice": v.price_per_hour_dedicated, "osType": "Linux", "vmTier": "Standard"},
            {"retailPrice": v.price_per_hour_low_priority, "osType": "Linux", "vmTier": "LowPriority"}]},
        "supportedComputeTypes": ["AmlCompute"],
    } for v in load_catalogue().list(normalize_location(location))]
    return JSONResponse({"amlCompute": sizes, "value": sizes})


@routes.get(LOCATION + "/usages")
@arm_errors
def usages(request: Request, subscription: str, location: str, deps: DepsDep,
           api_version: ApiVersion = None) -> Response:
    """Today's quota use (``/api/usages``) as ARM's usage list: the regional total, low priority, each family."""
    caller_of(request, arm_context(request), api_version)
    today = catalogue.usages(deps, location)
    region = today["location"]
    base = f"/subscriptions/{subscription}/providers/{PROVIDER}/locations/{region}/usages"

    def usage(name: str, label: str, kind: str, current: int, limit: int) -> dict[str, Any]:
        return {"id": f"{base}/{name}", "amlWorkspaceLocation": region, "type": f"{PROVIDER}/{kind}/usages",
                "unit": "Count", "currentValue": current, "limit": limit,
                "name": {"value": name, "localizedValue": label}}

    total, low = today["total_regional_dedicated_vcpus"], today["low_priority_vcpus"]
    value = [usage("TotalDedicatedCores", "Total Regional Dedicated vCPUs", "totalCores", total["current"],
                   total["limit"]),
             usage("TotalLowPriorityCores", "Total Regional Low-priority vCPUs", "totalCores", low["current"],
                   low["limit"])]
    value += [usage(f["name"], f["name"], "vmFamily", f["current"], f["limit"]) for f in today["families"]]
    return JSONResponse({"value": value})
