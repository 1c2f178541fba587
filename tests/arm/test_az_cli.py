"""``az`` (pip azure-cli), unmodified: registers ComputePlane as a cloud, logs in with ``--identity`` against the
local token route, and manages a compute with ``az rest``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.arm.harness import RESOURCE_GROUP, SUBSCRIPTION, TlsServer, client_program, run_client, running_tls_server

COMPUTE = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
           "Microsoft.MachineLearningServices/workspaces/az-team/computes/az-cluster")
API = "api-version=2024-04-01"
CREATE = {"location": "eastus", "properties": {"computeType": "AmlCompute", "properties": {
    "vmSize": "STANDARD_D2_V2", "vmPriority": "Dedicated",
    "scaleSettings": {"minNodeCount": 0, "maxNodeCount": 2, "nodeIdleTimeBeforeScaleDown": "PT5M"}}}}


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    with running_tls_server(tmp_path_factory.mktemp("az") / "data") as server:
        yield server


def test_az_registers_the_cloud_logs_in_with_identity_and_manages_a_compute(tls_server: TlsServer,
                                                                             tmp_path: Path) -> None:
    az = str(client_program("AZURE_CLI_AZ", "pip install azure-cli"))
    env = tls_server.client_environment(tmp_path / "home")
    del env["ARM_CLOUD_METADATA_URL"]  # az would know the cloud from it already: here `az cloud register` does

    def run(*args: str) -> str:
        done = run_client([az, *args, "--only-show-errors"], env, tmp_path)
        assert done.returncode == 0, f"az {' '.join(args)}:\n{done.stderr[-3000:]}"
        return done.stdout

    run("cloud", "register", "--name", "ComputePlane", "--endpoint-resource-manager", f"{tls_server.url}/")
    run("cloud", "set", "--name", "ComputePlane")
    accounts = json.loads(run("login", "--identity"))
    assert [a["id"] for a in accounts] == [SUBSCRIPTION]

    created = json.loads(run("rest", "--method", "put", "--url", f"{COMPUTE}?{API}", "--body", json.dumps(CREATE)))
    assert created["properties"]["properties"]["scaleSettings"]["nodeIdleTimeBeforeScaleDown"] == "PT5M"
    shown = json.loads(run("rest", "--method", "get", "--url", f"{COMPUTE}?{API}"))
    assert shown["name"] == "az-cluster" and shown["properties"]["computeType"] == "AmlCompute"
    assert json.loads(run("rest", "--method", "post", "--url", f"{COMPUTE}/listNodes?{API}")) == {"nodes": []}
    run("rest", "--method", "delete", "--url", f"{COMPUTE}?{API}")

    gone = run_client([az, "rest", "--method", "get", "--url", f"{COMPUTE}?{API}"], env, tmp_path)
    assert gone.returncode != 0 and "ComputeTargetNotFound" in gone.stderr
