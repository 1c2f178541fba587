"""Which node provider runs, and what the simulation-only controls answer where nodes are real."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from shared.api.app import create_app
from shared.bootstrap import build
from shared.config import Settings
from shared.domain.cluster import ClusterSpec, Node, NodeState, ProvisioningState
from shared.domain.cluster_changes import new_cluster
from tests.contract.uvicorn_server import running_uvicorn
from tests.unit.builders import T0

AZURE_BATCH_ENV = {"COMPUTEPLANE_PROVIDER": "azurebatch", "AZURE_SUBSCRIPTION_ID": "sub",
                   "COMPUTEPLANE_NODE_RESOURCE_GROUP": "rg-nodes", "COMPUTEPLANE_BATCH_ACCOUNT": "acct",
                   "COMPUTEPLANE_BATCH_ACCOUNT_ENDPOINT": "https://acct.eastus.batch.azure.com"}


def test_the_provider_setting_names_its_choices_and_what_azure_batch_needs() -> None:
    assert Settings.from_env({}).provider == "local"
    batch = Settings.from_env(AZURE_BATCH_ENV).azure_batch
    assert batch is not None and batch.account_name == "acct" and batch.node_image.startswith("canonical:ubuntu")
    with pytest.raises(ValueError, match="COMPUTEPLANE_PROVIDER: must be local or azurebatch"):
        Settings.from_env({"COMPUTEPLANE_PROVIDER": "aws"})
    with pytest.raises(ValueError, match="COMPUTEPLANE_BATCH_ACCOUNT: required when COMPUTEPLANE_PROVIDER=azurebatch"):
        Settings.from_env({k: v for k, v in AZURE_BATCH_ENV.items() if k != "COMPUTEPLANE_BATCH_ACCOUNT"})
    with pytest.raises(ValueError, match="COMPUTEPLANE_BATCH_ACCOUNT_ENDPOINT: must be an https:// URL"):
        Settings.from_env(AZURE_BATCH_ENV | {"COMPUTEPLANE_BATCH_ACCOUNT_ENDPOINT": "http://acct"})


def test_simulation_controls_answer_501_with_the_reason_where_no_simulated_cloud_is_wired(tmp_path: Path) -> None:
    built = build(Settings(data_dir=tmp_path / "data"))
    deps = dataclasses.replace(built.deps, simulation=None)
    cluster = new_cluster("ws", "spot", ClusterSpec(vm_size="STANDARD_D2_V2", max_nodes=2, vm_priority="lowpriority"),
                          "abcdef123456", T0)
    cluster.provisioning_state = ProvisioningState.SUCCEEDED
    cluster.nodes.append(Node(node_id="spot-abcdef-0001", state=NodeState.IDLE, requested_at=T0, ready_at=T0))
    deps.store.create_cluster(cluster)
    app = create_app(lambda: dataclasses.replace(built, deps=deps))
    with running_uvicorn(app) as url, httpx.Client(base_url=url) as http:
        for response in (http.get("/api/locks"), http.post("/api/locks", json={"name": "l"}),
                         http.delete("/api/locks/l")):
            assert response.status_code == 501
            assert response.json()["error"]["code"] == "NotSupportedByNodeProvider"
            assert "az lock create" in response.json()["error"]["message"]
        preempt = http.post("/api/workspaces/ws/clusters/spot/nodes/spot-abcdef-0001/preempt")
        assert preempt.status_code == 501
        assert "Azure preempts low-priority nodes itself" in preempt.json()["error"]["message"]
    saved = deps.store.get_cluster("ws", "spot")
    assert saved is not None and saved.nodes[0].state is NodeState.IDLE  # nothing changed


def test_the_embedded_runtime_never_loads_the_batch_sdks(tmp_path: Path) -> None:
    probe = ("import sys; from shared.bootstrap import build; from shared.config import Settings; "
             "from pathlib import Path; "
             f"build(Settings(data_dir=Path({str(tmp_path / 'data')!r}))); "
             "print(sorted(m for m in sys.modules if m.startswith(('azure.batch', 'azure.mgmt'))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
