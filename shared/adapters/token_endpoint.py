"""The local token endpoint: what Azure's managed-identity endpoints are to a job, for jobs run on a local node.

Job code gets tokens with the real ``azure.identity.ManagedIdentityCredential`` exactly as on Azure ML. The app
speaks the three wire protocols that credential (through msal's ``ManagedIdentityClient``) uses:

- App Service / Functions, api-version 2019-08-01: ``IDENTITY_ENDPOINT``, header ``X-IDENTITY-HEADER``;
- Azure ML compute, api-version 2017-09-01: ``MSI_ENDPOINT``, header ``secret``;
- IMDS, api-version 2018-02-01, header ``Metadata: true``: only for the control plane's own identity
  (``AZURE_POD_IDENTITY_AUTHORITY_HOST``), never for jobs, since it has no per-job secret.

A job is served only the identities granted to its secret (see ``identity_grants``). Routes are relative, so the
local host can mount the app under any prefix (``/identity``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.adapters.identity_grants import Grant
from shared.adapters.token_signer import IssuedToken, TokenSigner
from shared.domain.errors import DomainError
from shared.domain.identity import ManagedIdentity, select_identity
from shared.ports import Clock

APP_SERVICE_TOKEN_PATH = "/app-service/token"
AZURE_ML_TOKEN_PATH = "/azure-ml/token"
IMDS_TOKEN_PATH = "/metadata/identity/oauth2/token"  # fixed by the protocol: azure-identity appends it to the host
SIGNING_KEYS_PATH = "/discovery/keys"

# Variables a job must not inherit from the host: they would make azure-identity pick another protocol
# (Service Fabric, Azure Arc), reach the control plane's IMDS route, or authenticate as the control plane itself.
HOST_IDENTITY_VARIABLES_TO_DROP = (
    "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", "AZURE_POD_IDENTITY_AUTHORITY_HOST", "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_TENANT_ID",
    "AZURE_USERNAME", "AZURE_PASSWORD",
)


def job_identity_environment(endpoint_base_url: str, secret: str, default_client_id: str | None) -> dict[str, str]:
    """The environment variables that let a job's ``ManagedIdentityCredential`` reach this endpoint.

    Both protocols are set, pointing at the same endpoint with the same secret. azure-identity (and msal, which
    does the request) checks ``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER`` first and uses the App Service protocol;
    ``MSI_ENDPOINT`` + ``MSI_SECRET`` is only consulted when those are absent, which is what older clients and
    tools written for Azure ML compute read. Whichever a client picks, it gets the same identities.
    ``DEFAULT_IDENTITY_CLIENT_ID`` is set only when the cluster has an identity, as on Azure ML; without it the
    seed snippet asks for the default identity, and the endpoint says the compute has none.
    Remove ``HOST_IDENTITY_VARIABLES_TO_DROP`` from whatever environment the job inherits.
    """
    base = endpoint_base_url.rstrip("/")
    environment = {
        "IDENTITY_ENDPOINT": base + APP_SERVICE_TOKEN_PATH,
        "IDENTITY_HEADER": secret,
        "MSI_ENDPOINT": base + AZURE_ML_TOKEN_PATH,
        "MSI_SECRET": secret,
    }
    if default_client_id:
        environment["DEFAULT_IDENTITY_CLIENT_ID"] = default_client_id
    return environment


class IdentityGrantLookup(Protocol):
    def lookup(self, secret: str) -> Grant | None: ...


@dataclass(frozen=True)
class RecordedTokenRequest:
    """One request as it arrived, for tests that pin down what azure-identity sends."""

    path: str
    query: tuple[tuple[str, str], ...]
    headers: dict[str, str]  # names lower-cased


@dataclass(frozen=True)
class _SecretProtocol:
    """A protocol where the caller proves who it is with a per-job secret in a header."""

    api_version: str
    secret_header: str
    echoes_client_id: bool  # App Service 2019-08-01 returns client_id; Azure ML 2017-09-01 does not

    def token_body(self, token: IssuedToken, identity: ManagedIdentity, resource: str) -> dict[str, str]:
        body = {"access_token": token.access_token, "expires_on": str(int(token.expires_on.timestamp())),
                "resource": resource, "token_type": "Bearer"}
        if self.echoes_client_id:
            body["client_id"] = identity.client_id
        return body

    @staticmethod
    def error(status: int, message: str) -> JSONResponse:
        # App Service's error shape; msal shows "statusCode, message" to the user, so the message is what they read.
        return JSONResponse({"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())},
                            status_code=status)


_APP_SERVICE = _SecretProtocol(api_version="2019-08-01", secret_header="X-IDENTITY-HEADER", echoes_client_id=True)
_AZURE_ML = _SecretProtocol(api_version="2017-09-01", secret_header="secret", echoes_client_id=False)
_IMDS_API_VERSION = "2018-02-01"


def _imds_error(message: str) -> JSONResponse:
    return JSONResponse({"error": "invalid_request", "error_description": message}, status_code=400)


def _request_problem(request: Request, api_version: str) -> str | None:
    """What is wrong with the request itself, whoever sent it."""
    given = request.query_params.get("api-version")
    if given != api_version:
        return f"api-version '{given or ''}' is not supported here; use api-version={api_version}."
    if not request.query_params.get("resource"):
        return "Required query parameter 'resource' is missing."
    return None


def _selected(request: Request, identities: tuple[ManagedIdentity, ...]) -> ManagedIdentity:
    """Each protocol names the selectors differently (client_id/clientid, mi_res_id/msi_res_id,
    object_id/principal_id); every spelling is accepted everywhere so no client is refused on a technicality."""
    query = request.query_params

    def first(*names: str) -> str | None:
        return next((query[name] for name in names if query.get(name)), None)

    return select_identity(identities, client_id=first("client_id", "clientid"),
                           principal_id=first("object_id", "principal_id"),
                           resource_id=first("mi_res_id", "msi_res_id"))


def create_token_endpoint_app(grants: IdentityGrantLookup, signer: TokenSigner, clock: Clock, *,
                              control_plane_identity: ManagedIdentity | None = None,
                              request_log: list[RecordedTokenRequest] | None = None) -> FastAPI:
    """The endpoint as an ASGI app, to mount under any prefix of the local host's server.

    ``control_plane_identity`` is served on the IMDS route to anyone who can reach it, so set it only where the
    control plane runs alone (its own contract tests); by default that route answers "Identity not found".
    """
    app = FastAPI(title="ComputePlane local token endpoint", openapi_url=None, docs_url=None, redoc_url=None)

    def record(request: Request) -> None:
        if request_log is not None:
            request_log.append(RecordedTokenRequest(
                path=request.url.path, query=tuple(request.query_params.multi_items()),
                headers={name.lower(): value for name, value in request.headers.items()}))

    def serve_job(request: Request, protocol: _SecretProtocol) -> JSONResponse:
        record(request)
        secret = request.headers.get(protocol.secret_header)
        if not secret:
            return protocol.error(401, f"Missing {protocol.secret_header} header.")
        grant = grants.lookup(secret)
        if grant is None:
            return protocol.error(401, f"The {protocol.secret_header} header is not a valid identity secret.")
        now = clock.now()
        if grant.revoked or grant.is_expired(now):
            return protocol.error(401, f"Job '{grant.job_id}' has ended: its identity secret no longer works.")
        problem = _request_problem(request, protocol.api_version)
        if problem is not None:
            return protocol.error(400, problem)
        try:
            identity = _selected(request, grant.identities)
        except DomainError as error:
            return protocol.error(400, error.message)
        resource = request.query_params["resource"]
        token = signer.issue(identity, resource, now, not_after=grant.expires_at)
        return JSONResponse(protocol.token_body(token, identity, resource))

    # Sync handlers: the grant lookup is blocking SQLite, so FastAPI runs them in its thread pool.
    @app.get(APP_SERVICE_TOKEN_PATH)
    def app_service_token(request: Request) -> JSONResponse:
        return serve_job(request, _APP_SERVICE)

    @app.get(AZURE_ML_TOKEN_PATH)
    def azure_ml_token(request: Request) -> JSONResponse:
        return serve_job(request, _AZURE_ML)

    @app.get(IMDS_TOKEN_PATH)
    def imds_token(request: Request) -> JSONResponse:
        record(request)
        if request.headers.get("Metadata", "").lower() != "true":
            return _imds_error("Required metadata header not specified")
        problem = _request_problem(request, _IMDS_API_VERSION)
        if problem is not None:
            return _imds_error(problem)
        if control_plane_identity is None:
            return _imds_error("Identity not found")
        try:
            identity = _selected(request, (control_plane_identity,))
        except DomainError:
            return _imds_error("Identity not found")
        now = clock.now()
        resource = request.query_params["resource"]
        token = signer.issue(identity, resource, now)
        lifetime = int((token.expires_on - now).total_seconds())
        return JSONResponse({
            "access_token": token.access_token, "client_id": identity.client_id,
            "expires_in": str(lifetime), "ext_expires_in": str(lifetime),
            "expires_on": str(int(token.expires_on.timestamp())), "not_before": str(int(now.timestamp())),
            "resource": resource, "token_type": "Bearer",
        })

    @app.get(SIGNING_KEYS_PATH)
    def signing_keys() -> dict[str, list[dict[str, str]]]:
        """The public keys, so a locally emulated resource can verify the tokens it receives."""
        return signer.jwks()

    return app
