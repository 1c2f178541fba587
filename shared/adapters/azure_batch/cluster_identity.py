"""The identity of a SystemAssigned cluster on Azure Batch.

Batch pools accept only user-assigned identities. So a cluster that asks for a system-assigned identity gets a
user-assigned identity of its own, created in the node resource group when its pool is created, named after the
cluster and its incarnation (``uid``), tagged with both, and deleted with the cluster, as a system-assigned identity
would be. Its client id reaches the cluster's jobs as ``DEFAULT_IDENTITY_CLIENT_ID`` (kept in the pool's
metadata). Creating it needs the control plane's identity to hold Managed Identity Contributor on the node resource
group, and attaching it to a pool Managed Identity Operator there (see infra/).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared.adapters.azure_batch.calls import call_azure
from shared.adapters.azure_batch.pools import batch_id
from shared.domain.cluster import Cluster


@dataclass(frozen=True)
class ClusterIdentity:
    resource_id: str
    client_id: str


def identity_name(cluster: Cluster) -> str:
    return batch_id("cp-id", cluster.workspace, cluster.name, cluster.uid[:8])


class ClusterIdentities:
    def __init__(self, msi_client: Any, subscription_id: str, resource_group: str, default_location: str) -> None:
        self._msi, self._resource_group, self._default_location = msi_client, resource_group, default_location
        self._subscription_id = subscription_id

    def resource_id(self, cluster: Cluster) -> str:
        """The ARM id the cluster's identity has (or will have), known without a call."""
        return (f"/subscriptions/{self._subscription_id}/resourceGroups/{self._resource_group}/providers/"
                f"Microsoft.ManagedIdentity/userAssignedIdentities/{identity_name(cluster)}")

    def ensure(self, cluster: Cluster) -> ClusterIdentity:
        """Create the cluster's identity, or find it (a PUT of the same body is a no-op in ARM)."""
        body = {"location": cluster.spec.location or self._default_location,
                "tags": {"computeplane-workspace": cluster.workspace, "computeplane-cluster": cluster.name,
                         "computeplane-cluster-uid": cluster.uid}}
        identity = call_azure(lambda: self._msi.user_assigned_identities.create_or_update(
            self._resource_group, identity_name(cluster), body))
        return ClusterIdentity(resource_id=identity.id, client_id=identity.client_id)

    def delete(self, cluster: Cluster) -> None:
        with contextlib.suppress(ResourceNotFoundError):  # deleted before
            call_azure(lambda: self._msi.user_assigned_identities.delete(self._resource_group, identity_name(cluster)))
