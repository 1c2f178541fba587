"""``Workspace``: where the v1-style objects send their requests (a ComputePlane server and a workspace name)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from computeplane.azureml.compute_target import ComputeTarget
from computeplane.client import DEFAULT_ENDPOINT, DEFAULT_WORKSPACE, ComputePlaneClient

CONFIG_FILE = "config.json"
CONFIG_DIR = ".azureml"


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
    def from_config(cls, path: str | Path | None = None, auth: object = None,
                    _file_name: str | None = None) -> Workspace:
        """As v1: the config file found at ``path`` (a file, or a directory holding ``config.json`` or
        ``.azureml/config.json``), else in the current directory or the nearest parent that has one. It holds v1's
        ``workspace_name`` (``subscription_id`` and ``resource_group`` are kept) and, for ComputePlane, ``endpoint``
        and ``api_key``; what it lacks comes from COMPUTEPLANE_ENDPOINT / COMPUTEPLANE_WORKSPACE /
        COMPUTEPLANE_API_KEY. A ``path`` with no config file raises UserErrorException; with no path and no file
        anywhere, the environment alone decides."""
        config_file = find_config_file(Path(path) if path is not None else None, _file_name or CONFIG_FILE)
        if config_file is None and path is not None:
            raise UserErrorException(f"We could not find {_file_name or CONFIG_FILE} in: {path} or in its "
                                     f"{CONFIG_DIR} directory")
        config: dict[str, object] = {}
        if config_file is not None:
            try:
                loaded = json.loads(config_file.read_text())
            except (OSError, ValueError) as exc:
                raise UserErrorException(f"{config_file}: not a JSON workspace configuration ({exc})") from None
            config = loaded if isinstance(loaded, dict) else {}
        endpoint = config.get("endpoint") or os.environ.get("COMPUTEPLANE_ENDPOINT") or DEFAULT_ENDPOINT
        name = config.get("workspace_name") or os.environ.get("COMPUTEPLANE_WORKSPACE") or DEFAULT_WORKSPACE
        api_key = config.get("api_key") or os.environ.get("COMPUTEPLANE_API_KEY")
        return cls(str(endpoint), str(name), str(api_key) if api_key else None,
                   subscription_id=_optional_str(config.get("subscription_id")),
                   resource_group=_optional_str(config.get("resource_group")))

    @property
    def compute_targets(self) -> dict[str, ComputeTarget]:
        """Every cluster of the workspace by name, as v1's ``ws.compute_targets``."""
        return {target.name: target for target in ComputeTarget.list(self)}

    def __repr__(self) -> str:
        return f"Workspace.create(name='{self.name}', endpoint='{self.client.endpoint}')"


class UserErrorException(Exception):
    """As v1's ``azureml.exceptions.UserErrorException`` (no config file where one was asked for)."""


def find_config_file(path: Path | None, file_name: str = CONFIG_FILE) -> Path | None:
    """v1's search: ``path`` itself if it is a file; else in ``path`` (or the current directory and each of its
    parents, nearest first) ``config.json``, then ``.azureml/config.json``."""
    if path is not None and path.is_file():
        return path
    directories = [path] if path is not None else [Path.cwd(), *Path.cwd().parents]
    for directory in directories:
        for candidate in (directory / file_name, directory / CONFIG_DIR / file_name):
            if candidate.is_file():
                return candidate
    return None


def _optional_str(value: object) -> str | None:
    return str(value) if value else None
