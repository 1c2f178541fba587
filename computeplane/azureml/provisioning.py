"""``AmlComputeProvisioningConfiguration``: v1's parameters and defaults, checked as v1 checks them, and turned
into the body of ``POST clusters`` (fields left at their v1 default are not sent)."""

from __future__ import annotations

import string
from typing import Any

from computeplane.azureml.compute_target import ComputeTargetProvisioningConfiguration
from computeplane.azureml.exceptions import ComputeTargetException

DEFAULT_VM_SIZE = "Standard_NC6"  # v1: "If not specified, defaults to Standard_NC6"
DEFAULT_IDLE_SECONDS_BEFORE_SCALEDOWN = 1800
PASSWORD_SPECIAL_CHARACTERS = set("`~!@#$%^&*()=+_[]{}|;:./'\",<>?")


class AmlComputeProvisioningConfiguration(ComputeTargetProvisioningConfiguration):
    def __init__(self, vm_size: str = "", vm_priority: str = "dedicated", min_nodes: int = 0,
                 max_nodes: int | None = None,
                 idle_seconds_before_scaledown: int | None = DEFAULT_IDLE_SECONDS_BEFORE_SCALEDOWN,
                 admin_username: str | None = None, admin_user_password: str | None = None,
                 admin_user_ssh_key: str | None = None, vnet_resourcegroup_name: str | None = None,
                 vnet_name: str | None = None, subnet_name: str | None = None, tags: dict[str, str] | None = None,
                 description: str | None = None, remote_login_port_public_access: str = "NotSpecified",
                 identity_type: str | None = None, identity_id: list[str] | None = None,
                 compute_location: str | None = None, enable_node_public_ip: bool = True) -> None:
        self.vm_size = vm_size
        self.vm_priority = vm_priority
        self.min_nodes = min_nodes or 0
        self.max_nodes = max_nodes
        self.idle_seconds_before_scaledown = (DEFAULT_IDLE_SECONDS_BEFORE_SCALEDOWN
                                              if idle_seconds_before_scaledown is None
                                              else idle_seconds_before_scaledown)
        self.admin_username = admin_username
        self.admin_user_password = admin_user_password
        self.admin_user_ssh_key = admin_user_ssh_key
        self.vnet_resourcegroup_name = vnet_resourcegroup_name
        self.vnet_name = vnet_name
        self.subnet_name = subnet_name
        self.tags = tags
        self.description = description
        self.remote_login_port_public_access = remote_login_port_public_access
        self.identity_type = identity_type
        self.identity_id = identity_id
        self.compute_location = compute_location
        self.enable_node_public_ip = enable_node_public_ip
        self.validate_configuration()

    def validate_configuration(self) -> None:
        """v1's checks: credentials, all-or-none vnet, max nodes, identity. Raises ComputeTargetException."""
        if any([self.admin_username, self.admin_user_password, self.admin_user_ssh_key]) and not self.admin_username:
            raise ComputeTargetException("Invalid user credentials, admin username must be provided along with "
                                         "either a password or SSH key information.")
        if self.admin_username:
            if not self.admin_user_password and not self.admin_user_ssh_key:
                raise ComputeTargetException("Invalid user credentials, no password or key information provided. "
                                             "Please provide either a password or SSH key information.")
            if self.admin_user_password and not is_valid_password(self.admin_user_password):
                raise ComputeTargetException("Invalid admin user password provided. The admin user password must "
                                             "have 3 of the following: 1 lowercase character, 1 uppercase "
                                             "character, 1 number, and 1 special character.")
        vnet = [self.vnet_name, self.vnet_resourcegroup_name, self.subnet_name]
        if any(vnet) and not all(vnet):
            raise ComputeTargetException("Invalid configuration, not all virtual net information provided. To use a "
                                         "custom virtual net, please provide vnet name, vnet resource group and "
                                         "subnet name")
        if self.max_nodes is None:
            raise ComputeTargetException("Invalid provisioning configuration, max nodes count is mandatory")
        if self.max_nodes < 0:
            raise ComputeTargetException("Invalid provisioning configuration, max nodes count must be greater than "
                                         "or equal to 0")
        if self.max_nodes < self.min_nodes:
            raise ComputeTargetException("Invalid provisioning configuration, max nodes count must be greater than "
                                         "or equal to min nodes count")
        if self.identity_type:
            validate_identity(self.identity_type, self.identity_id)
        elif self.identity_id:
            raise ComputeTargetException("Invalid configuration, identity_id cannot be set when identity type is "
                                         "not user assigned.")

    def create_request(self) -> dict[str, Any]:
        """Keyword arguments of ``ComputePlaneClient.create_cluster``. Only the fields given are sent, so the
        plain seed configuration works on a server that does not know the newer fields yet."""
        request: dict[str, Any] = {
            "vm_size": self.vm_size or DEFAULT_VM_SIZE, "max_nodes": self.max_nodes, "min_nodes": self.min_nodes,
            "vm_priority": self.vm_priority, "idle_seconds_before_scaledown": self.idle_seconds_before_scaledown,
            "location": self.compute_location, "tags": self.tags or None, "description": self.description,
            "vnet_resourcegroup_name": self.vnet_resourcegroup_name, "vnet_name": self.vnet_name,
            "subnet_name": self.subnet_name, "admin_username": self.admin_username,
            "admin_user_password": self.admin_user_password, "admin_user_ssh_key": self.admin_user_ssh_key,
            "identity_type": self.identity_type, "identity_id": self.identity_id,
        }
        if self.remote_login_port_public_access not in (None, "NotSpecified"):
            request["remote_login_port_public_access"] = self.remote_login_port_public_access
        if self.enable_node_public_ip is False:
            request["enable_node_public_ip"] = False
        return request


def validate_identity(identity_type: str, identity_id: list[str] | None) -> None:
    if identity_type not in ("UserAssigned", "SystemAssigned"):
        raise ComputeTargetException("Invalid configuration, identity_type must be set to 'UserAssigned' or "
                                     "'SystemAssigned'.")
    if identity_type == "UserAssigned" and (not isinstance(identity_id, list) or not identity_id):
        raise ComputeTargetException("Invalid configuration, please pass the identity_id of the user assigned "
                                     "identity as a list (eg. ['resource_ID1','resourceID2',...])")
    if identity_type != "UserAssigned" and identity_id:
        raise ComputeTargetException("Invalid configuration, identity_id cannot be set when identity type is not "
                                     "user assigned.")


def is_valid_password(password: str) -> bool:
    """v1's policy: at least 3 of lowercase, uppercase, digit, special character."""
    characters = set(password)
    classes = (set(string.ascii_lowercase), set(string.ascii_uppercase), set(string.digits),
               PASSWORD_SPECIAL_CHARACTERS)
    return sum(1 for c in classes if characters & c) >= 3
