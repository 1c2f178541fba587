"""``AmlCompute``: a cluster of the workspace with v1's methods, over the ComputePlane API."""

from __future__ import annotations

import time
from typing import Any

from computeplane.azureml.compute_target import ComputeTarget, ComputeTargetProvisioningConfiguration
from computeplane.azureml.exceptions import ComputeTargetException, raised_as_compute_target_exception
from computeplane.azureml.provisioning import AmlComputeProvisioningConfiguration, validate_identity
from computeplane.azureml.status import AmlComputeStatus, ScaleSettings, parse_time
from computeplane.azureml.wait_output import StateDots, report_wait_outcome
from computeplane.azureml.workspace import Workspace
from computeplane.errors import WaitTimeout
from computeplane.waiting import (
    CLUSTER_FAILED_STATES,
    CLUSTER_SETTLED_STATES,
    cluster_is_ready,
    cluster_min_node_count,
    ready_node_count,
    wait_for_cluster,
    wait_for_cluster_deletion,
)

STATUS_STATES = CLUSTER_SETTLED_STATES  # v1 has a detailed status only when Succeeded or Updating


class AmlCompute(ComputeTarget):
    """A compute cluster. Get one with ``ComputeTarget(workspace=ws, name=...)`` or ``ComputeTarget.create``."""

    _compute_type = "AmlCompute"
    _provisioning_configuration_class = AmlComputeProvisioningConfiguration

    def _initialize(self, workspace: Workspace, body: dict[str, Any]) -> None:
        self.workspace = workspace
        self.name = str(body.get("name"))
        self.id = body.get("id")
        self.type = self._compute_type
        self.location = body.get("location")
        self.cluster_location = body.get("location")
        self.tags = body.get("tags") or None
        self.description = body.get("description")
        self.created_on = parse_time(body.get("created_at"))
        self.modified_on = parse_time(body.get("modified_at"))
        self.provisioning_state: str = str(body.get("provisioning_state"))
        self.provisioning_errors: list[dict[str, Any]] | None = list(body.get("errors") or []) or None
        self.vm_size = body.get("vm_size")
        self.vm_priority = body.get("vm_priority")
        self.scale_settings = ScaleSettings.of(body)
        self.status: AmlComputeStatus | None = (AmlComputeStatus.of(body)
                                                if self.provisioning_state in STATUS_STATES else None)
        vnet = body.get("vnet") or {}
        self.admin_username: str | None = body.get("admin_username")
        self.vnet_resourcegroup_name: str | None = vnet.get("resource_group")
        self.vnet_name: str | None = vnet.get("vnet_name")
        self.subnet_name: str | None = vnet.get("subnet_name")
        self.remote_login_port_public_access: str | None = body.get("remote_login_port_public_access")
        self.identity_type, self.identity_id = _identity_of(body)
        self._reports_identity = "identity" in body
        self._body = body
        self._operation_pending = getattr(self, "_operation_pending", False)

    # --- provisioning ----------------------------------------------------------------------------------------------
    @staticmethod
    def provisioning_configuration(vm_size: str = "", vm_priority: str = "dedicated", min_nodes: int = 0,
                                   max_nodes: int | None = None, idle_seconds_before_scaledown: int | None = 1800,
                                   admin_username: str | None = None, admin_user_password: str | None = None,
                                   admin_user_ssh_key: str | None = None, vnet_resourcegroup_name: str | None = None,
                                   vnet_name: str | None = None, subnet_name: str | None = None,
                                   tags: dict[str, str] | None = None, description: str | None = None,
                                   remote_login_port_public_access: str = "NotSpecified",
                                   identity_type: str | None = None, identity_id: list[str] | None = None,
                                   location: str | None = None,
                                   enable_node_public_ip: bool = True) -> AmlComputeProvisioningConfiguration:
        """v1's signature and defaults (``idle_seconds_before_scaledown`` None also means 1800)."""
        return AmlComputeProvisioningConfiguration(
            vm_size, vm_priority, min_nodes, max_nodes, idle_seconds_before_scaledown, admin_username,
            admin_user_password, admin_user_ssh_key, vnet_resourcegroup_name, vnet_name, subnet_name, tags,
            description, remote_login_port_public_access, identity_type, identity_id, location, enable_node_public_ip)

    @classmethod
    def _create(cls, workspace: Workspace, name: str,
                provisioning_configuration: ComputeTargetProvisioningConfiguration) -> AmlCompute:
        assert isinstance(provisioning_configuration, AmlComputeProvisioningConfiguration)
        with raised_as_compute_target_exception():
            result = workspace.client.create_cluster(name, **provisioning_configuration.create_request())
        target = object.__new__(cls)
        target._initialize(workspace, result.cluster)
        target._operation_pending = True
        return target

    # --- waiting ---------------------------------------------------------------------------------------------------
    def wait_for_completion(self, show_output: bool = False, min_node_count: int | None = None,
                            timeout_in_minutes: float = 25, is_delete_operation: bool = False) -> None:
        """Wait for provisioning (after ``create``), then for ``min_node_count`` nodes (default: min_nodes),
        printing what v1 prints. Raises ComputeTargetException if provisioning fails; a timeout is reported."""
        deadline = time.monotonic() + timeout_in_minutes * 60
        if is_delete_operation:
            self._wait_for_deletion(show_output, deadline)
            return
        if self._operation_pending:
            self._wait_for_operation(show_output, deadline)
        dots = StateDots(show_output)
        timed_out = False
        with raised_as_compute_target_exception():
            try:
                final = wait_for_cluster(self.workspace.client, self.name, min_node_count=min_node_count,
                                         timeout=max(deadline - time.monotonic(), 0), raise_on_error=False,
                                         on_progress=lambda body: self._show_nodes_progress(dots, body,
                                                                                             min_node_count))
            except WaitTimeout as timeout:
                final, timed_out = timeout.last or self._body, True
        self._initialize(self.workspace, final)
        dots.end()
        if show_output:
            report_wait_outcome(final, min_node_count, timed_out)

    def _wait_for_operation(self, show_output: bool, deadline: float) -> None:
        dots = StateDots(show_output)
        with raised_as_compute_target_exception():
            try:
                final = wait_for_cluster(self.workspace.client, self.name, min_node_count=0, raise_on_error=False,
                                         timeout=max(deadline - time.monotonic(), 0),
                                         on_progress=lambda body: dots.show(str(body.get("provisioning_state"))))
            except WaitTimeout as timeout:
                final = timeout.last or self._body
        self._initialize(self.workspace, final)
        self._operation_pending = False
        state = self.provisioning_state
        if state in STATUS_STATES or state in CLUSTER_FAILED_STATES:
            dots.write(f'Provisioning operation finished, operation "{state}"\n')
        if state in CLUSTER_FAILED_STATES:
            raise ComputeTargetException(
                "Compute object provisioning polling reached non-successful terminal state, current provisioning "
                f"state: {state}\nProvisioning operation error:\n{self.provisioning_errors}")

    def _show_nodes_progress(self, dots: StateDots, body: dict[str, Any], min_node_count: int | None) -> None:
        dots.show(str(body.get("provisioning_state")))
        ready = ready_node_count(body)
        if ready and not cluster_is_ready(body, min_node_count):
            dots.write(f"Waiting for cluster to scale. {ready} out of "
                       f"{cluster_min_node_count(body, min_node_count)} nodes ready.\n")

    def _wait_for_deletion(self, show_output: bool, deadline: float) -> None:
        dots = StateDots(show_output)
        with raised_as_compute_target_exception():
            wait_for_cluster_deletion(self.workspace.client, self.name, timeout=max(deadline - time.monotonic(), 0),
                                      on_progress=lambda body: dots.show(str(body.get("provisioning_state"))))
        dots.show("Succeeded")
        dots.write('Provisioning operation finished, operation "Succeeded"\n')

    # --- state -----------------------------------------------------------------------------------------------------
    def refresh_state(self) -> None:
        """Re-read the cluster from the server (in place)."""
        self._initialize(self.workspace, self.get())

    def get(self) -> dict[str, Any]:
        """The API's body for this cluster."""
        with raised_as_compute_target_exception():
            return self.workspace.client.get_cluster(self.name)

    def get_status(self) -> AmlComputeStatus | None:
        """The detailed status; None (with v1's explanation printed) while Creating, Deleting or Failed."""
        self.refresh_state()
        if self.status is None:
            if self.provisioning_state == "Creating":
                print("AmlCompute is getting created. Consider calling wait_for_completion() first\n")
            elif self.provisioning_state == "Failed":
                print("AmlCompute is in a failed state, try deleting and recreating\n")
            else:
                print(f'Current provisioning state of AmlCompute is "{self.provisioning_state}"\n')
        return self.status

    def serialize(self) -> dict[str, Any]:
        """v1's JSON shape of the cluster (ARM-like, camelCase)."""
        identity = ({"type": self.identity_type, "userAssignedIdentities": self.identity_id}
                    if self.identity_type else None)
        return {"id": self.id, "name": self.name, "location": self.location, "tags": self.tags, "identity": identity,
                "properties": {
                    "description": self.description, "computeType": self.type,
                    "computeLocation": self.cluster_location, "provisioningState": self.provisioning_state,
                    "provisioningErrors": self.provisioning_errors,
                    "properties": {"vmSize": self.vm_size, "vmPriority": self.vm_priority,
                                   "scaleSettings": self.scale_settings.serialize(),
                                   "remoteLoginPortPublicAccess": self.remote_login_port_public_access},
                    "status": self.status.serialize() if self.status else None}}

    @staticmethod
    def deserialize(workspace: Workspace, object_dict: dict[str, Any]) -> AmlCompute:
        """An AmlCompute from the API's body of a cluster."""
        target = object.__new__(AmlCompute)
        target._initialize(workspace, object_dict)
        return target

    # --- changes ---------------------------------------------------------------------------------------------------
    def update(self, min_nodes: int | None = None, max_nodes: int | None = None,
               idle_seconds_before_scaledown: int | None = None) -> None:
        """Change the scale settings (only those given)."""
        if min_nodes is None and max_nodes is None and idle_seconds_before_scaledown is None:
            return
        with raised_as_compute_target_exception():
            body = self.workspace.client.update_cluster(self.name, min_nodes=min_nodes, max_nodes=max_nodes,
                                                        idle_seconds_before_scaledown=idle_seconds_before_scaledown)
        self._initialize(self.workspace, body)

    def add_identity(self, identity_type: str, identity_id: list[str] | None = None) -> None:
        """Add a system-assigned identity, or user-assigned identities (``identity_id``: a list of ARM ids)."""
        validate_identity(identity_type, identity_id)
        with raised_as_compute_target_exception():
            self.workspace.client.add_identity(self.name, identity_type, identity_id)
        self.refresh_state()

    def remove_identity(self, identity_id: list[str] | None = None) -> None:
        """Remove the given user-assigned identities, or every identity when ``identity_id`` is None."""
        self.refresh_state()
        if self._reports_identity and self.identity_type is None:
            raise ComputeTargetException("Cannot remove identity. The compute has no identity assigned.")
        with raised_as_compute_target_exception():
            self.workspace.client.remove_identity(self.name, identity_id)
        self.refresh_state()

    def delete(self) -> None:
        """Delete the cluster (``wait_for_completion(is_delete_operation=True)`` waits until it is gone)."""
        with raised_as_compute_target_exception():
            self.workspace.client.delete_cluster(self.name)

    def detach(self) -> None:
        raise ComputeTargetException("Detach is not supported for AmlCompute object. Try to use delete instead.")

    def list_nodes(self) -> list[dict[str, Any]]:
        """The nodes, with v1's keys: nodeId, nodeState, privateIpAddress, publicIpAddress, port, runId."""
        with raised_as_compute_target_exception():
            nodes = self.workspace.client.list_nodes(self.name)
        return [{"nodeId": n.get("node_id"), "nodeState": n.get("state"), "privateIpAddress": n.get("private_ip"),
                 "publicIpAddress": n.get("public_ip"), "port": n.get("port"), "runId": n.get("run_id")}
                for n in nodes]

    # --- workspace-wide --------------------------------------------------------------------------------------------
    @staticmethod
    def supported_vmsizes(workspace: Workspace, location: str | None = None) -> Any:
        with raised_as_compute_target_exception():
            return workspace.client.list_vm_sizes(location)

    @staticmethod
    def list_usages(workspace: Workspace, show_all: bool = False, location: str | None = None) -> Any:
        with raised_as_compute_target_exception():
            return workspace.client.list_usages(location)

    @staticmethod
    def list_quotas(workspace: Workspace, location: str | None = None) -> Any:
        with raised_as_compute_target_exception():
            return workspace.client.list_quotas(location)


def _identity_of(body: dict[str, Any]) -> tuple[str | None, list[str] | None]:
    """(identity_type, user-assigned resource ids) from the cluster body's ``identity`` view."""
    identity = body.get("identity") or {}
    kind = identity.get("type")
    if not kind or kind == "None":
        return None, None
    ids = [str(i.get("resource_id")) for i in identity.get("user_assigned_identities") or [] if i.get("resource_id")]
    return str(kind), ids or None
