"""``AzureBatchNodeProvider``: cluster nodes are Azure Batch compute nodes, one pool per cluster.

- The pool is created, updated and deleted through the management plane (azure-mgmt-batch), so it carries the
  cluster's user-assigned identities; its fixed-scale targets are the node map's (``pools.NodeMap``): one target
  per ComputePlane node, at the priority it was asked for. Releasing a node removes that very Batch node
  (``removenodes``, after its task completes), never one Batch would choose.
- Runs are tasks in one Batch job per cluster (``runs.BatchRuns``).
- Every call goes through ``calls.call_azure`` (timeouts, retries honouring Retry-After) with the control plane's
  managed identity (``shared.adapters.credentials``), and is idempotent: a pool that exists, a node that is gone,
  a task that was created or has ended, all do nothing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.core.rest import HttpRequest

from shared.adapters.azure_batch.calls import call_azure, error_code, error_message
from shared.adapters.azure_batch.clients import AzureClients
from shared.adapters.azure_batch.cluster_identity import ClusterIdentities
from shared.adapters.azure_batch.node_code import CHECKPOINT_MOUNT, checkpoint_mount
from shared.adapters.azure_batch.pools import (
    CLUSTER_KEY,
    DEFAULT_IDENTITY_KEY,
    QUOTA_ERROR_CODES,
    WORKSPACE_KEY,
    NodeMap,
    observed_node,
    pool_body,
    pool_id,
    subnet_id_of,
)
from shared.adapters.azure_batch.runs import BatchRuns, NodeFiles
from shared.adapters.azure_batch.wakeups import BatchWakeUps, Publish
from shared.config import AzureBatchSettings, Settings
from shared.domain.cluster import Cluster, ProvisioningState
from shared.domain.observation import (
    LockLevel,
    NodeStatus,
    Observation,
    ObservedNode,
    ResizeError,
    ResourceLock,
)
from shared.domain.quota import QuotaLimits
from shared.ports import Clock, RunRequest

log = logging.getLogger(__name__)
BATCH_API_VERSION = "2025-06-01"  # the azure-batch SDK's own; used for the one raw request (removenodes)


class AzureBatchNodeProvider:
    def __init__(self, settings: AzureBatchSettings, clients: AzureClients, clock: Clock,
                 workspace_location: str, publish: Publish | None = None) -> None:
        self._settings, self._clients, self._clock = settings, clients, clock
        self._wake_ups = BatchWakeUps(publish, timedelta(seconds=settings.poll_seconds),
                                      timedelta(seconds=settings.expected_boot_seconds))
        self._identities = ClusterIdentities(clients.identities, settings.subscription_id, settings.resource_group,
                                             workspace_location)
        self._pool_of_node: dict[str, str] = {}  # a cache; the pools' metadata is the truth
        self._runs = BatchRuns(clients.batch)
        self._cache_lock = threading.Lock()

    def close(self) -> None:
        self._clients.close()

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock,
                      publish: Publish | None = None) -> AzureBatchNodeProvider:
        """``publish`` schedules the wake-ups Batch's missing events call for (``wakeups``)."""
        assert settings.azure_batch is not None, "COMPUTEPLANE_PROVIDER=azurebatch needs the Batch settings"
        return cls(settings.azure_batch, AzureClients.build(settings.azure_batch, settings.azure_client_id), clock,
                   settings.workspace_location, publish)

    # --- the account ---------------------------------------------------------------------------------------------
    def account_quota_limits(self, limits: QuotaLimits) -> QuotaLimits:
        """The Batch account's core quotas in place of the settings' (per VM family, total, low priority). When
        the account cannot be read at start, the settings' limits stay, and the reason is logged."""
        s = self._settings
        try:
            account = call_azure(lambda: self._clients.pools.batch_account.get(s.resource_group, s.account_name))
        except HttpResponseError as error:
            log.warning("Batch account quotas not read (%s); using the quota settings", error_message(error))
            return limits
        properties = dict(account).get("properties", {})
        # Batch spells some families "Standard NCASv3_T4 Family": without spaces they are the catalogue's names.
        families = {f["name"].replace(" ", ""): int(f["coreQuota"])
                    for f in properties.get("dedicatedCoreQuotaPerVMFamily") or []}
        return replace(
            limits,
            total_regional_dedicated_vcpus=int(properties.get("dedicatedCoreQuota",
                                                              limits.total_regional_dedicated_vcpus)),
            low_priority_vcpus=int(properties.get("lowPriorityCoreQuota", limits.low_priority_vcpus)),
            family_dedicated_vcpus={**{name: limit for name, limit in limits.family_dedicated_vcpus.items()
                                       if name.lower() not in {f.lower() for f in families}}, **families})

    # --- pools ---------------------------------------------------------------------------------------------------
    def _get_pool(self, pool: str) -> dict[str, Any] | None:
        s = self._settings
        try:
            found = call_azure(lambda: self._clients.pools.pool.get(s.resource_group, s.account_name, pool))
        except ResourceNotFoundError:
            return None
        return dict(found)

    def _ensure_pool(self, cluster: Cluster) -> dict[str, Any]:
        pool = pool_id(cluster.workspace, cluster.name)
        found = self._get_pool(pool)
        if found is not None:
            return self._sync_identities(cluster, pool, found)
        s = self._settings
        identity_ids, default_client_id = self._identities_of(cluster, create=True)
        node_map = NodeMap(other=[{"name": WORKSPACE_KEY, "value": cluster.workspace},
                                  {"name": CLUSTER_KEY, "value": cluster.name}])
        if default_client_id:
            node_map.other.append({"name": DEFAULT_IDENTITY_KEY, "value": default_client_id})
        body = pool_body(cluster, image=s.node_image, vm_size=cluster.spec.vm_size, identity_ids=identity_ids,
                         subnet_id=subnet_id_of(cluster, s.subscription_id), node_map=node_map)
        if s.checkpoint_container_url and identity_ids:  # jobs' checkpoints survive their attempts on any node
            body["properties"]["mountConfiguration"] = [checkpoint_mount(s.checkpoint_container_url,
                                                                         s.node_identity_id or identity_ids[0])]
        try:  # create only if absent: a racing worker's pool (and node map) is never overwritten
            created = call_azure(lambda: self._clients.pools.pool.create(
                s.resource_group, s.account_name, pool, body, etag="*", match_condition=MatchConditions.IfMissing))
        except ResourceExistsError as error:
            log.info("pool %s exists already (%s)", pool, error_code(error))
            again = self._get_pool(pool)
            if again is None:
                raise
            return again
        return dict(created)

    def _identities_of(self, cluster: Cluster, *, create: bool) -> tuple[list[str], str | None]:
        """The ARM ids the cluster's pool must carry (the nodes' own identity for code and checkpoints, if set, last)
        and the default identity's client id (None when ``create`` is False and the cluster's own identity would
        have to be made to know it)."""
        ids, default_client_id = self._cluster_identities_of(cluster, create=create)
        node_identity = self._settings.node_identity_id
        if node_identity and node_identity.lower() not in {i.lower() for i in ids}:
            ids.append(node_identity)
        return ids, default_client_id

    def _cluster_identities_of(self, cluster: Cluster, *, create: bool) -> tuple[list[str], str | None]:
        if any(i.kind == "SystemAssigned" for i in cluster.identity.identities):
            if not create:
                return [self._identities.resource_id(cluster)], None
            own = self._identities.ensure(cluster)
            return [own.resource_id], own.client_id
        user_assigned = [i for i in cluster.identity.identities if i.kind == "UserAssigned" and i.resource_id]
        return [str(i.resource_id) for i in user_assigned], (str(user_assigned[0].client_id) if user_assigned
                                                             else None)

    def _sync_identities(self, cluster: Cluster, pool: str, found: dict[str, Any]) -> dict[str, Any]:
        """An identity added to or removed from a live cluster reaches its pool (new nodes get it)."""
        wanted, _ = self._identities_of(cluster, create=False)
        has = list(((found.get("identity") or {}).get("userAssignedIdentities") or {}).keys())
        if {i.lower() for i in wanted} == {i.lower() for i in has}:
            return found
        wanted, default_client_id = self._identities_of(cluster, create=True)
        node_map = NodeMap.from_metadata(found["properties"].get("metadata"))
        node_map.other = [item for item in node_map.other if item["name"] != DEFAULT_IDENTITY_KEY]
        if default_client_id:
            node_map.other.append({"name": DEFAULT_IDENTITY_KEY, "value": default_client_id})
        identity = ({"type": "UserAssigned", "userAssignedIdentities": {i: {} for i in wanted}} if wanted
                    else {"type": "None"})
        with contextlib.suppress(ResourceModifiedError):  # someone wrote the pool in between: looked at again next
            self._write_pool(pool, {"identity": identity, "properties": {"metadata": node_map.to_metadata()}},
                             str(found["etag"]))
        own = self._identities.resource_id(cluster).lower()
        if own in {i.lower() for i in has} and own not in {i.lower() for i in wanted}:
            self._identities.delete(cluster)  # the cluster's system-assigned identity was removed
        return self._get_pool(pool) or found

    def _update_node_map(self, pool: str, change: Callable[[NodeMap], bool]) -> NodeMap | None:
        """Read the pool, apply ``change`` to its node map, write map and targets back conditionally on the ETag;
        a lost race reads again. Returns the map as saved (None: no such pool)."""
        for _ in range(8):
            found = self._get_pool(pool)
            if found is None:
                return None
            node_map = NodeMap.from_metadata(found["properties"].get("metadata"))
            if not change(node_map):
                return node_map
            body = {"properties": {"metadata": node_map.to_metadata(),
                                   "scaleSettings": {"fixedScale": {**node_map.targets(),
                                                                    "nodeDeallocationOption": "TaskCompletion"}}}}
            try:
                self._write_pool(pool, body, str(found["etag"]))
                return node_map
            except ResourceModifiedError:
                continue  # someone else wrote the pool in between: read again and decide again
        raise RuntimeError(f"pool {pool}: its node map kept changing under us; the message will be retried")

    def _write_pool(self, pool: str, body: dict[str, Any], etag: str) -> None:
        s = self._settings
        call_azure(lambda: self._clients.pools.pool.update(s.resource_group, s.account_name, pool, body, etag=etag,
                                                           match_condition=MatchConditions.IfNotModified))

    # --- nodes ---------------------------------------------------------------------------------------------------
    def provision(self, workspace: str, cluster: str, node_id: str, priority: str | None = None) -> datetime | None:
        pool = pool_id(workspace, cluster)
        found = self._get_pool(pool)
        if found is None:
            raise RuntimeError(f"pool {pool} does not exist yet (the cluster's next observation creates it)")
        spec_priority = _pool_priority(found)
        wanted = (priority or spec_priority).lower()

        def add(node_map: NodeMap) -> bool:
            if node_id in node_map.entries:
                return False  # asked before
            node_map.entries[node_id] = (wanted, None)
            return True

        self._update_node_map(pool, add)
        with self._cache_lock:
            self._pool_of_node[node_id] = pool
        return self._wake_ups.after_provision(workspace, cluster, self._clock.now())

    def release(self, node_id: str) -> None:
        pool = self._find_pool_of(node_id)
        if pool is None:
            return  # no pool knows it: released before
        node_map = NodeMap.from_metadata((self._get_pool(pool) or {}).get("properties", {}).get("metadata"))
        if node_id not in node_map.entries:
            return
        batch_node = node_map.batch_node(node_id) or self._unassigned_batch_node(pool, node_map,
                                                                                 node_map.entries[node_id][0])
        if batch_node is not None:
            self._remove_batch_node(pool, batch_node)  # that very node, never one Batch would choose
        self._update_node_map(pool, lambda m: m.entries.pop(node_id, None) is not None)

    def _unassigned_batch_node(self, pool: str, node_map: NodeMap, priority: str) -> str | None:
        """A Batch node of that priority no ComputePlane node stands for yet (a node still booting is released):
        removing it keeps Batch from lowering the target by taking a node that is in use."""
        taken = {b for _, b in node_map.entries.values() if b}
        spare = [n for n in self._list_nodes(pool) if n["id"] not in taken and n.get("state") != "leavingpool"
                 and bool(n.get("isDedicated", True)) == (priority == "dedicated")]
        return str(spare[-1]["id"]) if spare else None

    def _remove_batch_node(self, pool: str, batch_node: str) -> None:
        request = HttpRequest("POST", f"/pools/{pool}/removenodes", params={"api-version": BATCH_API_VERSION},
                              json={"nodeList": [batch_node], "nodeDeallocationOption": "taskcompletion"})

        def send() -> None:
            response = self._clients.batch.send_request(request)
            if response.status_code not in (200, 202):
                raise HttpResponseError(response=response)

        try:
            call_azure(send)
        except HttpResponseError as error:
            if error.status_code == 404 or error_code(error) in ("NodeNotFound", "PoolNotFound"):
                return  # gone already
            if error.status_code == 409 and error_code(error) == "NodeStateConflict":
                return  # leaving or preempted: Batch is taking it away anyway
            raise

    def _find_pool_of(self, node_id: str) -> str | None:
        with self._cache_lock:
            cached = self._pool_of_node.get(node_id)
        if cached is not None:
            return cached
        s = self._settings
        for pool in call_azure(lambda: list(self._clients.pools.pool.list_by_batch_account(
                s.resource_group, s.account_name))):
            found = dict(pool)
            if node_id in NodeMap.from_metadata(found.get("properties", {}).get("metadata")).entries:
                with self._cache_lock:
                    self._pool_of_node[node_id] = found["name"]
                return str(found["name"])
        return None

    # --- observation ---------------------------------------------------------------------------------------------
    def observe(self, cluster: Cluster) -> Observation:
        pool = pool_id(cluster.workspace, cluster.name)
        if cluster.provisioning_state is ProvisioningState.DELETING:
            found = self._get_pool(pool)
            if found is None or not NodeMap.from_metadata(found["properties"].get("metadata")).entries:
                self._delete_pool_of(cluster, pool)
                return Observation(lock=self._strictest_lock())
        found = self._ensure_pool(cluster)
        batch_nodes = {n["id"]: n for n in self._list_nodes(pool)}
        node_map = NodeMap.from_metadata(found["properties"].get("metadata"))
        if node_map.assign(list(batch_nodes.values())):
            saved = self._update_node_map(pool, lambda m: m.assign(list(batch_nodes.values())))
            node_map = saved or node_map
        observation = Observation(lock=self._strictest_lock(), resize_error=_resize_error(found))
        with self._cache_lock:
            for node_id in node_map.entries:
                self._pool_of_node[node_id] = pool
        for node in cluster.nodes:
            if node.node_id not in node_map.entries:
                continue  # GONE: never asked for, or released
            batch_node = node_map.batch_node(node.node_id)
            seen = batch_nodes.get(batch_node) if batch_node else None
            if batch_node and seen is None:
                observation.nodes[node.node_id] = ObservedNode(
                    NodeStatus.FAILED, f"Batch node {batch_node} is no longer in pool {pool}")
            else:
                observation.nodes[node.node_id] = observed_node(seen)
        self._runs.observe(cluster, pool, node_map, observation)
        self._wake_ups.after_observe(cluster, observation, self._clock.now())
        return observation

    def _list_nodes(self, pool: str) -> list[dict[str, Any]]:
        try:
            return call_azure(lambda: [dict(n) for n in self._clients.batch.list_nodes(pool)])
        except ResourceNotFoundError:
            return []

    def _strictest_lock(self) -> ResourceLock | None:
        group = self._settings.resource_group
        locks = call_azure(lambda: list(self._clients.locks.management_locks.list_at_resource_group_level(group)))
        levels = {level.value.lower(): level for level in LockLevel}  # ARM also knows "NotSpecified": no effect
        found = [ResourceLock(str(lock.name), levels[_text(lock.level).lower()], f"resource group '{group}'")
                 for lock in locks if _text(lock.level).lower() in levels]
        return max(found, key=lambda lock: lock.level is LockLevel.READ_ONLY) if found else None

    def _delete_pool_of(self, cluster: Cluster, pool: str) -> None:
        """The cluster is going and has no node left: its pool, its job and its own identity go too."""
        s = self._settings
        call_azure(lambda: self._clients.batch.send_request(HttpRequest(  # a 404 answer raises nothing here
            "DELETE", f"/jobs/{pool}", params={"api-version": BATCH_API_VERSION})))
        with contextlib.suppress(ResourceNotFoundError):
            call_azure(lambda: self._clients.pools.pool.begin_delete(s.resource_group, s.account_name, pool,
                                                                     polling=False))
        if any(i.kind == "SystemAssigned" for i in cluster.identity.identities):
            self._identities.delete(cluster)

    # --- runs (shared.adapters.azure_batch.runs) -----------------------------------------------------------------
    def start_run(self, node_ids: Sequence[str], run: RunRequest) -> None:
        found = self._get_pool(pool_id(run.workspace, run.cluster)) or {}
        properties = found.get("properties", {})
        pool_identities = list(((found.get("identity") or {}).get("userAssignedIdentities") or {}).keys())
        mounted = any((m.get("azureBlobFileSystemConfiguration") or {}).get("relativeMountPath") == CHECKPOINT_MOUNT
                      for m in properties.get("mountConfiguration") or [])
        self._runs.start_run(node_ids, run, NodeMap.from_metadata(properties.get("metadata")), NodeFiles(
            container_url=self._settings.snapshot_container_url, checkpoint_mounted=mounted,
            identity=self._settings.node_identity_id or (pool_identities[0] if pool_identities else None)))
        self._wake_ups.after_start(run.workspace, run.cluster, self._clock.now())

    def stop_run(self, job_id: str, attempt: int) -> None:
        self._runs.stop_run(job_id, attempt)

    def read_logs(self, job_id: str, attempt: int) -> str | None:
        return self._runs.read_logs(job_id, attempt)


def _text(value: Any) -> str:
    """An SDK enum member or a plain string, as the string on the wire."""
    return str(getattr(value, "value", value))


def _pool_priority(pool: dict[str, Any]) -> str:
    tags = pool.get("tags") or {}
    return str(tags.get("computeplane-priority", "dedicated"))


def _resize_error(pool: dict[str, Any]) -> ResizeError | None:
    status = (pool.get("properties") or {}).get("resizeOperationStatus") or {}
    errors = status.get("errors") or []
    if not errors:
        return None
    first = errors[0]
    code = str(first.get("code", "ResizeError"))
    return ResizeError(code, str(first.get("message", "")), is_quota=code in QUOTA_ERROR_CODES or "Quota" in code)

