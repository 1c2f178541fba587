"""Long-running operations: what ``Azure-AsyncOperation`` points at, and the status it answers.

The operation id carries the operation itself (kind, workspace, cluster, the cluster's uid), so the status is read
from the cluster and nothing is stored: create and update are Succeeded once the cluster is (Failed, with its
errors, if it failed); a delete is Succeeded once the cluster is gone (or a new one with the same name exists).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

from shared.api.errors import answers
from shared.domain.cluster import Cluster, ProvisioningState
from shared.domain.errors import DomainError

OperationKind = Literal["create", "update", "delete"]
RETRY_AFTER_SECONDS = 1


@answers(404)
class OperationNotFound(DomainError):
    code = "OperationNotFound"


@dataclass(frozen=True)
class Operation:
    kind: OperationKind
    workspace: str
    cluster: str
    uid: str

    @property
    def id(self) -> str:
        raw = json.dumps([self.kind, self.workspace, self.cluster, self.uid], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def parse(cls, operation_id: str) -> Operation:
        try:
            kind, workspace, cluster, uid = json.loads(base64.urlsafe_b64decode(operation_id + "=" * (-len(
                operation_id) % 4)))
        except (binascii.Error, ValueError, TypeError):
            raise OperationNotFound(f"operation '{operation_id[:80]}' not found") from None
        if kind not in ("create", "update", "delete"):
            raise OperationNotFound(f"operation '{operation_id[:80]}' not found")
        return cls(kind, str(workspace), str(cluster), str(uid))

    def status(self, cluster: Cluster | None) -> dict[str, Any]:
        if self.kind == "delete":
            done = cluster is None or cluster.uid != self.uid
            return {"status": "Succeeded" if done else "InProgress"}
        if cluster is None or cluster.uid != self.uid:
            return {"status": "Failed", "error": {"code": "ComputeTargetNotFound",
                                                  "message": f"compute '{self.cluster}' was deleted"}}
        if cluster.provisioning_state is ProvisioningState.SUCCEEDED:
            return {"status": "Succeeded", "percentComplete": 100.0}
        if cluster.provisioning_state in (ProvisioningState.FAILED, ProvisioningState.CANCELED):
            first = cluster.errors[0] if cluster.errors else None
            return {"status": cluster.provisioning_state.value, "error": {
                "code": first.code if first else "ProvisioningFailed",
                "message": first.message if first else f"compute '{self.cluster}' failed to provision"}}
        return {"status": "InProgress"}
