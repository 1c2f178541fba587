"""``ComputeTarget``: get an existing cluster by name, or create one from a provisioning configuration (as v1)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from computeplane.azureml.exceptions import ComputeTargetException, raised_as_compute_target_exception
from computeplane.errors import NotFoundError

if TYPE_CHECKING:
    from computeplane.azureml.workspace import Workspace

RESERVED_NAMES = ("amlcompute", "local", "containerinstance")

__all__ = ["ComputeTarget", "ComputeTargetException", "ComputeTargetProvisioningConfiguration"]


class ComputeTargetProvisioningConfiguration:
    """Base of the configurations ``ComputeTarget.create`` takes; each target class names its own."""


class ComputeTarget:
    """``ComputeTarget(workspace=ws, name=...)`` returns the cluster as an instance of its own class (AmlCompute),
    or raises ComputeTargetException if there is no such cluster."""

    _compute_type: ClassVar[str | None] = None
    _provisioning_configuration_class: ClassVar[type[ComputeTargetProvisioningConfiguration] | None] = None

    workspace: Workspace
    name: str

    def __new__(cls, workspace: Workspace | None = None, name: str | None = None) -> ComputeTarget:
        if workspace is None or not name:
            return super().__new__(cls)
        body = cls._get(workspace, name)
        if body is None:
            raise ComputeTargetException(f"ComputeTargetNotFound: Compute Target with name {name} not found in "
                                         "provided workspace", "ComputeTargetNotFound")
        return cls._from_body(workspace, body)

    def __init__(self, workspace: Workspace | None = None, name: str | None = None) -> None:
        """Everything is done in ``__new__`` (as v1)."""

    @classmethod
    def _from_body(cls, workspace: Workspace, body: dict[str, Any]) -> ComputeTarget:
        compute_type = body.get("compute_type") or "AmlCompute"
        target_class = next((c for c in _all_subclasses(ComputeTarget) if c._compute_type == compute_type), None)
        if target_class is None:
            raise ComputeTargetException(f"unsupported compute type {compute_type!r} for '{body.get('name')}'")
        target = object.__new__(target_class)
        target._initialize(workspace, body)
        return target

    @staticmethod
    def _get(workspace: Workspace, name: str) -> dict[str, Any] | None:
        """The API's body for the cluster, or None if there is none."""
        with raised_as_compute_target_exception():
            try:
                return workspace.client.get_cluster(name)
            except NotFoundError as error:
                if error.code == "ComputeTargetNotFound":
                    return None
                raise

    @staticmethod
    def create(workspace: Workspace, name: str,
               provisioning_configuration: ComputeTargetProvisioningConfiguration) -> ComputeTarget:
        """Provision a new cluster (get-or-create: the same spec again finds the existing one)."""
        if name in RESERVED_NAMES:
            raise ComputeTargetException(f"Please specify a different target name. {name} is a reserved name.")
        target_class = next((c for c in _all_subclasses(ComputeTarget) if c._provisioning_configuration_class
                             and isinstance(provisioning_configuration, c._provisioning_configuration_class)), None)
        if target_class is None:
            raise ComputeTargetException(f"cannot provision from a {type(provisioning_configuration).__name__}")
        return target_class._create(workspace, name, provisioning_configuration)

    @staticmethod
    def list(workspace: Workspace) -> list[ComputeTarget]:
        with raised_as_compute_target_exception():
            bodies = workspace.client.list_clusters()
        return [ComputeTarget._from_body(workspace, body) for body in bodies]

    @classmethod
    def _create(cls, workspace: Workspace, name: str,
                provisioning_configuration: ComputeTargetProvisioningConfiguration) -> ComputeTarget:
        raise NotImplementedError

    def _initialize(self, workspace: Workspace, body: dict[str, Any]) -> None:
        raise NotImplementedError

    def wait_for_completion(self, show_output: bool = False) -> None:
        """Wait for the current provisioning operation to finish."""
        raise NotImplementedError

    def delete(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(workspace={getattr(self, 'workspace', None)!r}, "
                f"name={getattr(self, 'name', None)}, provisioning_state={getattr(self, 'provisioning_state', None)})")


def _all_subclasses(cls: type[ComputeTarget]) -> list[type[ComputeTarget]]:
    found: list[type[ComputeTarget]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found
