"""The local token endpoint against the real azure-identity ManagedIdentityCredential, over real HTTP (uvicorn).

Job code runs in a separate Python process with only the environment a job gets, as on a local node.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential
from fastapi import FastAPI

from shared.adapters.identity_grants import SqliteIdentityGrants, new_job_secret
from shared.adapters.token_endpoint import (
    HOST_IDENTITY_VARIABLES_TO_DROP,
    RecordedTokenRequest,
    create_token_endpoint_app,
    job_identity_environment,
)
from shared.adapters.token_signer import TokenSigner
from shared.domain.identity import (
    ManagedIdentity,
    new_system_assigned,
    user_assigned_from_arm_id,
)
from tests.contract.uvicorn_server import running_uvicorn

STORAGE = "https://storage.azure.com/"
# The seed's snippet, unchanged, plus what makes it a program.
SEED_SNIPPET = """
import os
from azure.identity import ManagedIdentityCredential
client_id = os.environ.get('DEFAULT_IDENTITY_CLIENT_ID')
credential = ManagedIdentityCredential(client_id=client_id)
token = credential.get_token('https://storage.azure.com/')
print(token.token)
"""
# Real time, frozen: tokens must be valid for azure-identity and PyJWT, and their exp exactly predictable.
NOW = datetime.now(UTC).replace(microsecond=0)
# Whatever the test process has that would steer azure-identity elsewhere.
_IDENTITY_VARIABLES = (*HOST_IDENTITY_VARIABLES_TO_DROP, "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT",
                       "MSI_SECRET", "DEFAULT_IDENTITY_CLIENT_ID", "AZURE_AUTHORITY_HOST")


def _user_assigned(name: str) -> ManagedIdentity:
    return user_assigned_from_arm_id(f"/subscriptions/{uuid.UUID(int=7)}/resourcegroups/rg-ml"
                                     f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}")


SYSTEM = new_system_assigned("ws", "cpu-cluster", uuid.uuid4)
FIRST_UA, SECOND_UA, OTHER_CLUSTER_UA = _user_assigned("data-reader"), _user_assigned("logs"), _user_assigned("other")
CONTROL_PLANE = _user_assigned("computeplane")


@dataclass(frozen=True)
class FrozenClock:
    instant: datetime

    def now(self) -> datetime:
        return self.instant


@dataclass
class Endpoint:
    base_url: str  # of the mounted token app, e.g. http://127.0.0.1:1234/identity
    grants: SqliteIdentityGrants
    signer: TokenSigner
    requests: list[RecordedTokenRequest]

    def grant(self, identities: list[ManagedIdentity], cluster: str = "ws/cpu-cluster",
              expires_at: datetime | None = None) -> tuple[str, str]:
        """A new job on ``cluster``: (job id, secret)."""
        job_id, secret = f"job-{uuid.uuid4().hex[:8]}", new_job_secret()
        self.grants.grant(secret, job_id, cluster, identities, expires_at)
        return job_id, secret

    def job_environment(self, secret: str, identities: list[ManagedIdentity]) -> dict[str, str]:
        default = identities[0].client_id if identities else None
        return job_identity_environment(self.base_url, secret, default)

    def claims(self, token: str, audience: str = STORAGE) -> dict[str, object]:
        assert jwt.get_unverified_header(token)["kid"] == self.signer.key_id
        return jwt.decode(token, self.signer.public_key(), algorithms=["RS256"], audience=audience)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    state = tmp_path_factory.mktemp("identity")
    grants = SqliteIdentityGrants(state / "grants.sqlite")
    signer = TokenSigner(state / "keys", tenant_id=str(uuid.UUID(int=42)))
    requests: list[RecordedTokenRequest] = []
    parent = FastAPI()  # the local host's app; the token endpoint lives under a prefix of it
    parent.mount("/identity", create_token_endpoint_app(grants, signer, FrozenClock(NOW),
                                                        control_plane_identity=CONTROL_PLANE,
                                                        request_log=requests))
    with running_uvicorn(parent) as server_url:
        yield Endpoint(f"{server_url}/identity", grants, signer, requests)


@pytest.fixture
def job_env(monkeypatch: pytest.MonkeyPatch, endpoint: Endpoint) -> Iterator[pytest.MonkeyPatch]:
    """The test process with no identity variables but those a test sets; the request log starts empty."""
    for name in _IDENTITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    endpoint.requests.clear()
    yield monkeypatch


def run_seed_snippet(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    inherited = {name: value for name, value in os.environ.items() if name not in _IDENTITY_VARIABLES}
    return subprocess.run([sys.executable, "-c", SEED_SNIPPET], check=False, capture_output=True, text=True,
                          timeout=30, env={**inherited, **environment, "NO_PROXY": "127.0.0.1,localhost"})


def token_for(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], client_id: str | None) -> str:
    """What a job's credential gets, in this process (a fresh credential: no token cache carried over)."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    token: AccessToken = ManagedIdentityCredential(client_id=client_id).get_token(STORAGE)
    return token.token


def refusal(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], client_id: str | None) -> str:
    with pytest.raises(ClientAuthenticationError) as raised:
        token_for(monkeypatch, environment, client_id)
    return str(raised.value)


# --- the seed snippet in a job process ---

def test_seed_snippet_in_a_job_process_gets_a_token_for_the_system_assigned_identity(endpoint: Endpoint) -> None:
    _, secret = endpoint.grant([SYSTEM])
    finished = run_seed_snippet(endpoint.job_environment(secret, [SYSTEM]))
    assert finished.returncode == 0, finished.stderr
    claims = endpoint.claims(finished.stdout.strip())
    assert claims["aud"] == STORAGE
    assert claims["appid"] == SYSTEM.client_id
    assert claims["oid"] == claims["sub"] == SYSTEM.principal_id
    assert claims["xms_mirid"] == SYSTEM.resource_id
    assert claims["tid"] == str(uuid.UUID(int=42))
    assert claims["iss"] == f"https://sts.windows.net/{uuid.UUID(int=42)}/"
    assert claims["exp"] == int((NOW + timedelta(hours=1)).timestamp())
    # both protocols are in the job's environment; azure-identity picks App Service
    assert endpoint.requests[-1].path == "/identity/app-service/token"


def test_seed_snippet_gets_the_first_user_assigned_identity_as_default(endpoint: Endpoint) -> None:
    _, secret = endpoint.grant([FIRST_UA, SECOND_UA])
    finished = run_seed_snippet(endpoint.job_environment(secret, [FIRST_UA, SECOND_UA]))
    assert finished.returncode == 0, finished.stderr
    claims = endpoint.claims(finished.stdout.strip())
    assert (claims["appid"], claims["oid"]) == (FIRST_UA.client_id, FIRST_UA.principal_id)
    assert claims["xms_mirid"] == FIRST_UA.resource_id


def test_seed_snippet_on_a_cluster_without_identity_says_the_compute_has_none(endpoint: Endpoint) -> None:
    _, secret = endpoint.grant([])
    environment = endpoint.job_environment(secret, [])
    assert "DEFAULT_IDENTITY_CLIENT_ID" not in environment
    finished = run_seed_snippet(environment)
    assert finished.returncode != 0
    assert "The compute has no managed identity assigned" in finished.stderr


# --- which identities a job may use ---

def test_a_job_gets_its_second_user_assigned_identity_by_client_id(job_env: pytest.MonkeyPatch,
                                                                    endpoint: Endpoint) -> None:
    _, secret = endpoint.grant([FIRST_UA, SECOND_UA])
    token = token_for(job_env, endpoint.job_environment(secret, [FIRST_UA]), SECOND_UA.client_id)
    assert endpoint.claims(token)["appid"] == SECOND_UA.client_id


def test_another_clusters_identity_is_refused(job_env: pytest.MonkeyPatch, endpoint: Endpoint) -> None:
    endpoint.grant([OTHER_CLUSTER_UA], cluster="ws/other-cluster")
    _, secret = endpoint.grant([FIRST_UA])
    message = refusal(job_env, endpoint.job_environment(secret, [FIRST_UA]), OTHER_CLUSTER_UA.client_id)
    assert "No User Assigned or Delegated Managed Identity found" in message


def test_an_unknown_client_id_is_refused_with_azures_body(job_env: pytest.MonkeyPatch, endpoint: Endpoint) -> None:
    _, secret = endpoint.grant([FIRST_UA])
    environment = endpoint.job_environment(secret, [FIRST_UA])
    assert "No User Assigned" in refusal(job_env, environment, str(uuid.uuid4()))
    response = httpx.get(environment["IDENTITY_ENDPOINT"], headers={"X-IDENTITY-HEADER": secret},
                         params={"api-version": "2019-08-01", "resource": STORAGE, "client_id": str(uuid.uuid4())})
    body = response.json()
    assert response.status_code == 400
    assert body["statusCode"] == 400 and set(body) == {"statusCode", "message", "correlationId"}
    assert body["message"] == ("No User Assigned or Delegated Managed Identity found for specified "
                               "ClientId/ResourceId/PrincipalId.")


def test_an_object_id_given_as_client_id_gets_a_helpful_error(job_env: pytest.MonkeyPatch,
                                                               endpoint: Endpoint) -> None:
    _, secret = endpoint.grant([FIRST_UA, SECOND_UA])
    message = refusal(job_env, endpoint.job_environment(secret, [FIRST_UA]), SECOND_UA.principal_id)
    assert "A client id was expected" in message
    assert f"'{SECOND_UA.principal_id}' is the object (principal) id of the user-assigned identity 'logs'" in message
    assert SECOND_UA.client_id in message


def test_a_wrong_or_missing_secret_header_is_refused_with_401(job_env: pytest.MonkeyPatch,
                                                              endpoint: Endpoint) -> None:
    _, secret = endpoint.grant([SYSTEM])
    environment = endpoint.job_environment(secret, [SYSTEM])
    wrong = {**environment, "IDENTITY_HEADER": new_job_secret()}
    assert "not a valid identity secret" in refusal(job_env, wrong, None)
    params = {"api-version": "2019-08-01", "resource": STORAGE}
    missing = httpx.get(environment["IDENTITY_ENDPOINT"], params=params)
    assert missing.status_code == 401 and missing.json()["statusCode"] == 401
    assert httpx.get(environment["IDENTITY_ENDPOINT"], params=params,
                     headers={"X-IDENTITY-HEADER": "guess"}).status_code == 401


def test_a_request_without_resource_is_refused_with_400(endpoint: Endpoint) -> None:
    _, secret = endpoint.grant([SYSTEM])
    environment = endpoint.job_environment(secret, [SYSTEM])
    response = httpx.get(environment["IDENTITY_ENDPOINT"], params={"api-version": "2019-08-01"},
                         headers={"X-IDENTITY-HEADER": secret})
    assert response.status_code == 400
    assert "'resource' is missing" in response.json()["message"]


def test_a_job_that_ended_can_get_no_more_tokens(job_env: pytest.MonkeyPatch, endpoint: Endpoint) -> None:
    job_id, secret = endpoint.grant([SYSTEM])
    environment = endpoint.job_environment(secret, [SYSTEM])
    token_for(job_env, environment, SYSTEM.client_id)
    endpoint.grants.revoke_job(job_id)
    assert f"Job '{job_id}' has ended" in refusal(job_env, environment, SYSTEM.client_id)


def test_an_expired_grant_is_refused(job_env: pytest.MonkeyPatch, endpoint: Endpoint) -> None:
    job_id, secret = endpoint.grant([SYSTEM], expires_at=NOW - timedelta(seconds=1))
    assert f"Job '{job_id}' has ended" in refusal(job_env, endpoint.job_environment(secret, [SYSTEM]), None)


def test_a_revoked_identity_stops_working_at_once(job_env: pytest.MonkeyPatch, endpoint: Endpoint) -> None:
    system = new_system_assigned("ws", "short-lived", uuid.uuid4)
    _, secret = endpoint.grant([system], cluster="ws/short-lived")
    environment = endpoint.job_environment(secret, [system])
    token_for(job_env, environment, system.client_id)
    endpoint.grants.revoke_identity(system.client_id)  # the cluster, and its system-assigned identity, are deleted
    assert "The compute has no managed identity assigned" in refusal(job_env, environment, system.client_id)


def test_removing_an_identity_from_one_cluster_leaves_it_on_the_others(job_env: pytest.MonkeyPatch,
                                                                       endpoint: Endpoint) -> None:
    shared = _user_assigned("shared-by-two")
    _, removed_from = endpoint.grant([shared, SECOND_UA], cluster="ws/a")
    _, kept_on = endpoint.grant([shared], cluster="ws/b")
    endpoint.grants.revoke_identity(shared.client_id, cluster_key="ws/a")
    environment = endpoint.job_environment(removed_from, [shared, SECOND_UA])
    assert "No User Assigned" in refusal(job_env, environment, shared.client_id)
    # the next user-assigned identity becomes the default, as on AmlCompute
    assert endpoint.claims(token_for(job_env, environment, None))["appid"] == SECOND_UA.client_id
    assert endpoint.claims(token_for(job_env, endpoint.job_environment(kept_on, [shared]), shared.client_id))


# --- the wire protocols, as azure-identity speaks them ---

def test_app_service_protocol_as_azure_identity_sends_it(job_env: pytest.MonkeyPatch, endpoint: Endpoint) -> None:
    _, secret = endpoint.grant([CONTROL_PLANE], cluster="control-plane")
    job_env.setenv("IDENTITY_ENDPOINT", f"{endpoint.base_url}/app-service/token")
    job_env.setenv("IDENTITY_HEADER", secret)
    # An AAD v2 scope: azure-identity turns it into the v1 resource, which becomes the audience.
    token = ManagedIdentityCredential(client_id=CONTROL_PLANE.client_id).get_token(f"{STORAGE}.default")
    claims = endpoint.claims(token.token, audience="https://storage.azure.com")
    assert claims["appid"] == CONTROL_PLANE.client_id
    # msal turns expires_on into expires_in and azure-identity back, each with its own time.time(): +-1 s
    assert abs(token.expires_on - int((NOW + timedelta(hours=1)).timestamp())) <= 1
    [request] = endpoint.requests
    assert request.path == "/identity/app-service/token"
    assert request.query == (("api-version", "2019-08-01"), ("resource", "https://storage.azure.com"),
                             ("client_id", CONTROL_PLANE.client_id))
    assert request.headers["x-identity-header"] == secret
    assert request.headers["metadata"] == "true"


def test_azure_ml_protocol_as_azure_identity_sends_it(job_env: pytest.MonkeyPatch, endpoint: Endpoint) -> None:
    _, secret = endpoint.grant([FIRST_UA, SECOND_UA])
    environment = endpoint.job_environment(secret, [FIRST_UA])
    job_env.setenv("MSI_ENDPOINT", environment["MSI_ENDPOINT"])
    job_env.setenv("MSI_SECRET", environment["MSI_SECRET"])
    token = ManagedIdentityCredential(client_id=SECOND_UA.client_id).get_token(STORAGE)
    assert endpoint.claims(token.token)["appid"] == SECOND_UA.client_id
    [request] = endpoint.requests
    assert request.path == "/identity/azure-ml/token"
    assert request.query == (("api-version", "2017-09-01"), ("resource", STORAGE),
                             ("clientid", SECOND_UA.client_id))
    assert request.headers["secret"] == secret


def test_imds_protocol_serves_the_control_plane_identity(job_env: pytest.MonkeyPatch, endpoint: Endpoint) -> None:
    job_env.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", endpoint.base_url)
    token = ManagedIdentityCredential(client_id=CONTROL_PLANE.client_id).get_token(STORAGE)
    claims = endpoint.claims(token.token)
    assert (claims["appid"], claims["xms_mirid"]) == (CONTROL_PLANE.client_id, CONTROL_PLANE.resource_id)
    [request] = endpoint.requests
    assert request.path == "/identity/metadata/identity/oauth2/token"
    assert request.query == (("api-version", "2018-02-01"), ("resource", STORAGE),
                             ("client_id", CONTROL_PLANE.client_id))
    assert request.headers["metadata"] == "true"
    assert request.headers["x-client-sku"] == "MSAL.Python"


def test_imds_protocol_serves_no_job_identity(job_env: pytest.MonkeyPatch, endpoint: Endpoint) -> None:
    endpoint.grant([SYSTEM])
    job_env.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", endpoint.base_url)
    with pytest.raises(ClientAuthenticationError, match="Identity not found"):
        ManagedIdentityCredential(client_id=SYSTEM.client_id).get_token(STORAGE)
    response = httpx.get(f"{endpoint.base_url}/metadata/identity/oauth2/token",
                         params={"api-version": "2018-02-01", "resource": STORAGE})
    assert response.status_code == 400  # no Metadata header
    assert response.json()["error"] == "invalid_request"


def test_published_signing_keys_verify_issued_tokens(job_env: pytest.MonkeyPatch, endpoint: Endpoint) -> None:
    _, secret = endpoint.grant([SYSTEM])
    token = token_for(job_env, endpoint.job_environment(secret, [SYSTEM]), None)
    [key] = jwt.PyJWKSet.from_dict(httpx.get(f"{endpoint.base_url}/discovery/keys").json()).keys
    assert key.key_id == jwt.get_unverified_header(token)["kid"]
    assert jwt.decode(token, key.key, algorithms=["RS256"], audience=STORAGE)["oid"] == SYSTEM.principal_id


def test_the_signing_key_file_is_private_and_reused(tmp_path: Path) -> None:
    first = TokenSigner(tmp_path / "keys")
    token = first.issue(SYSTEM, STORAGE, NOW).access_token
    assert (tmp_path / "keys" / "token-signing-key.pem").stat().st_mode & 0o777 == 0o600
    again = TokenSigner(tmp_path / "keys")
    assert again.key_id == first.key_id
    assert jwt.decode(token, again.public_key(), algorithms=["RS256"], audience=STORAGE)["appid"] == SYSTEM.client_id


# --- the grants registry ---

def test_grants_store_only_a_hash_of_the_secret(tmp_path: Path) -> None:
    grants = SqliteIdentityGrants(tmp_path / "grants.sqlite")
    secret = new_job_secret()
    grants.grant(secret, "job-1", "ws/cpu-cluster", [FIRST_UA], None)
    stored = b"".join(path.read_bytes() for path in tmp_path.iterdir())
    assert secret.encode() not in stored
    grant = grants.lookup(secret)
    assert grant is not None and grant.default == FIRST_UA


def test_grants_are_safe_to_use_from_many_threads_at_once(tmp_path: Path) -> None:
    grants = SqliteIdentityGrants(tmp_path / "grants.sqlite")
    failures: list[BaseException] = []

    def one_job_after_another(worker: int) -> None:
        try:
            for n in range(10):
                job_id, secret = f"job-{worker}-{n}", new_job_secret()
                grants.grant(secret, job_id, "ws/cpu-cluster", [FIRST_UA, SECOND_UA], NOW + timedelta(hours=1))
                grant = grants.lookup(secret)
                assert grant is not None and grant.identities == (FIRST_UA, SECOND_UA) and not grant.revoked
                grants.revoke_job(job_id)
                revoked = grants.lookup(secret)
                assert revoked is not None and revoked.revoked
        except BaseException as failure:  # noqa: BLE001 - reported by the test thread below
            failures.append(failure)

    workers = [threading.Thread(target=one_job_after_another, args=(worker,)) for worker in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
