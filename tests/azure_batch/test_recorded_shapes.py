"""The stand-in is held to the real service: for the requests of sessions recorded against Azure Batch (copied from
Azure/azure-sdk-for-python into tests/azure_batch/recordings/, sources named there), its answers have the same status
codes, the same keys and the same JSON types as the recorded answers.

Requests are sent as recorded, but for the task's command (the recording's ``cmd /c`` is Windows; the stand-in's
nodes are this machine) and the ids of the stand-in's own pool and job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.azure_batch.serving import ACCOUNT, NODE_RESOURCE_GROUP, SUBSCRIPTION, StandIn
from tests.azure_batch.tls import ServerCertificate

RECORDINGS = Path(__file__).parent / "recordings"
MGMT_API = "2022-01-01"
BATCH_API = "2023-05-01.17.0"
ACCOUNT_PATH = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{NODE_RESOURCE_GROUP}/providers/Microsoft.Batch/"
                f"batchAccounts/{ACCOUNT}")


def recorded(file: str) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in json.loads((RECORDINGS / file).read_text())["entries"]}


def shape(value: Any) -> Any:
    """Keys and JSON types, not values: what a client's deserializer depends on."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def assert_same_answer(entry: dict[str, Any], response: httpx.Response) -> None:
    assert response.status_code == entry["status"], (entry["name"], response.text)
    for header in entry["headers"]:
        assert header in response.headers, (entry["name"], header)
    if entry["response"] is None:
        assert not response.content or response.status_code == 200, entry["name"]
    else:
        assert shape(response.json()) == shape(entry["response"]), entry["name"]


@pytest.fixture
def http(standin: StandIn, certificate: ServerCertificate) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=standin.url, verify=str(certificate.ca_file), timeout=30,
                      headers={"Authorization": "Bearer recorded-shapes-test"}) as client:
        yield client


def test_pool_management_answers_have_the_recorded_shapes(http: httpx.Client) -> None:
    pools = recorded("mgmt_batch_pools.json")
    pool = f"{ACCOUNT_PATH}/pools/test_iaas_pool"
    created = http.put(pool, params={"api-version": MGMT_API}, json=pools["create_pool"]["request"])
    assert_same_answer(pools["create_pool"], created)
    assert_same_answer(pools["list_pools"], http.get(f"{ACCOUNT_PATH}/pools", params={"api-version": MGMT_API}))
    assert_same_answer(pools["get_pool"], http.get(pool, params={"api-version": MGMT_API}))
    deleted = http.delete(pool, params={"api-version": MGMT_API})
    assert_same_answer(pools["delete_pool"], deleted)
    result = http.get(httpx.URL(deleted.headers["Location"]).path, params={"api-version": MGMT_API})
    assert_same_answer(pools["delete_pool_result"], result)
    assert http.get(pool, params={"api-version": MGMT_API}).status_code == 404


def test_the_account_answer_has_the_recorded_shape(http: httpx.Client) -> None:
    account = recorded("mgmt_batch_account.json")["get_account"]
    assert_same_answer(account, http.get(ACCOUNT_PATH, params={"api-version": MGMT_API}))


def test_node_and_task_answers_have_the_recorded_shapes(http: httpx.Client, standin: StandIn) -> None:
    data = recorded("batch_nodes_and_tasks.json")
    body = {"properties": {"vmSize": "standard_d2_v2", "scaleSettings": {"fixedScale": {"targetDedicatedNodes": 2}},
                           "deploymentConfiguration": {"virtualMachineConfiguration": {
                               "imageReference": {"publisher": "Canonical", "offer": "UbuntuServer",
                                                  "sku": "18.04-LTS"},
                               "nodeAgentSkuId": "batch.node.ubuntu 18.04"}}}}
    assert http.put(f"{ACCOUNT_PATH}/pools/3d0a22a3", params={"api-version": MGMT_API}, json=body).status_code == 200
    nodes = poll(http, "/pools/3d0a22a3/nodes", lambda b: len(b["value"]) == 2 and all(
        n["state"] == "creating" for n in b["value"]))
    assert_same_answer(data["list_nodes_creating"], nodes)

    assert http.post("/jobs", params={"api-version": BATCH_API},
                     json={"id": "batch71071ccc", "poolInfo": {"poolId": "3d0a22a3"}}).status_code == 201
    task = dict(data["create_task"]["request"], commandLine="echo hello world")
    assert_same_answer(data["create_task"], http.post("/jobs/batch71071ccc/tasks", params={"api-version": BATCH_API},
                                                      json=task))
    assert_same_answer(data["get_task_active"], http.get("/jobs/batch71071ccc/tasks/test_task",
                                                         params={"api-version": BATCH_API}))
    idle = poll(http, "/pools/3d0a22a3/nodes", lambda b: {n["state"] for n in b["value"]} >= {"idle"})
    first_idle = next(n for n in idle.json()["value"] if n["state"] == "idle")
    recorded_idle = data["list_nodes_idle_and_starting"]["response"]["value"][0]
    assert shape(first_idle) == shape(recorded_idle)
    done = poll(http, "/jobs/batch71071ccc/tasks/test_task", lambda b: b["state"] == "completed")
    assert_same_answer(data["get_task_completed"], done)
    assert done.json()["executionInfo"]["exitCode"] == 0


def poll(http: httpx.Client, path: str, condition: Any, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(path, params={"api-version": BATCH_API})
        if response.status_code == 200 and condition(response.json()):
            return response
        assert time.monotonic() < deadline, response.text
        time.sleep(0.05)
