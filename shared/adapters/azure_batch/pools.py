"""Pure pieces of the Batch provider: names, the pool a cluster gets, the node map kept in pool metadata, and what
a Batch node's state means to ComputePlane. No I/O here.

The node map says which Batch node stands for which ComputePlane node, and at which priority each node was asked
for. It lives in the pool's own metadata (one entry per ComputePlane node), written with the pool's ETag, so it
survives restarts of the control plane and is shared by every Functions instance without a store of its own.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.domain.cluster import Cluster
from shared.domain.observation import NodeStatus, ObservedNode

DEDICATED, LOW_PRIORITY = "dedicated", "lowpriority"
NODE_ENTRY_PREFIX = "cp-node:"
WORKSPACE_KEY, CLUSTER_KEY, DEFAULT_IDENTITY_KEY = "cp-workspace", "cp-cluster", "cp-default-identity-client-id"
_BATCH_ID_LIMIT = 64

# Batch node states -> what reconcile understands (AmlCompute's preparing/idle/running/leaving/preempted/unusable).
_BOOTING_STATES = frozenset({"creating", "starting", "waitingforstarttask", "reimaging", "rebooting", "upgradingos",
                             "deallocating", "deallocated"})
_READY_STATES = frozenset({"idle", "running"})
_UNUSABLE_STATES = frozenset({"unusable", "starttaskfailed", "unknown", "offline"})
QUOTA_ERROR_CODES = frozenset({"AccountCoreQuotaReached", "AccountLowPriorityCoreQuotaReached",
                               "AccountVMFamilyCoreQuotaReached", "AccountSpotCoreQuotaReached"})


def batch_id(*parts: str) -> str:
    """A Batch id (letters, digits, '-' and '_', at most 64 characters) that names its parts, unique by a hash
    suffix when it has to be shortened or changed."""
    raw = "-".join(parts)
    clean = re.sub(r"[^A-Za-z0-9_-]", "-", raw)
    if clean == raw and len(clean) <= _BATCH_ID_LIMIT:
        return clean
    digest = hashlib.sha256(raw.encode()).hexdigest()[:10]
    return f"{clean[:_BATCH_ID_LIMIT - 11]}-{digest}"


def pool_id(workspace: str, cluster: str) -> str:
    """The cluster's pool, and also its Batch job (one job per cluster, its tasks are the attempts)."""
    return batch_id("cp", workspace, cluster)


def task_id(job_id: str, attempt: int) -> str:
    return batch_id(job_id, f"a{attempt}")


def node_agent_for(image: str) -> tuple[dict[str, str], str]:
    """The image reference and Batch node agent of a ``publisher:offer:sku:version`` Ubuntu image."""
    publisher, offer, sku, version = image.split(":")
    release = re.search(r"(\d\d)[_.](\d\d)", f"{offer} {sku}")
    named = {"jammy": "22.04", "focal": "20.04", "noble": "24.04"}
    ubuntu = f"{release.group(1)}.{release.group(2)}" if release else next(
        (v for k, v in named.items() if k in offer or k in sku), "24.04")
    return ({"publisher": publisher, "offer": offer, "sku": sku, "version": version},
            f"batch.node.ubuntu {ubuntu}")


def priority_of(cluster: Cluster, asked: str | None) -> str:
    wanted = (asked or cluster.spec.vm_priority).lower()
    if wanted not in (DEDICATED, LOW_PRIORITY):
        raise ValueError(f"priority: must be dedicated or lowpriority, got {asked!r}")
    return wanted


@dataclass
class NodeMap:
    """ComputePlane node id -> (priority, Batch node id or None while no Batch node is assigned yet)."""

    entries: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    other: list[dict[str, str]] = field(default_factory=list)  # metadata that is not a node entry, kept as is

    @classmethod
    def from_metadata(cls, metadata: Iterable[Mapping[str, str]] | None) -> NodeMap:
        node_map = cls()
        for item in metadata or ():
            name, value = item["name"], item.get("value", "")
            if name.startswith(NODE_ENTRY_PREFIX):
                priority, _, batch_node = value.partition(":")
                node_map.entries[name[len(NODE_ENTRY_PREFIX):]] = (priority, batch_node or None)
            else:
                node_map.other.append({"name": name, "value": value})
        return node_map

    def to_metadata(self) -> list[dict[str, str]]:
        return [*self.other, *({"name": NODE_ENTRY_PREFIX + node_id, "value": f"{priority}:{batch_node or ''}"}
                               for node_id, (priority, batch_node) in sorted(self.entries.items()))]

    def value(self, key: str) -> str | None:
        return next((item["value"] for item in self.other if item["name"] == key), None)

    def targets(self) -> dict[str, int]:
        """What the pool's fixed scale must be: one node per entry, at the priority it was asked for."""
        priorities = [priority for priority, _ in self.entries.values()]
        return {"targetDedicatedNodes": priorities.count(DEDICATED),
                "targetLowPriorityNodes": priorities.count(LOW_PRIORITY)}

    def batch_node(self, node_id: str) -> str | None:
        entry = self.entries.get(node_id)
        return entry[1] if entry else None

    def node_of(self, batch_node: str) -> str | None:
        return next((n for n, (_, b) in self.entries.items() if b == batch_node), None)

    def assign(self, batch_nodes: Sequence[Mapping[str, Any]]) -> bool:
        """Give each Batch node nobody has yet to a waiting ComputePlane node of the same priority (oldest id
        first). Returns whether anything changed (the map must then be saved)."""
        taken = {b for _, b in self.entries.values() if b}
        changed = False
        for node in sorted(batch_nodes, key=lambda n: str(n.get("allocationTime", ""))):
            if node["id"] in taken or node.get("state") in ("leavingpool", "preempted"):
                continue
            priority = DEDICATED if node.get("isDedicated", True) else LOW_PRIORITY
            waiting = sorted(n for n, (p, b) in self.entries.items() if b is None and p == priority)
            if waiting:
                self.entries[waiting[0]] = (priority, node["id"])
                taken.add(node["id"])
                changed = True
        return changed


def observed_node(batch_node: Mapping[str, Any] | None) -> ObservedNode:
    """A mapped node's Batch state, as reconcile reads it (no Batch node assigned yet: still booting)."""
    if batch_node is None:
        return ObservedNode(NodeStatus.BOOTING)
    state = str(batch_node.get("state", "")).lower()
    if state in _READY_STATES:
        return ObservedNode(NodeStatus.READY, private_ip=batch_node.get("ipAddress"))
    if state in _BOOTING_STATES:
        return ObservedNode(NodeStatus.BOOTING)
    if state == "preempted" and batch_node.get("isDedicated"):  # never preempted: it failed, it is not spot capacity
        return ObservedNode(NodeStatus.FAILED, f"dedicated Batch node {batch_node['id']} was reported preempted")
    if state == "preempted":
        return ObservedNode(NodeStatus.PREEMPTED, "preempted by Azure (low-priority capacity was reclaimed)")
    if state == "leavingpool":
        return ObservedNode(NodeStatus.FAILED, f"Batch node {batch_node['id']} is leaving the pool")
    errors = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in batch_node.get("errors") or [])
    return ObservedNode(NodeStatus.FAILED, f"Batch node {batch_node['id']} is {state}" + (f" ({errors})"
                                                                                             if errors else ""))


def pool_body(cluster: Cluster, *, image: str, vm_size: str, identity_ids: Sequence[str], subnet_id: str | None,
              node_map: NodeMap) -> dict[str, Any]:
    """The management-plane body of the cluster's pool (PUT), fixed scale at the node map's targets."""
    image_reference, node_agent = node_agent_for(image)
    properties: dict[str, Any] = {
        "vmSize": vm_size,
        "deploymentConfiguration": {"virtualMachineConfiguration": {
            "imageReference": image_reference, "nodeAgentSkuId": node_agent}},
        "scaleSettings": {"fixedScale": {**node_map.targets(), "nodeDeallocationOption": "TaskCompletion"}},
        "interNodeCommunication": cluster.spec.inter_node_communication,
        "taskSlotsPerNode": 1,
        "metadata": node_map.to_metadata(),
    }
    if subnet_id:
        properties["networkConfiguration"] = {"subnetId": subnet_id}
        if not cluster.spec.enable_node_public_ip:
            properties["networkConfiguration"]["publicIPAddressConfiguration"] = {"provision": "NoPublicIPAddresses"}
    body: dict[str, Any] = {"properties": properties,
                            "tags": {**cluster.spec.tags, "computeplane-workspace": cluster.workspace,
                                     "computeplane-cluster": cluster.name,
                                     "computeplane-priority": cluster.spec.vm_priority}}
    if identity_ids:
        body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {i: {} for i in identity_ids}}
    return body


def subnet_id_of(cluster: Cluster, subscription_id: str) -> str | None:
    spec = cluster.spec
    if not (spec.vnet_resourcegroup_name and spec.vnet_name and spec.subnet_name):
        return None
    return (f"/subscriptions/{subscription_id}/resourceGroups/{spec.vnet_resourcegroup_name}/providers/"
            f"Microsoft.Network/virtualNetworks/{spec.vnet_name}/subnets/{spec.subnet_name}")
