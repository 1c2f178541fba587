"""End to end: ``computeplane serve`` with COMPUTEPLANE_PROVIDER=azurebatch, pointed at the Batch stand-in.

The server is a real subprocess; its provider talks to the stand-in over HTTPS with the real azure-batch and
azure-mgmt-batch SDKs, with tokens its real azure-identity credential gets from the control plane's local token
endpoint (IMDS protocol). Nothing in the server knows it is not Azure but the URLs and the CA it trusts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from shared.adapters.azure_batch.pools import NodeMap, pool_id
from tests.azure_batch.serving import ACCOUNT, NODE_RESOURCE_GROUP, SUBSCRIPTION, StandIn, TokenEndpoint
from tests.azure_batch.tls import ServerCertificate
from tests.e2e.server import Server, http, start_server, wait_for
from tests.e2e.test_lifecycle import cluster, create_cluster, finished, job, submit

HOST_IDENTITY_VARIABLES = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "WEBSITE_INSTANCE_ID",
                           "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE")
RESUMABLE = ["python", "-c", "import os, time; time.sleep(60 if os.environ['COMPUTEPLANE_ATTEMPT'] == '1' else 0);"
                             " print('attempt', os.environ['COMPUTEPLANE_ATTEMPT'])"]


@pytest.fixture
def server(tmp_path: Path, standin: StandIn, certificate: ServerCertificate,
           token_endpoint: TokenEndpoint, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    yield from batch_server(tmp_path, standin, certificate, token_endpoint, monkeypatch)


def batch_server(tmp_path: Path, standin: StandIn, certificate: ServerCertificate, token_endpoint: TokenEndpoint,
                 monkeypatch: pytest.MonkeyPatch, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """``computeplane serve`` on the stand-in (``extra_env``: more settings)."""
    for name in HOST_IDENTITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)  # the server must not find another identity than the endpoint's
    srv = start_server(tmp_path / "data", {
        "COMPUTEPLANE_PROVIDER": "azurebatch",
        "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
        "COMPUTEPLANE_NODE_RESOURCE_GROUP": NODE_RESOURCE_GROUP,
        "COMPUTEPLANE_BATCH_ACCOUNT": ACCOUNT,
        "COMPUTEPLANE_BATCH_ACCOUNT_ENDPOINT": standin.url,
        "COMPUTEPLANE_ARM_ENDPOINT": standin.url,
        "AZURE_CLIENT_ID": token_endpoint.identity.client_id,
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": token_endpoint.base_url,
        "REQUESTS_CA_BUNDLE": str(certificate.ca_file),
        "NO_PROXY": "127.0.0.1,localhost",
        "COMPUTEPLANE_BOOT_TIMEOUT_SECONDS": "60",
        **(extra_env or {}),
    })
    try:
        yield srv
    finally:
        srv.stop()


def batch_node_of(standin: StandIn, name: str, node_id: str) -> str:
    with standin.world.lock:
        metadata = standin.world.pools[pool_id("default", name)].body["properties"]["metadata"]
    batch_node = NodeMap.from_metadata(metadata).batch_node(node_id)
    assert batch_node is not None
    return batch_node


def test_the_whole_lifecycle_runs_on_batch_pools(server: Server, standin: StandIn,
                                                 token_endpoint: TokenEndpoint) -> None:
    assert "Local jobs:        none: jobs run on Azure Batch pools of account cpbatch" in server.log()
    assert create_cluster(server, "batchcpu", max_nodes=2).status_code == 202
    wait_for(lambda: cluster(server, "batchcpu")["provisioning_state"] == "Succeeded", what="Succeeded")
    assert pool_id("default", "batchcpu") in standin.world.pools

    single = submit(server, "batchcpu", ["python", "-c", "import os; print('hello from batch attempt',"
                                                         " os.environ['COMPUTEPLANE_ATTEMPT'])"])
    gang = submit(server, "batchcpu", ["python", "-c", "import os; print('gang on', os.environ['AZ_BATCH_HOST_LIST'],"
                                                       " 'of', os.environ['COMPUTEPLANE_NODE_COUNT'])"],
                  node_count=2)
    for job_id in (single, gang):
        done = wait_for(lambda j=job_id: finished(server, j), timeout=90, what=f"job {job_id}")
        assert done["state"] == "Completed", done
    logs = http.get(f"{server.api()}/jobs/{single}/logs").json()["logs"]
    assert "hello from batch attempt 1" in logs
    gang_logs = http.get(f"{server.api()}/jobs/{gang}/logs").json()["logs"]
    assert "gang on 10.0.0." in gang_logs and "of 2" in gang_logs

    # Idle for idle_seconds_before_scaledown: back to min_nodes (0), in ComputePlane and in the pool.
    wait_for(lambda: cluster(server, "batchcpu")["current_node_count"] == 0, timeout=60, what="scale down to 0")
    wait_for(lambda: not standin.pool_node_ids(pool_id("default", "batchcpu")), timeout=30, what="pool empty")

    # Simulation controls do not exist with real nodes: a clear 501, not a crash.
    refused = http.get(f"{server.url}/api/locks")
    assert refused.status_code == 501 and refused.json()["error"]["code"] == "NotSupportedByNodeProvider"

    assert http.delete(f"{server.api()}/clusters/batchcpu").status_code == 202
    wait_for(lambda: http.get(f"{server.api()}/clusters/batchcpu").status_code == 404, timeout=60, what="deleted")
    assert pool_id("default", "batchcpu") in standin.world.deleted_pools

    # Every call reached the stand-in with the control plane's managed-identity token from the local endpoint.
    key = token_endpoint.signer.public_key()
    tokens = {token for _, token in standin.world.bearer_tokens}
    assert tokens
    for token in tokens:
        claims = jwt.decode(token, key, algorithms=["RS256"],
                            audience=["https://management.azure.com", "https://batch.core.windows.net/"])
        assert claims["appid"] == token_endpoint.identity.client_id


def test_a_preempted_low_priority_node_requeues_its_job_and_a_quota_refusal_shows(server: Server,
                                                                                  standin: StandIn) -> None:
    create_cluster(server, "spot", max_nodes=1, vm_priority="lowpriority")
    job_id = submit(server, "spot", RESUMABLE, max_retries=2)
    running = wait_for(lambda: (j := job(server, job_id))["state"] == "Running" and j, timeout=60,
                       what="first attempt running")
    wait_for(lambda: any(t.state == "running" for t in standin.world.tasks.values()), timeout=30,
             what="the task running on its node")
    standin.world.preempt(pool_id("default", "spot"), batch_node_of(standin, "spot", running["nodes"][0]))
    done = wait_for(lambda: finished(server, job_id), timeout=90, what="second attempt")
    assert done["state"] == "Completed" and done["attempts"] == 2, done
    assert "attempt 2" in http.get(f"{server.api()}/jobs/{job_id}/logs").json()["logs"]

    standin.world.core_quota["dedicated"] = 0  # the Batch account has no dedicated cores left
    create_cluster(server, "capped", max_nodes=1)
    submit(server, "capped", ["true"])
    errors = wait_for(lambda: [e for e in cluster(server, "capped")["errors"] if e["code"] == "QuotaExceeded"],
                      timeout=60, what="the resize error on the cluster")
    assert "AccountCoreQuotaReached" in errors[0]["message"]
    assert os.environ.get("COMPUTEPLANE_PROVIDER") is None  # the test process itself stayed local
