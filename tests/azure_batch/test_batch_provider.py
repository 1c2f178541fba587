"""The Azure Batch provider's own promises, through the real SDKs against the stand-in: the pool a cluster gets,
the node map surviving a restart, retries that honour Retry-After, a busy pool, quota refusals, locks, the
per-cluster identity of a SystemAssigned cluster, the account's quotas, and whose token reaches Azure."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import jwt
import pytest
from azure.core.exceptions import HttpResponseError

from shared.adapters.azure_batch.calls import MAX_ATTEMPTS
from shared.adapters.azure_batch.clients import AzureClients
from shared.adapters.azure_batch.pools import NodeMap, pool_id
from shared.adapters.azure_batch.provider import AzureBatchNodeProvider
from shared.adapters.clock import SystemClock
from shared.domain.cluster import Cluster, ClusterSpec, Node, NodeState, ProvisioningState
from shared.domain.cluster_changes import new_cluster
from shared.domain.identity import ClusterIdentity, new_system_assigned, user_assigned_from_arm_id
from shared.domain.observation import LockLevel, NodeStatus, Observation
from shared.domain.quota import QuotaLimits
from shared.ports import RunRequest
from tests.azure_batch.fixtures import batch_settings
from tests.azure_batch.serving import SUBSCRIPTION, StandIn, TokenEndpoint
from tests.azure_batch.standin_state import Fault
from tests.unit.builders import T0

DATA_READER = user_assigned_from_arm_id(f"/subscriptions/{SUBSCRIPTION}/resourcegroups/rg-ml/providers/"
                                        "Microsoft.ManagedIdentity/userAssignedIdentities/data-reader")


def cluster_of(name: str, **spec: object) -> Cluster:
    cluster = new_cluster("ws", name, ClusterSpec(vm_size="STANDARD_D2_V2", max_nodes=4, **spec),  # type: ignore[arg-type]
                          uuid.uuid4().hex[:12], T0)
    cluster.provisioning_state = ProvisioningState.SUCCEEDED
    return cluster


def ask_for_node(provider: AzureBatchNodeProvider, cluster: Cluster, priority: str | None = None) -> str:
    node = Node(node_id=cluster.new_node_id(), state=NodeState.PREPARING, requested_at=T0)
    cluster.nodes.append(node)
    provider.provision(cluster.workspace, cluster.name, node.node_id, priority)
    return node.node_id


def wait_for(provider: AzureBatchNodeProvider, cluster: Cluster, condition: Callable[[Observation], bool],
             timeout: float = 60) -> Observation:
    deadline = time.monotonic() + timeout
    while True:
        seen = provider.observe(cluster)
        if condition(seen):
            return seen
        assert time.monotonic() < deadline, seen
        time.sleep(0.2)


def stored_pool(standin: StandIn, cluster: Cluster) -> dict[str, object]:
    with standin.world.lock:
        return standin.world.pools[pool_id(cluster.workspace, cluster.name)].body


def test_the_pool_carries_the_clusters_spec_identities_subnet_and_tags(batch_provider: AzureBatchNodeProvider,
                                                                       standin: StandIn) -> None:
    cluster = cluster_of("spec", vm_priority="lowpriority", tags={"team": "ml"}, vnet_resourcegroup_name="rg-net",
                         vnet_name="vnet", subnet_name="nodes", inter_node_communication="Disabled")
    cluster.identity = ClusterIdentity(type="UserAssigned", identities=(DATA_READER,))
    batch_provider.observe(cluster)
    ask_for_node(batch_provider, cluster)
    body = stored_pool(standin, cluster)
    properties = body["properties"]
    assert properties["vmSize"] == "STANDARD_D2_V2"
    assert properties["interNodeCommunication"] == "Disabled"
    machine = properties["deploymentConfiguration"]["virtualMachineConfiguration"]
    assert machine["imageReference"]["publisher"] == "canonical" and "ubuntu" in machine["imageReference"]["offer"]
    assert machine["nodeAgentSkuId"] == "batch.node.ubuntu 24.04"
    assert properties["networkConfiguration"]["subnetId"].endswith(
        "/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/nodes")
    assert properties["scaleSettings"]["fixedScale"]["targetLowPriorityNodes"] == 1
    assert properties["scaleSettings"]["fixedScale"]["targetDedicatedNodes"] == 0
    assert body["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {DATA_READER.resource_id: {}}}
    assert body["tags"]["team"] == "ml" and body["tags"]["computeplane-cluster"] == "spec"


def test_a_node_asked_for_at_another_priority_counts_there(batch_provider: AzureBatchNodeProvider,
                                                           standin: StandIn) -> None:
    cluster = cluster_of("mixed", vm_priority="lowpriority")
    batch_provider.observe(cluster)
    ask_for_node(batch_provider, cluster)
    ask_for_node(batch_provider, cluster, priority="dedicated")  # the fallback of issue #15
    fixed = stored_pool(standin, cluster)["properties"]["scaleSettings"]["fixedScale"]
    assert (fixed["targetDedicatedNodes"], fixed["targetLowPriorityNodes"]) == (1, 1)
    seen = wait_for(batch_provider, cluster, lambda o: all(o.node(n.node_id).status is NodeStatus.READY
                                                           for n in cluster.nodes))
    assert len(seen.nodes) == 2


def test_the_node_map_survives_a_restart_of_the_control_plane(batch_provider: AzureBatchNodeProvider,
                                                              standin: StandIn,
                                                              token_endpoint: TokenEndpoint) -> None:
    cluster = cluster_of("restart")
    batch_provider.observe(cluster)
    node_id = ask_for_node(batch_provider, cluster)
    before = wait_for(batch_provider, cluster, lambda o: o.node(node_id).status is NodeStatus.READY)
    settings = batch_settings(standin)
    restarted = AzureBatchNodeProvider(settings, AzureClients.build(settings, token_endpoint.identity.client_id),
                                       SystemClock(), "eastus")
    after = restarted.observe(cluster)
    assert after.node(node_id) == before.node(node_id)
    restarted.release(node_id)  # no cache: it finds the node's pool from the pools' metadata
    wait_for(restarted, cluster, lambda o: o.node(node_id).status is NodeStatus.GONE)
    deadline = time.monotonic() + 30
    while standin.pool_node_ids(pool_id("ws", "restart")):  # that very Batch node left the pool
        assert time.monotonic() < deadline
        time.sleep(0.1)
    restarted.close()


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", r"/pools/cp-ws-throttled$", 429, "TooManyRequests"),  # management plane
    ("GET", r"^/pools/cp-ws-throttled/nodes$", 503, "ServerBusy"),  # data plane
])
def test_throttling_and_server_errors_are_retried_after_the_time_azure_asks_for(
        batch_provider: AzureBatchNodeProvider, standin: StandIn, method: str, path: str, status: int,
        code: str) -> None:
    cluster = cluster_of("throttled")
    batch_provider.observe(cluster)
    fault = Fault(method, path, status, code, "Try again later", times=2, retry_after=1)
    standin.world.inject(fault)
    started = time.monotonic()
    batch_provider.observe(cluster)
    assert fault.times == 0
    assert time.monotonic() - started >= 2.0  # two answers of Retry-After: 1


def test_a_pool_being_resized_is_retried_and_the_node_then_removed(batch_provider: AzureBatchNodeProvider,
                                                                   standin: StandIn) -> None:
    cluster = cluster_of("busy")
    batch_provider.observe(cluster)
    node_id = ask_for_node(batch_provider, cluster)
    wait_for(batch_provider, cluster, lambda o: o.node(node_id).status is NodeStatus.READY)
    fault = Fault("POST", r"/removenodes$", 409, "PoolBeingResized", "The specified pool is being resized.",
                  times=2)
    standin.world.inject(fault)
    batch_provider.release(node_id)
    assert fault.times == 0
    wait_for(batch_provider, cluster, lambda o: o.node(node_id).status is NodeStatus.GONE)


def test_a_quota_refusal_of_a_resize_is_observed_as_a_quota_error(batch_provider: AzureBatchNodeProvider,
                                                                  standin: StandIn) -> None:
    standin.world.core_quota["lowpriority"] = 1
    cluster = cluster_of("capped", vm_priority="lowpriority")
    batch_provider.observe(cluster)
    ask_for_node(batch_provider, cluster)
    ask_for_node(batch_provider, cluster)
    seen = wait_for(batch_provider, cluster, lambda o: o.resize_error is not None)
    assert seen.resize_error is not None and seen.resize_error.is_quota
    assert seen.resize_error.code == "AccountLowPriorityCoreQuotaReached"


def test_a_lock_on_the_node_resource_group_is_observed(batch_provider: AzureBatchNodeProvider,
                                                       standin: StandIn) -> None:
    cluster = cluster_of("locked")
    assert batch_provider.observe(cluster).lock is None
    standin.world.locks["no-delete"] = "CanNotDelete"
    standin.world.locks["frozen"] = "ReadOnly"
    standin.world.locks["undecided"] = "NotSpecified"  # ARM has it; it blocks nothing
    lock = batch_provider.observe(cluster).lock
    assert lock is not None and (lock.name, lock.level) == ("frozen", LockLevel.READ_ONLY)


def test_a_system_assigned_cluster_gets_its_own_identity_which_its_jobs_see_and_which_goes_with_it(
        batch_provider: AzureBatchNodeProvider, standin: StandIn) -> None:
    cluster = cluster_of("ident")
    cluster.identity = ClusterIdentity(type="SystemAssigned",
                                       identities=(new_system_assigned("ws", "ident", uuid.uuid4),))
    batch_provider.observe(cluster)
    [(name, identity)] = standin.world.identities.items()
    assert stored_pool(standin, cluster)["identity"]["userAssignedIdentities"] == {identity["id"]: {}}
    node_id = ask_for_node(batch_provider, cluster)
    wait_for(batch_provider, cluster, lambda o: o.node(node_id).status is NodeStatus.READY)
    batch_provider.start_run([node_id], RunRequest("ws", "ident", "job-id", 1, ("true",),
                                                   {"COMPUTEPLANE_ATTEMPT": "1"}))
    with standin.world.lock:
        [task] = standin.world.tasks.values()
        environment = {s["name"]: s["value"] for s in task.body["environmentSettings"]}
    assert environment["DEFAULT_IDENTITY_CLIENT_ID"] == identity["properties"]["clientId"]
    assert environment["COMPUTEPLANE_ATTEMPT"] == "1"
    batch_provider.release(node_id)
    cluster.provisioning_state = ProvisioningState.DELETING
    wait_for(batch_provider, cluster, lambda o: pool_id("ws", "ident") in standin.world.deleted_pools)
    assert name not in standin.world.identities


def test_identities_added_to_or_removed_from_a_live_cluster_reach_its_pool(batch_provider: AzureBatchNodeProvider,
                                                                           standin: StandIn) -> None:
    cluster = cluster_of("reident")
    batch_provider.observe(cluster)
    assert "identity" not in stored_pool(standin, cluster)
    cluster.identity = ClusterIdentity(type="UserAssigned", identities=(DATA_READER,))
    batch_provider.observe(cluster)
    assert stored_pool(standin, cluster)["identity"]["userAssignedIdentities"] == {DATA_READER.resource_id: {}}
    node_id = ask_for_node(batch_provider, cluster)
    wait_for(batch_provider, cluster, lambda o: o.node(node_id).status is NodeStatus.READY)
    batch_provider.start_run([node_id], RunRequest("ws", "reident", "job-ua", 1, ("true",), {}))
    with standin.world.lock:
        [task] = standin.world.tasks.values()
        environment = {s["name"]: s["value"] for s in task.body["environmentSettings"]}
    assert environment["DEFAULT_IDENTITY_CLIENT_ID"] == DATA_READER.client_id
    cluster.identity = ClusterIdentity(type="SystemAssigned",
                                       identities=(new_system_assigned("ws", "reident", uuid.uuid4),))
    batch_provider.observe(cluster)
    [own] = standin.world.identities.values()
    assert stored_pool(standin, cluster)["identity"]["userAssignedIdentities"] == {own["id"]: {}}
    cluster.identity = ClusterIdentity()
    batch_provider.observe(cluster)
    assert stored_pool(standin, cluster)["identity"] == {"type": "None"}
    assert standin.world.identities == {}  # the system-assigned identity went with its removal


def test_the_batch_accounts_core_quotas_become_the_quota_limits(batch_provider: AzureBatchNodeProvider) -> None:
    limits = batch_provider.account_quota_limits(QuotaLimits())
    assert limits.low_priority_vcpus == 200
    assert limits.total_regional_dedicated_vcpus == 500
    assert limits.dedicated_family_limit("standardDv2Family") == 100
    assert limits.dedicated_family_limit("standardNCSv3Family") == 24
    assert limits.dedicated_family_limit("standardNCASv3_T4Family") == 8  # spelled "Standard NCASv3_T4 Family"


def test_every_call_carries_the_control_planes_managed_identity_token(batch_provider: AzureBatchNodeProvider,
                                                                      standin: StandIn,
                                                                      token_endpoint: TokenEndpoint) -> None:
    cluster = cluster_of("tokens")
    batch_provider.observe(cluster)
    key = token_endpoint.signer.public_key()
    audiences = set()
    for path, token in standin.world.bearer_tokens:
        audience = "https://management.azure.com" if path.startswith("/subscriptions/") \
            else "https://batch.core.windows.net/"
        claims = jwt.decode(token, key, algorithms=["RS256"], audience=audience)  # signed by the local endpoint
        assert claims["appid"] == token_endpoint.identity.client_id
        audiences.add(audience)
    assert audiences == {"https://management.azure.com", "https://batch.core.windows.net/"}


@pytest.mark.parametrize("name", ["a" * 70])
def test_long_names_still_make_valid_and_distinct_batch_ids(name: str) -> None:
    first, second = pool_id("ws", name), pool_id("ws", name + "b")
    assert len(first) <= 64 and first != second
    assert NodeMap.from_metadata(NodeMap(entries={"n-1": ("dedicated", None)}).to_metadata()).entries == {
        "n-1": ("dedicated", None)}


def test_retries_are_bounded_and_the_error_then_reaches_the_caller(batch_provider: AzureBatchNodeProvider,
                                                                   standin: StandIn) -> None:
    cluster = cluster_of("flooded")
    batch_provider.observe(cluster)
    fault = Fault("GET", r"/pools/cp-ws-flooded$", 503, "ServerBusy", "Try again later", times=100, retry_after=0)
    standin.world.inject(fault)
    with pytest.raises(HttpResponseError) as raised:
        batch_provider.observe(cluster)  # the handler's message is redelivered later
    assert raised.value.status_code == 503
    assert fault.times == 100 - MAX_ATTEMPTS
