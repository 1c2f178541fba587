"""azure-ai-ml (v2), unmodified, manages AmlCompute clusters on ComputePlane: pointed at it by the cloud metadata
URL, authenticated by ``ManagedIdentityCredential`` against ComputePlane's token route."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.adapters.token_signer import TokenSigner
from shared.api.arm.tokens import LocalTokens
from tests.arm.harness import (
    RESOURCE_GROUP,
    SUBSCRIPTION,
    TlsServer,
    client_program,
    last_json_line,
    run_client,
    running_tls_server,
)

V2_LIFECYCLE = """
import json, sys, time
from azure.ai.ml import MLClient
from azure.ai.ml.entities import AmlCompute
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential

ml_client = MLClient(ManagedIdentityCredential(), sys.argv[1], sys.argv[2], sys.argv[3])
found = {}
started = time.monotonic()
cluster = ml_client.compute.begin_create_or_update(AmlCompute(
    name="v2-cluster", size="STANDARD_D2_V2", min_instances=0, max_instances=3,
    idle_time_before_scale_down=300, tier="low_priority")).result()
found["create_seconds"] = time.monotonic() - started
found["created"] = [cluster.provisioning_state, cluster.size, cluster.max_instances,
                    cluster.idle_time_before_scale_down, cluster.tier]
got = ml_client.compute.get("v2-cluster")
found["got"] = [got.provisioning_state, got.min_instances, got.max_instances]
found["listed"] = sorted(c.name for c in ml_client.compute.list())
found["nodes"] = list(ml_client.compute.list_nodes("v2-cluster"))
sizes = {s.name: s for s in ml_client.compute.list_sizes()}
# azure-ai-ml 1.35 copies the REST model's wire names onto its VmSize (vars: "vCPUs", "memoryGB")
found["size"] = [vars(sizes["Standard_D2_v2"]).get("vCPUs"), sizes["Standard_D2_v2"].family]
found["usage_names"] = sorted(u.name["value"] if isinstance(u.name, dict) else u.name.value
                              for u in ml_client.compute.list_usage())[:3]
try:
    ml_client.compute.begin_create_or_update(AmlCompute(name="v2-bad", size="NOT_A_SIZE", max_instances=1)).result()
except HttpResponseError as error:
    found["bad_input"] = [type(error).__name__, error.status_code, str(error)]
# Another workspace than the key's, and an expired token: the SDK's own exceptions, ComputePlane's messages.
import os
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
os.environ["IDENTITY_HEADER"] = sys.argv[4]  # an API key limited to workspace v2-team
limited = MLClient(ManagedIdentityCredential(), sys.argv[1], sys.argv[2], "v2-other")
try:
    limited.compute.get("v2-cluster")
except HttpResponseError as error:
    found["other_workspace"] = [type(error).__name__, error.status_code, str(error)]

class GivenToken:  # a credential handing out one fixed token, as a cached one would after it expired
    def get_token(self, *scopes, **kwargs):
        return AccessToken(sys.argv[5], int(time.time()) + 3600)

try:
    MLClient(GivenToken(), sys.argv[1], sys.argv[2], sys.argv[3]).compute.get("v2-cluster")
except ClientAuthenticationError as error:
    found["expired"] = [type(error).__name__, error.status_code, str(error)]
ml_client.compute.begin_delete("v2-cluster").result()
found["after_delete"] = sorted(c.name for c in ml_client.compute.list())
print(json.dumps(found, default=str))
"""


TEAM_KEY = "a-key-for-v2-team-only"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    data_dir = tmp_path_factory.mktemp("v2") / "data"
    data_dir.mkdir()
    (data_dir / "api-keys.json").write_text(json.dumps({"keys": [
        {"name": "v2-team", "key": TEAM_KEY, "workspaces": ["v2-team"]}]}))
    with running_tls_server(data_dir) as server:
        yield server


def test_azure_ai_ml_runs_the_compute_lifecycle_and_sees_computeplane_errors(tls_server: TlsServer,
                                                                              tmp_path: Path) -> None:
    python = client_program("AZURE_AI_ML_PYTHON", "pip install azure-ai-ml==1.35.0 azure-identity")
    script = tmp_path / "lifecycle.py"
    script.write_text(V2_LIFECYCLE)
    expired, _ = LocalTokens(TokenSigner(tls_server.server.data_dir / "keys")).issue(
        tls_server.url, None, datetime.now(UTC) - timedelta(hours=2), timedelta(hours=1))
    done = run_client([str(python), str(script), SUBSCRIPTION, RESOURCE_GROUP, "v2-team", TEAM_KEY, expired],
                      tls_server.client_environment(tmp_path / "home"), tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    found = last_json_line(done.stdout)

    assert found["created"] == ["Succeeded", "Standard_D2_v2", 3, 300, "low_priority"]
    assert found["create_seconds"] < 20  # type: ignore[operator]  # the poller follows Retry-After (not 30 s)
    assert found["got"] == ["Succeeded", 0, 3]
    assert found["listed"] == ["v2-cluster"]
    assert found["nodes"] == []
    assert found["size"] == [2, "standardDv2Family"]
    assert found["usage_names"] and all(isinstance(n, str) for n in found["usage_names"])
    kind, status, message = found["bad_input"]  # type: ignore[misc]
    assert (kind, status) == ("HttpResponseError", 400)
    assert "InvalidField" in message and "unknown VM size 'NOT_A_SIZE'" in message
    kind, status, message = found["other_workspace"]  # type: ignore[misc]
    assert (kind, status) == ("HttpResponseError", 403)
    assert "AuthorizationFailed" in message and "not valid for workspace 'v2-other'" in message
    kind, status, message = found["expired"]  # type: ignore[misc]
    assert (kind, status) == ("ClientAuthenticationError", 401) and "expired" in message
    assert found["after_delete"] == []
    with tls_server.http() as api:  # the same cluster, seen through today's API while it lived: gone now
        assert api.get("/api/workspaces/v2-team/clusters").json() == []
