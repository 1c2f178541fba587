"""What a client reads before it manages computes: the cloud metadata document, subscriptions, the workspace and
its discovery document, and (locally) the token route ``az login --identity`` and ``ManagedIdentityCredential``
reach through ``IDENTITY_ENDPOINT``.

The metadata is an object for api-version 2022-09-01 and later (``az cloud register`` reads that one) and a list
of clouds before (azureml-core asks with an older version). Its ``resourceManager`` is ComputePlane itself, and
its audience (``authentication.audiences``, ``activeDirectoryResourceId`` in az's terms) is ComputePlane's own
URL, never ARM's: a token a client gets for ComputePlane cannot be replayed against real Azure.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from shared.api.arm.context import arm_context, origin
from shared.api.arm.errors import arm_error, arm_errors
from shared.api.arm.routes import WORKSPACE, ApiVersion, caller_of, workspace_of
from shared.api.arm.scope import PROVIDER
from shared.api.arm.tokens import audiences_of
from shared.api.deps import DepsDep, container_of
from shared.domain.vm_sizes import normalize_location

CLOUD_NAME = "ComputePlane"
OBJECT_METADATA_SINCE = "2022-09-01"
TOKEN_PATH = "/arm-identity/token"
TOKEN_LIFETIME = timedelta(hours=1)

routes = APIRouter(include_in_schema=False)


def cloud_metadata(request: Request) -> dict[str, Any]:
    base = origin(request) + "/"
    context = arm_context(request)
    audience = context.audience(request)
    login = "https://login.microsoftonline.com/" if context.entra else base
    return {
        "name": CLOUD_NAME, "portal": base, "resourceManager": base, "gallery": base, "graph": base,
        "graphAudience": base, "media": base, "sqlManagement": base, "batch": base,
        "activeDirectoryDataLake": base, "microsoftGraphResourceId": base, "appInsightsResourceId": base,
        "appInsightsTelemetryChannelResourceId": base, "attestationResourceId": base,
        "synapseAnalyticsResourceId": base, "logAnalyticsResourceId": base, "ossrDbmsResourceId": base,
        "authentication": {"loginEndpoint": login, "audiences": audiences_of(audience), "tenant": "common",
                           "identityProvider": "AAD"},
        "suffixes": {"storage": "core.windows.net", "keyVaultDns": "vault.azure.net", "acrLoginServer": "azurecr.io",
                     "sqlServerHostname": "database.windows.net", "azureDataLakeStoreFileSystem":
                     "azuredatalakestore.net", "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
                     "mariadbServerEndpoint": "mariadb.database.azure.com", "mysqlServerEndpoint":
                     "mysql.database.azure.com", "postgresqlServerEndpoint": "postgres.database.azure.com",
                     "storageSyncEndpointSuffix": "afs.azure.net", "synapseAnalytics": "dev.azuresynapse.net",
                     "attestationEndpoint": "attest.azure.net"},
    }


@routes.get("/metadata/endpoints")
def metadata_endpoints(request: Request, api_version: ApiVersion = None) -> JSONResponse:
    document = cloud_metadata(request)
    return JSONResponse(document if (api_version or "") >= OBJECT_METADATA_SINCE else [document])


def subscription(request: Request) -> dict[str, Any]:
    context = arm_context(request)
    sub = context.mapping.subscription
    return {"id": f"/subscriptions/{sub}", "authorizationSource": "RoleBased", "subscriptionId": sub,
            "tenantId": context.tenant_id, "displayName": CLOUD_NAME, "state": "Enabled", "managedByTenants": [],
            "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "ComputePlane",
                                     "spendingLimit": "Off"}}


@routes.get("/subscriptions")
@arm_errors
def list_subscriptions(request: Request, api_version: ApiVersion = None) -> Response:
    caller_of(request, arm_context(request), api_version)
    return JSONResponse({"value": [subscription(request)], "count": {"type": "Total", "value": 1}})


@routes.get("/subscriptions/{subscription_id}")
@arm_errors
def get_subscription(request: Request, subscription_id: str, api_version: ApiVersion = None) -> Response:
    caller_of(request, arm_context(request), api_version)
    return JSONResponse(subscription(request) | {"id": f"/subscriptions/{subscription_id}",
                                                 "subscriptionId": subscription_id})


@arm_errors
def get_workspace(request: Request, subscription: str, resource_group: str, workspace: str, deps: DepsDep,
                  api_version: ApiVersion = None) -> Response:
    """A workspace always exists here (ComputePlane's workspaces are names); only what compute clients read is
    filled in: location, discoveryUrl, tenant. Every key a real answer has is here; what ComputePlane has no
    counterpart for (storage, key vault, registry, notebooks, telemetry) is null."""
    scope = workspace_of(request, api_version, subscription, resource_group, workspace)
    tenant = arm_context(request).tenant_id
    return JSONResponse({
        "id": scope.id, "name": scope.name, "type": f"{PROVIDER}/workspaces",
        "location": normalize_location(deps.workspace_location), "tags": {}, "etag": None,
        "properties": {"friendlyName": scope.name, "description": f"ComputePlane workspace '{scope.workspace}'",
                       "storageAccount": None, "keyVault": None, "applicationInsights": None,
                       "containerRegistry": None, "hbiWorkspace": False, "tenantId": tenant,
                       "imageBuildCompute": None, "provisioningState": "Succeeded", "storageHnsEnabled": False,
                       "workspaceId": scope.workspace, "privateLinkCount": 0, "publicNetworkAccess": "Enabled",
                       "discoveryUrl": f"{origin(request)}/discovery", "mlFlowTrackingUri": None,
                       "notebookInfo": None, "linkedModelInventoryArmId": None, "sdkTelemetryAppInsightsKey": None,
                       "sasGetterUri": ""},
        "identity": None, "sku": {"name": "Basic", "tier": "Basic"}, "systemData": None,
    })


for prefix in (WORKSPACE, "/rp/workspaces" + WORKSPACE):
    routes.add_api_route(prefix, get_workspace, methods=["GET"])


@routes.get("/discovery")
def discovery(request: Request) -> JSONResponse:
    """The workspace's service endpoints: all of them ComputePlane (only the compute routes answer)."""
    base = origin(request)
    return JSONResponse({name: base for name in ("api", "catalog", "experimentation", "gallery", "history",
                                                 "hyperdrive", "labeling", "modelmanagement", "pipelines",
                                                 "studio")})


@routes.get(TOKEN_PATH)
@routes.get(TOKEN_PATH + "/")  # msrestazure (azureml-core) appends a slash to MSI_ENDPOINT
def local_token(request: Request, resource: Annotated[str | None, Query()] = None,
                api_version: ApiVersion = None,
                identity_header: Annotated[str | None, Header(alias="X-IDENTITY-HEADER")] = None,
                secret: Annotated[str | None, Header()] = None) -> Response:
    """A token for ComputePlane's ARM API, for an API key presented as the managed-identity secret (App Service
    protocol 2019-08-01 ``X-IDENTITY-HEADER``, or 2017-09-01 ``secret``): limited to the key's workspaces."""
    context = arm_context(request)
    presented = identity_header or secret
    if context.local is None or context.api_keys is None:
        return arm_error(404, "NotFound", "local tokens are issued only by `computeplane serve`")
    key = context.api_keys.authenticate(presented) if presented else None
    if key is None:
        return JSONResponse({"statusCode": 401, "message": "X-IDENTITY-HEADER must be a ComputePlane API key"},
                            status_code=401)
    if api_version not in ("2019-08-01", "2017-09-01"):
        return JSONResponse({"statusCode": 400, "message": f"api-version '{api_version}' is not supported here; "
                                                           "use 2019-08-01"}, status_code=400)
    audience = context.audience(request)
    if not resource or resource.rstrip("/") != audience.rstrip("/"):
        return JSONResponse({"statusCode": 400, "message": f"tokens here are for ComputePlane only: ask for resource "
                                                           f"{audience}, not {resource!r}"}, status_code=400)
    now = container_of(request).deps.clock.now()
    workspaces = sorted(key.workspaces) if key.workspaces is not None else None
    token, expires = context.local.issue(audience, workspaces, now, TOKEN_LIFETIME)
    return JSONResponse({"access_token": token, "expires_on": str(int(expires.timestamp())), "resource": resource,
                         "token_type": "Bearer", "client_id": "computeplane-local-user"})
