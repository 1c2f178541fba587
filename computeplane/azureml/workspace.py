"""``Workspace``: where the v1-style objects send their requests (a ComputePlane server and a workspace name)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from computeplane.azureml.compute_target import ComputeTarget
from computeplane.client import DEFAULT_ENDPOINT, DEFAULT_WORKSPACE, ComputePlaneClient


class Workspace:
    """A workspace of a ComputePlane server, standing in for ``azureml.core.Workspace``.

    ``Workspace(endpoint="http://127.0.0.1:7071", name="default")``; v1's keyword ``workspace_name`` is accepted,
    and ``subscription_id``/``resource_group`` are kept only to build v1-looking ids.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, name: str = DEFAULT_WORKSPACE, api_key: str | None = None,
                 *, workspace_name: str | None = None, subscription_id: str | None = None,
                 resource_group: str | None = None, client: ComputePlaneClient | None = None) -> None:
        self.name = workspace_name or name
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.location: str | None = None
        self.client = client or ComputePlaneClient(endpoint, self.name, api_key=api_key)

    @classmethod
    def get(cls, name: str = DEFAULT_WORKSPACE, endpoint: str = DEFAULT_ENDPOINT,
            api_key: str | None = None) -> Workspace:
        """The workspace ``name`` of the server at ``endpoint``; raises ServerUnreachable if no server answers."""
        workspace = cls(endpoint, name, api_key)
        workspace.client.health()
        return workspace

    @classmethod
    def from_config(cls, path: str | Path | None = None) -> Workspace:
        """From a JSON file with ``endpoint``, ``workspace_name`` (and ``api_key``), or else from the environment:
        COMPUTEPLANE_ENDPOINT, COMPUTEPLANE_WORKSPACE, COMPUTEPLANE_API_KEY."""
        if path is not None:
            config = json.loads(Path(path).read_text())
            return cls(config.get("endpoint", DEFAULT_ENDPOINT), config.get("workspace_name", DEFAULT_WORKSPACE),
                       config.get("api_key"))
        return cls(os.environ.get("COMPUTEPLANE_ENDPOINT", DEFAULT_ENDPOINT),
                   os.environ.get("COMPUTEPLANE_WORKSPACE", DEFAULT_WORKSPACE),
                   os.environ.get("COMPUTEPLANE_API_KEY"))

    @property
    def compute_targets(self) -> dict[str, ComputeTarget]:
        """Every cluster of the workspace by name, as v1's ``ws.compute_targets``."""
        return {target.name: target for target in ComputeTarget.list(self)}

    def __repr__(self) -> str:
        return f"Workspace.create(name='{self.name}', endpoint='{self.client.endpoint}')"
