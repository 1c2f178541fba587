"""Bearer tokens and errors on the ARM-shaped API, over real HTTPS to ``computeplane serve --tls``: 401 for a missing,
expired or misdirected token, 403 for another workspace, tokens limited as the API key they came from, Entra
validation against a published key set, and ARM's error shape with today's codes and messages."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.adapters.token_signer import LOCAL_TENANT_ID, TokenSigner
from shared.api.arm.tokens import EntraTokens, LocalTokens, TokenRefused
from shared.domain.identity import ManagedIdentity
from tests.arm.harness import SUBSCRIPTION, TlsServer, running_tls_server

TEAM_A_KEY = "a-key-for-team-a-only"
API = {"api-version": "2024-04-01"}


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    data_dir = tmp_path_factory.mktemp("tokens") / "data"
    data_dir.mkdir()
    (data_dir / "api-keys.json").write_text(json.dumps({"keys": [
        {"name": "default", "key": "unused-default-key", "workspaces": None},
        {"name": "team-a", "key": TEAM_A_KEY, "workspaces": ["team-a"]}]}))
    mapping = {f"{SUBSCRIPTION}/Team-RG/ml-workspace": "team-mapped"}
    with running_tls_server(data_dir, {"COMPUTEPLANE_ARM_WORKSPACES": json.dumps(mapping)}) as server:
        yield server


def computes(server: TlsServer, workspace: str) -> str:
    return f"{server.workspace_url(workspace)}/computes"


def signer_of(server: TlsServer) -> TokenSigner:
    return TokenSigner(server.server.data_dir / "keys")


def test_no_token_or_an_expired_one_is_401_in_arms_shape(tls_server: TlsServer) -> None:
    with tls_server.http() as api:
        missing = api.get(computes(tls_server, "team-a"), params=API)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert missing.json()["error"]["details"] == []

    expired, _ = LocalTokens(signer_of(tls_server)).issue(tls_server.url, None, datetime.now(UTC) - timedelta(hours=2),
                                                          timedelta(hours=1))
    with tls_server.http(expired) as api:
        answer = api.get(computes(tls_server, "team-a"), params=API)
    assert answer.status_code == 401 and "expired" in answer.json()["error"]["message"]


def test_a_token_for_arm_itself_or_for_a_job_identity_is_refused(tls_server: TlsServer) -> None:
    now = datetime.now(UTC)
    for_arm, _ = LocalTokens(signer_of(tls_server)).issue("https://management.azure.com/", None, now)
    with tls_server.http(for_arm) as api:
        answer = api.get(computes(tls_server, "team-a"), params=API)
    assert answer.status_code == 401 and tls_server.url in answer.json()["error"]["message"]

    job_identity = ManagedIdentity(kind="SystemAssigned", client_id="11111111-1111-1111-1111-111111111111",
                                   principal_id="22222222-2222-2222-2222-222222222222")
    job_token = signer_of(tls_server).issue(job_identity, tls_server.url, now).access_token
    with tls_server.http(job_token) as api:
        answer = api.get(computes(tls_server, "team-a"), params=API)
    assert answer.status_code == 403 and "computeplane_workspaces" in answer.json()["error"]["message"]


def test_a_token_from_a_limited_key_reaches_its_workspace_only(tls_server: TlsServer) -> None:
    with tls_server.http() as api:
        issued = api.get("/arm-identity/token", params={"api-version": "2019-08-01", "resource": tls_server.url},
                         headers={"X-IDENTITY-HEADER": TEAM_A_KEY})
        refused = api.get("/arm-identity/token", params={"api-version": "2019-08-01", "resource": tls_server.url},
                          headers={"X-IDENTITY-HEADER": "not-a-key"})
        for_arm = api.get("/arm-identity/token", headers={"X-IDENTITY-HEADER": TEAM_A_KEY},
                          params={"api-version": "2019-08-01", "resource": "https://management.azure.com/"})
    assert refused.status_code == 401 and for_arm.status_code == 400
    token = issued.json()["access_token"]
    with tls_server.http(token) as api:
        assert api.get(computes(tls_server, "team-a"), params=API).json() == {"value": []}
        other = api.get(computes(tls_server, "team-b"), params=API)
    assert other.status_code == 403
    assert other.json()["error"] == {"code": "AuthorizationFailed", "details": [],
                                     "message": "this token is not valid for workspace 'team-b'"}


def test_computeplane_token_issue_limits_the_token_to_the_workspaces_named(tls_server: TlsServer) -> None:
    done = subprocess.run([sys.executable, "-m", "computeplane", "--endpoint", tls_server.url, "token", "issue",
                           "--for-workspace", "team-b", "--minutes", "5", "--data-dir",
                           str(tls_server.server.data_dir)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    with tls_server.http(done.stdout.strip()) as api:
        assert api.get(computes(tls_server, "team-b"), params=API).status_code == 200
        assert api.get(computes(tls_server, "team-a"), params=API).status_code == 403


def test_bad_input_is_arms_error_shape_with_todays_code_and_message(tls_server: TlsServer) -> None:
    body = {"location": "eastus", "properties": {"computeType": "AmlCompute", "properties": {
        "vmSize": "STANDARD_D2_V2", "scaleSettings": {"minNodeCount": 3, "maxNodeCount": 2}}}}
    with tls_server.http(tls_server.token()) as api:
        answer = api.put(f"{computes(tls_server, 'team-a')}/badscale", params=API, json=body)
        no_version = api.get(computes(tls_server, "team-a"))
        with_api = api.post("/api/workspaces/team-a/clusters", json={"name": "badscale", "vm_size": "STANDARD_D2_V2",
                                                                     "min_nodes": 3, "max_nodes": 2})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["message"]) == (with_api.json()["error"]["code"], with_api.json()["error"]["message"])
    assert with_api.json()["error"]["details"][0]["field"] == "max_nodes"  # named in ARM's terms here:
    assert error["details"] == [{"code": "InvalidField", "target": "properties.properties.scaleSettings.maxNodeCount",
                                 "message": with_api.json()["error"]["details"][0]["rule"]}]
    assert no_version.status_code == 400 and no_version.json()["error"]["code"] == "MissingApiVersionParameter"


def test_the_metadata_declares_computeplane_as_its_own_audience(tls_server: TlsServer) -> None:
    with tls_server.http() as api:
        old = api.get("/metadata/endpoints", params={"api-version": "2019-05-01"}).json()
        new = api.get("/metadata/endpoints", params={"api-version": "2022-09-01"}).json()
    assert isinstance(old, list) and old[0] == new
    assert new["resourceManager"] == f"{tls_server.url}/"
    assert new["authentication"]["audiences"] == [tls_server.url, f"{tls_server.url}/"]
    assert "management" not in " ".join(new["authentication"]["audiences"])


def test_entra_tokens_are_checked_against_the_published_keys_issuer_and_audience(tls_server: TlsServer) -> None:
    """The Entra validator, fetching the key set over HTTPS as in Azure; the local token endpoint publishes one
    (its issuer is Entra's v1 form for the local tenant)."""
    audience = "api://computeplane-test"
    context = ssl.create_default_context(cafile=str(tls_server.ca))
    entra = EntraTokens(tenant_id=LOCAL_TENANT_ID, audience=audience, ssl_context=context,
                        jwks_url=f"{tls_server.url}/identity/discovery/keys")
    signer, now = signer_of(tls_server), datetime.now(UTC)

    def token(claims: dict[str, object]) -> str:
        return signer.sign({"aud": audience, "iss": signer.issuer, "tid": LOCAL_TENANT_ID,
                            "exp": int((now + timedelta(minutes=5)).timestamp()), **claims})

    assert entra.check(token({"roles": ["Workspace.team-a"]}), "ignored").workspaces == frozenset({"team-a"})
    assert entra.check(token({"roles": ["ComputePlane.All"]}), "ignored").workspaces is None
    assert entra.check(token({}), "ignored").workspaces == frozenset()
    for wrong in ({"aud": "https://management.azure.com/"}, {"iss": "https://sts.windows.net/another-tenant/"},
                  {"exp": int((now - timedelta(hours=1)).timestamp())}):
        with pytest.raises(TokenRefused):
            entra.check(token(wrong), "ignored")
    foreign = TokenSigner(Path(tls_server.server.data_dir.parent / "other-keys"))
    with pytest.raises(TokenRefused, match="signing key"):
        entra.check(foreign.sign({"aud": audience, "iss": signer.issuer, "tid": LOCAL_TENANT_ID,
                                  "exp": int((now + timedelta(minutes=5)).timestamp())}), "ignored")


def test_arm_paths_match_without_regard_to_keyword_case_or_a_doubled_slash(tls_server: TlsServer) -> None:
    """As ARM does: clients write resourcegroups or resourceGroups, and azureml-core joins "https://host/" with
    "/subscriptions/..."."""
    lowered = computes(tls_server, "team-a").replace("resourceGroups", "resourcegroups").replace(
        "Microsoft.MachineLearningServices", "microsoft.machinelearningservices").replace("/computes", "/COMPUTES")
    with tls_server.http(tls_server.token()) as api:
        assert api.get(lowered, params=API).json() == {"value": []}
        doubled = f"{tls_server.url}/{computes(tls_server, 'team-a')}"  # a full URL: "//x" alone is a host
        assert api.get(doubled, params=API).json() == {"value": []}
        rp = api.post(f"/rp/workspaces{tls_server.workspace_url('team-a')}/computes/nothere/listnodes", params=API)
    assert rp.status_code == 404 and rp.json()["error"]["code"] == "ComputeTargetNotFound"


def test_a_mapped_arm_workspace_is_the_computeplane_workspace_it_names(tls_server: TlsServer) -> None:
    """COMPUTEPLANE_ARM_WORKSPACES maps sub/rg/workspace (any case) to a ComputePlane workspace; a token limited to
    another workspace does not reach it through the ARM name."""
    mapped = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/team-rg/providers/Microsoft.MachineLearningServices/"
              "workspaces/ML-Workspace/computes/mapped-cluster")
    body = {"location": "eastus", "properties": {"computeType": "AmlCompute", "properties": {
        "vmSize": "STANDARD_D2_V2", "scaleSettings": {"minNodeCount": 0, "maxNodeCount": 1}}}}
    with tls_server.http() as api:
        team_a = api.get("/arm-identity/token", params={"api-version": "2019-08-01", "resource": tls_server.url},
                         headers={"X-IDENTITY-HEADER": TEAM_A_KEY}).json()["access_token"]
    with tls_server.http(team_a) as api:
        assert api.put(mapped, params=API, json=body).status_code == 403
    with tls_server.http(tls_server.token()) as api:
        created = api.put(mapped, params=API, json=body)
    assert created.status_code == 201 and created.json()["id"].endswith("/workspaces/ML-Workspace/computes/"
                                                                          "mapped-cluster")
    with tls_server.http() as api:
        assert [c["name"] for c in api.get("/api/workspaces/team-mapped/clusters").json()] == ["mapped-cluster"]


def test_serve_refuses_to_start_with_a_mapping_it_cannot_read(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "computeplane", "serve", "--port", "1", "--data-dir",
                           str(tmp_path / "data")], env={**os.environ, "COMPUTEPLANE_ARM_WORKSPACES": '{"a/b": "x"}'},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "COMPUTEPLANE_ARM_WORKSPACES" in done.stderr and "Traceback" not in done.stderr
