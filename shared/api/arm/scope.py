"""Which ComputePlane workspace an ARM workspace is, and the ARM ids of what lives in it.

The mapping (``COMPUTEPLANE_ARM_WORKSPACES``) is a JSON object from ``subscription/resourceGroup/workspace`` (matched
without regard to case, as ARM matches ids) to a ComputePlane workspace name. Any ARM workspace not listed is the
ComputePlane workspace of the same name, whatever its subscription and resource group: the obvious default, so
``MLClient(credential, "<any sub>", "<any rg>", "team-a")`` manages the clusters ``/api/workspaces/team-a`` shows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from shared.api.errors import answers
from shared.domain.errors import DomainError

PROVIDER = "Microsoft.MachineLearningServices"
LOCAL_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
_WORKSPACE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@answers(404)
class WorkspaceNotFound(DomainError):
    code = "ResourceNotFound"


@dataclass(frozen=True)
class ArmWorkspace:
    subscription: str
    resource_group: str
    name: str
    workspace: str  # the ComputePlane workspace it maps to

    @property
    def id(self) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/{PROVIDER}" \
               f"/workspaces/{self.name}"

    def compute_id(self, name: str) -> str:
        return f"{self.id}/computes/{name}"


@dataclass(frozen=True)
class WorkspaceMapping:
    explicit: Mapping[str, str]  # "sub/rg/ws" lower-cased -> ComputePlane workspace
    subscription: str = LOCAL_SUBSCRIPTION  # what GET /subscriptions lists

    @classmethod
    def from_settings(cls, workspaces: str | None, subscription: str | None) -> WorkspaceMapping:
        """From COMPUTEPLANE_ARM_WORKSPACES (a JSON object) and COMPUTEPLANE_ARM_SUBSCRIPTION."""
        raw = workspaces or "{}"
        try:
            document = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ValueError(f"COMPUTEPLANE_ARM_WORKSPACES: must be a JSON object, {error}") from None
        if not isinstance(document, dict) or not all(
                isinstance(k, str) and k.count("/") == 2 and isinstance(v, str) and _WORKSPACE_NAME.match(v)
                for k, v in document.items()):
            raise ValueError('COMPUTEPLANE_ARM_WORKSPACES: must map "subscription/resourceGroup/workspace" to a '
                             'ComputePlane workspace name, e.g. {"<sub-id>/ml-rg/ml-ws": "team-a"}')
        return cls(explicit={k.lower(): v for k, v in document.items()},
                   subscription=subscription or LOCAL_SUBSCRIPTION)

    def resolve(self, subscription: str, resource_group: str, name: str) -> ArmWorkspace:
        mapped = self.explicit.get(f"{subscription}/{resource_group}/{name}".lower())
        if mapped is None and not _WORKSPACE_NAME.match(name):
            raise WorkspaceNotFound(f"workspace '{name}' not found: a ComputePlane workspace name is 1-64 letters, "
                                    "digits, '-' or '_'")
        return ArmWorkspace(subscription, resource_group, name, mapped or name)
