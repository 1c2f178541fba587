"""The pure half of the Batch provider: Batch node states as reconcile reads them, the node map in pool metadata,
the pool a cluster gets, and Batch ids."""

from __future__ import annotations

import pytest

from shared.adapters.azure_batch.pools import NodeMap, node_agent_for, observed_node, pool_body, pool_id, task_id
from shared.domain.observation import NodeStatus
from tests.unit.builders import make_cluster


@pytest.mark.parametrize(("state", "status"), [
    ("creating", NodeStatus.BOOTING), ("starting", NodeStatus.BOOTING), ("waitingforstarttask", NodeStatus.BOOTING),
    ("reimaging", NodeStatus.BOOTING), ("idle", NodeStatus.READY), ("running", NodeStatus.READY),
    ("preempted", NodeStatus.PREEMPTED), ("unusable", NodeStatus.FAILED), ("starttaskfailed", NodeStatus.FAILED),
    ("leavingpool", NodeStatus.FAILED),  # Batch took it without being asked: the node is lost to its cluster
])
def test_batch_node_states_map_to_what_reconcile_understands(state: str, status: NodeStatus) -> None:
    seen = observed_node({"id": "tvm-1", "state": state, "ipAddress": "10.0.0.4"})
    assert seen.status is status
    assert (seen.private_ip == "10.0.0.4") == (status is NodeStatus.READY)


def test_a_node_without_a_batch_node_yet_is_booting() -> None:
    assert observed_node(None).status is NodeStatus.BOOTING


def test_a_dedicated_node_is_never_reported_preempted() -> None:
    assert observed_node({"id": "tvm-s", "state": "preempted", "isDedicated": False}).status is NodeStatus.PREEMPTED
    seen = observed_node({"id": "tvm-d", "state": "preempted", "isDedicated": True})
    assert seen.status is NodeStatus.FAILED and "dedicated" in (seen.reason or "")


def test_new_batch_nodes_go_to_waiting_nodes_of_their_priority_and_the_map_round_trips() -> None:
    node_map = NodeMap(entries={"c-0001": ("dedicated", None), "c-0002": ("lowpriority", None),
                                "c-0003": ("dedicated", "tvm-old")},
                       other=[{"name": "cp-cluster", "value": "c"}])
    assert node_map.targets() == {"targetDedicatedNodes": 2, "targetLowPriorityNodes": 1}
    changed = node_map.assign([{"id": "tvm-old", "isDedicated": True, "state": "idle"},
                               {"id": "tvm-spot", "isDedicated": False, "state": "starting"},
                               {"id": "tvm-gone", "isDedicated": True, "state": "leavingpool"},
                               {"id": "tvm-new", "isDedicated": True, "state": "creating"}])
    assert changed
    assert node_map.entries == {"c-0001": ("dedicated", "tvm-new"), "c-0002": ("lowpriority", "tvm-spot"),
                                "c-0003": ("dedicated", "tvm-old")}
    assert not node_map.assign([{"id": "tvm-new", "isDedicated": True, "state": "idle"}])  # nothing new
    again = NodeMap.from_metadata(node_map.to_metadata())
    assert (again.entries, again.value("cp-cluster")) == (node_map.entries, "c")
    assert again.node_of("tvm-spot") == "c-0002"


def test_the_pool_body_asks_for_the_nodes_of_the_map_at_their_priorities() -> None:
    cluster = make_cluster()
    body = pool_body(cluster, image="canonical:0001-com-ubuntu-server-jammy:22_04-lts:latest",
                     vm_size="STANDARD_D2_V2", identity_ids=[], subnet_id=None,
                     node_map=NodeMap(entries={"n": ("lowpriority", None)}))
    fixed = body["properties"]["scaleSettings"]["fixedScale"]
    assert (fixed["targetDedicatedNodes"], fixed["targetLowPriorityNodes"]) == (0, 1)
    assert "identity" not in body and "networkConfiguration" not in body["properties"]
    assert body["properties"]["deploymentConfiguration"]["virtualMachineConfiguration"]["nodeAgentSkuId"] == \
        "batch.node.ubuntu 22.04"
    assert node_agent_for("canonical:ubuntu-24_04-lts:server:latest")[1] == "batch.node.ubuntu 24.04"


def test_batch_ids_keep_to_the_batch_rules() -> None:
    assert pool_id("default", "cpucluster") == "cp-default-cpucluster"
    odd = pool_id("team a", "x")
    assert odd.startswith("cp-team-a-x-") and odd != pool_id("team-a", "x")  # changed names stay distinct
    assert task_id("0f3a", 2) == "0f3a-a2"
