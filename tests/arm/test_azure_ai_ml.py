"""azure-ai-ml (v2), unmodified, manages AmlCompute clusters on ComputePlane: pointed at it by the cloud metadata
URL, authenticated by ``ManagedIdentityCredential`` against ComputePlane's token route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
ml_client.compute.begin_delete("v2-cluster").result()
found["after_delete"] = sorted(c.name for c in ml_client.compute.list())
print(json.dumps(found, default=str))
"""


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    with running_tls_server(tmp_path_factory.mktemp("v2") / "data") as server:
        yield server


def test_azure_ai_ml_runs_the_compute_lifecycle_and_sees_computeplane_errors(tls_server: TlsServer,
                                                                              tmp_path: Path) -> None:
    python = client_program("AZURE_AI_ML_PYTHON", "pip install azure-ai-ml==1.35.0 azure-identity")
    script = tmp_path / "lifecycle.py"
    script.write_text(V2_LIFECYCLE)
    done = run_client([str(python), str(script), SUBSCRIPTION, RESOURCE_GROUP, "v2-team"],
                      tls_server.client_environment(tmp_path / "home"), tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    found = last_json_line(done.stdout)

    assert found["created"] == ["Succeeded", "Standard_D2_v2", 3, 300, "low_priority"]
    assert found["create_seconds"] < 20  # the poller follows Retry-After, not its 30 s default  # type: ignore
    assert found["got"] == ["Succeeded", 0, 3]
    assert found["listed"] == ["v2-cluster"]
    assert found["nodes"] == []
    assert found["size"] == [2, "standardDv2Family"]
    assert found["usage_names"] and all(isinstance(n, str) for n in found["usage_names"])
    kind, status, message = found["bad_input"]  # type: ignore[misc]
    assert (kind, status) == ("HttpResponseError", 400)
    assert "InvalidField" in message and "unknown VM size 'NOT_A_SIZE'" in message
    assert found["after_delete"] == []
    with tls_server.http() as api:  # the same cluster, seen through today's API while it lived: gone now
        assert api.get("/api/workspaces/v2-team/clusters").json() == []
