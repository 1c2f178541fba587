"""Code snapshots in Azure Blob Storage, reached with the app's managed identity (no account key).

One blob per snapshot: ``<workspace>/<sha256>.tar.gz`` in the container ``COMPUTEPLANE_SNAPSHOT_CONTAINER``
(default ``snapshots``) of the account ``COMPUTEPLANE_SNAPSHOT_ACCOUNT_URL``. The upload is conditional
(``If-None-Match: *``), so the same snapshot uploaded twice is stored once. The app's identity needs "Storage Blob
Data Contributor" on the container (infra/app/snapshots-rbac.bicep); nodes read the blob with theirs.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from shared.adapters.credentials import azure_credential

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

DEFAULT_CONTAINER = "snapshots"


class BlobSnapshotStore:
    def __init__(self, container: ContainerClient) -> None:
        self._container = container

    @classmethod
    def from_settings(cls, account_url: str, container: str, client_id: str | None) -> BlobSnapshotStore:
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient(account_url, credential=azure_credential(client_id))
        return cls(service.get_container_client(container or DEFAULT_CONTAINER))

    @staticmethod
    def blob_name(workspace: str, digest: str) -> str:
        return f"{workspace}/{digest}.tar.gz"

    def create_container(self) -> None:
        """For a fresh account (Azurite, tests): in Azure the container comes with the infrastructure."""
        with contextlib.suppress(ResourceExistsError):
            self._container.create_container()

    def put(self, workspace: str, digest: str, archive: bytes) -> bool:
        try:
            self._container.upload_blob(self.blob_name(workspace, digest), archive, overwrite=False)
        except ResourceExistsError:
            return False
        return True

    def get(self, workspace: str, digest: str) -> bytes | None:
        try:
            return self._container.download_blob(self.blob_name(workspace, digest)).readall()
        except ResourceNotFoundError:
            return None

    def exists(self, workspace: str, digest: str) -> bool:
        return bool(self._container.get_blob_client(self.blob_name(workspace, digest)).exists())
