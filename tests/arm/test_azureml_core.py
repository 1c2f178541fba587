"""The seed's v1 code blocks, unchanged, with their real ``from azureml.core ...`` imports, run by azureml-core 1.61
against ComputePlane. Only the construction of ``ws`` and the environment (``harness.client_environment``) differ.

The blocks are those ``tests/cli/test_seed_acceptance.py`` runs against the hand-written imitation, with the seed's
own import lines put back. One client process runs them all in order (azureml-core takes seconds to import), then
the calls the seed names around them, and prints what it saw as JSON.
"""

from __future__ import annotations

import json
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
from tests.cli import test_seed_acceptance as seed

SEED_IMPORTS = """\
from azureml.core.compute import ComputeTarget, AmlCompute
from azureml.core.compute_target import ComputeTargetException
"""


def as_in_the_seed(block: str) -> str:
    return block.replace(seed.SEED_IMPORTS, SEED_IMPORTS) if block.startswith(seed.SEED_IMPORTS) else block


V1_SESSION = """
import json, sys, time
import requests
from azureml.core import Workspace
from azureml.core.authentication import MsiAuthentication
from azureml.core.compute import ComputeTarget, AmlCompute
from azureml.core.compute_target import ComputeTargetException

blocks, subscription, resource_group, api, api_key = json.load(open(sys.argv[1])), *sys.argv[2:6]
found = {}

def run(block, ws):
    namespace = {"ws": ws}
    exec(compile(block, "<seed block>", "exec"), namespace)
    return namespace

ws = Workspace(subscription, resource_group, "seed-v1", auth=MsiAuthentication())
first = run(blocks["create_or_get"], ws)
found["second_run_found_existing"] = "cpu_cluster" in run(blocks["create_or_get"], ws)
cpu_cluster = first["cpu_cluster"]
status = cpu_cluster.get_status()
found["status"] = [status.provisioning_state, status.vm_size, status.vm_priority,
                   status.scale_settings.minimum_node_count, status.scale_settings.maximum_node_count,
                   status.scale_settings.idle_seconds_before_scaledown, status.current_node_count]

low = run(blocks["low_priority"], ws)["compute_config"]
low_cluster = ComputeTarget.create(ws, "lowpri", low)
low_cluster.wait_for_completion()
found["low_priority"] = [low_cluster.provisioning_state, low_cluster.vm_priority]

system = run(blocks["system_assigned"], ws)["cpu_cluster"]
system.wait_for_completion()
found["system_assigned"] = [system.identity_type, system.identity_id]

# The seed creates the user-assigned cluster "in another workspace" (its name is taken here).
other = Workspace(subscription, resource_group, "seed-v1-other", auth=MsiAuthentication())
user = run(blocks["user_assigned"], other)["cpu_cluster"]
user.wait_for_completion()
found["user_assigned"] = [user.identity_type, [i.lower() for i in user.identity_id or []]]

run(blocks["add_system_assigned"].replace("cpu_cluster.", "ComputeTarget(workspace=ws, name='cpucluster')."), ws)
found["after_add_identity"] = ComputeTarget(workspace=ws, name="cpucluster").identity_type
cpu_cluster = ComputeTarget(workspace=ws, name="cpucluster")
cpu_cluster.remove_identity()
found["after_remove_identity"] = ComputeTarget(workspace=ws, name="cpucluster").identity_type

cpu_cluster.update(min_nodes=0, max_nodes=2, idle_seconds_before_scaledown=300)
scale = cpu_cluster.get_status().scale_settings
found["updated"] = [scale.minimum_node_count, scale.maximum_node_count, scale.idle_seconds_before_scaledown]
found["vm_sizes"] = sorted(s["name"] for s in AmlCompute.supported_vmsizes(ws))[:2]

# One job, seen both ways: submitted through ComputePlane's own API, watched through the SDK's get_status().
before = cpu_cluster.get_status()
seen = [[before.current_node_count, before.node_state_counts.running_node_count]]
job = requests.post(f"{api}/api/workspaces/seed-v1/clusters/cpucluster/jobs", headers={"x-functions-key": api_key},
                    json={"command": ["python3", "-c", "import time; time.sleep(2)"]}, timeout=30)
job.raise_for_status()
deadline, nodes_while_running = time.monotonic() + 90, None
while time.monotonic() < deadline:  # until the job has run on a node and the node is idle again
    s = cpu_cluster.get_status()
    seen.append([s.current_node_count, s.node_state_counts.running_node_count])
    if s.node_state_counts.running_node_count >= 1 and nodes_while_running is None:
        nodes_while_running = [[n["nodeId"] is not None, n["nodeState"]] for n in cpu_cluster.list_nodes()]
    if nodes_while_running and s.node_state_counts.idle_node_count >= 1:
        break
    time.sleep(0.3)
found["node_counts_seen"] = seen
found["nodes"] = nodes_while_running

try:
    ComputeTarget.create(ws, "badsize", AmlCompute.provisioning_configuration(vm_size="NOT_A_SIZE", max_nodes=1))
except ComputeTargetException as error:
    found["bad_input"] = [type(error).__name__, str(error)]

for cluster in (cpu_cluster, low_cluster, system):
    cluster.delete()
user.delete()
deadline = time.monotonic() + 60
while time.monotonic() < deadline and ComputeTarget.list(ws):
    time.sleep(0.5)
found["left_after_delete"] = sorted(c.name for c in ComputeTarget.list(ws))
print(json.dumps(found, default=str))
"""


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    with running_tls_server(tmp_path_factory.mktemp("v1") / "data") as server:
        yield server


def test_the_seed_blocks_run_unchanged_on_azureml_core(tls_server: TlsServer, tmp_path: Path) -> None:
    python = client_program("AZUREML_CORE_PYTHON", "pip install azureml-core==1.61.0")
    blocks = {"create_or_get": as_in_the_seed(seed.SEED_CREATE_OR_GET), "low_priority": seed.SEED_LOW_PRIORITY,
              "system_assigned": seed.SEED_SYSTEM_ASSIGNED, "user_assigned": seed.filled_in(seed.SEED_USER_ASSIGNED),
              "add_system_assigned": seed.SEED_ADD_SYSTEM_ASSIGNED}
    blocks = {name: block if name == "create_or_get" else SEED_IMPORTS + block for name, block in blocks.items()}
    (tmp_path / "blocks.json").write_text(json.dumps(blocks))
    (tmp_path / "session.py").write_text(V1_SESSION)
    done = run_client([str(python), "session.py", "blocks.json", SUBSCRIPTION, RESOURCE_GROUP, tls_server.url,
                       "test-key-for-the-e2e-suite"], tls_server.client_environment(tmp_path / "home"), tmp_path)
    assert done.returncode == 0, done.stderr[-6000:]
    printed, found = done.stdout, last_json_line(done.stdout)

    assert "Succeeded" in printed.splitlines()  # wait_for_completion(show_output=True) ends its progress so
    assert "AmlCompute wait for completion finished" in printed
    assert "Minimum number of nodes requested have been provisioned" in printed
    assert "Found existing cluster, use it." in printed and found["second_run_found_existing"]
    assert found["status"] == ["Succeeded", "Standard_D2_v2", "Dedicated", 0, 4, 1800, 0]
    assert found["low_priority"] == ["Succeeded", "LowPriority"]
    assert found["system_assigned"] == ["SystemAssigned", None]
    assert found["user_assigned"] == ["UserAssigned", [seed.USER_ASSIGNED_ID.lower()]]
    assert found["after_add_identity"] == "SystemAssigned"
    assert found["after_remove_identity"] == "None"  # azureml-core shows ARM's {"type": "None"} as it is
    assert found["updated"] == [0, 2, 300]
    assert found["vm_sizes"] and all(name.startswith("Standard_") for name in found["vm_sizes"])  # type: ignore
    counts = found["node_counts_seen"]
    assert counts[0] == [0, 0] and [1, 1] in counts and counts[-1] == [1, 0], counts  # type: ignore[index]
    assert [True, "running"] in found["nodes"]  # type: ignore[operator]
    kind, message = found["bad_input"]  # type: ignore[misc]
    # azureml-core shows the response body as bytes: ComputePlane's code and message, quotes escaped
    assert kind == "ComputeTargetException" and "Response Code: 400" in message
    assert "InvalidField" in message and "vm_size: unknown VM size" in message and "NOT_A_SIZE" in message
    assert found["left_after_delete"] == []
