"""The SDK clients of the Batch provider, all on the control plane's credential (``shared.adapters.credentials``),
with the bounded timeouts of ``calls.CLIENT_OPTIONS``. The SDKs are imported when the clients are built, so
importing this module loads none of them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.adapters.azure_batch.calls import CLIENT_OPTIONS
from shared.config import AzureBatchSettings


@dataclass
class AzureClients:
    """The SDK clients, all on the control plane's credential. Built lazily: importing this module loads no SDK."""

    batch: Any  # azure.batch.BatchClient (data plane: nodes, jobs, tasks, files)
    pools: Any  # azure.mgmt.batch.BatchManagementClient (pools, the account's quotas)
    locks: Any  # azure.mgmt.resource.locks.ManagementLockClient
    identities: Any  # azure.mgmt.msi.ManagedServiceIdentityClient

    def close(self) -> None:
        """Close the clients' connections (a shutdown, a test's end)."""
        _close_all((self.batch, self.pools, self.locks, self.identities))

    @classmethod
    def build(cls, batch: AzureBatchSettings, client_id: str | None) -> AzureClients:
        from azure.batch import BatchClient
        from azure.mgmt.batch import BatchManagementClient
        from azure.mgmt.msi import ManagedServiceIdentityClient
        from azure.mgmt.resource.locks import ManagementLockClient

        from shared.adapters.credentials import azure_credential

        credential = azure_credential(client_id)
        arm = {"base_url": batch.arm_endpoint, **CLIENT_OPTIONS}  # tokens for https://management.azure.com
        return cls(batch=BatchClient(batch.account_endpoint, credential, **CLIENT_OPTIONS),
                   pools=BatchManagementClient(credential, batch.subscription_id, **arm),
                   locks=ManagementLockClient(credential, batch.subscription_id, **arm),
                   identities=ManagedServiceIdentityClient(credential, batch.subscription_id, **arm))


def _close_all(clients: Iterable[Any]) -> None:
    for client in clients:
        with contextlib.suppress(Exception):  # closing is best effort: the process may be going anyway
            client.close()
