"""Field rules of a cluster spec, as AmlCompute (azureml-core v1) applies them. Each rule raises
``InvalidField(field, rule)`` with a rule a user understands; ``validate_cluster_spec_fields`` runs them all on the
raw values of a create request, at the HTTP edge and in the event handler alike.

Sources of the rules:

- ``AmlComputeProvisioningConfiguration.validate_configuration`` and ``AmlCompute._validate_identity`` in
  azureml-core (credentials, password classes, vnet all-or-none, "max nodes count is mandatory", identity);
- the Azure ML compute name rule: 3 to 24 characters, letters, digits and '-', starting with a letter, a '-'
  followed later by a letter (so ``cpu-cluster`` is valid and ``cpu-cluster-1`` is not); reserved names of v1
  compute targets: ``amlcompute``, ``local``, ``containerinstance``;
- the password length of an Azure Linux VM (AmlCompute nodes run Linux): 6 to 72 characters (ARM ``OSProfile.
  adminPassword``); v1 counts the classes lower, upper, digit and its own list of special characters;
- "clusters scale to 100 nodes with inter-node communication enabled (the default), to thousands with it disabled"
  (the Azure ML docs). Azure documents no number for "thousands": ComputePlane caps at
  ``MAX_NODES_WITHOUT_INTER_NODE_COMMUNICATION``;
- a node without a public IP needs a virtual network (Azure ML "no public IP" clusters live in a subnet);
- Azure documents no upper bound for the idle time before scale-down; ComputePlane caps it at one year
  (``MAX_IDLE_SECONDS_BEFORE_SCALEDOWN``) so that it always makes a valid duration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

from shared.domain.errors import FieldErrors, InvalidField
from shared.domain.identity import is_user_assigned_arm_id
from shared.domain.vm_sizes import DEDICATED, LOW_PRIORITY, VmSize, load_catalogue

NAME_MIN_LENGTH: Final = 3
NAME_MAX_LENGTH: Final = 24
RESERVED_NAMES: Final = frozenset({"amlcompute", "local", "containerinstance"})

VM_PRIORITIES: Final = (DEDICATED, LOW_PRIORITY)
DEFAULT_VM_PRIORITY: Final = DEDICATED
DEFAULT_MIN_NODES: Final = 0
DEFAULT_IDLE_SECONDS_BEFORE_SCALEDOWN: Final = 1800
MAX_IDLE_SECONDS_BEFORE_SCALEDOWN: Final = 365 * 24 * 3600

REMOTE_LOGIN_PORT_PUBLIC_ACCESS_VALUES: Final = ("Enabled", "Disabled", "NotSpecified")
DEFAULT_REMOTE_LOGIN_PORT_PUBLIC_ACCESS: Final = "NotSpecified"
DEFAULT_ENABLE_NODE_PUBLIC_IP: Final = True

INTER_NODE_COMMUNICATION_VALUES: Final = ("Enabled", "Disabled")
DEFAULT_INTER_NODE_COMMUNICATION: Final = "Enabled"
MAX_NODES_WITH_INTER_NODE_COMMUNICATION: Final = 100
MAX_NODES_WITHOUT_INTER_NODE_COMMUNICATION: Final = 4000

IDENTITY_TYPES: Final = ("SystemAssigned", "UserAssigned")
VNET_FIELDS: Final = ("vnet_resourcegroup_name", "vnet_name", "subnet_name")

PASSWORD_MIN_LENGTH: Final = 6
PASSWORD_MAX_LENGTH: Final = 72
PASSWORD_CLASSES_REQUIRED: Final = 3
PASSWORD_SPECIAL_CHARACTERS: Final = "`~!@#$%^&*()=+_[]{}|;:./'\",<>?"

_NAME_CHARACTERS = re.compile(r"[A-Za-z0-9-]+")
_ARM_ID_SHAPE = ("/subscriptions/{subscription-id}/resourcegroups/{resource-group}/providers/"
                 "Microsoft.ManagedIdentity/userAssignedIdentities/{name}")


def validate_cluster_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidField("name", "a compute name is mandatory")
    if not NAME_MIN_LENGTH <= len(name) <= NAME_MAX_LENGTH:
        raise InvalidField("name", f"must be between {NAME_MIN_LENGTH} and {NAME_MAX_LENGTH} characters long "
                                   f"(got {len(name)})")
    if not _NAME_CHARACTERS.fullmatch(name):
        raise InvalidField("name", "valid characters are upper and lower case letters, digits and the - character")
    if not name[0].isalpha():
        raise InvalidField("name", "must start with a letter")
    if "-" in name and not any(c.isalpha() for c in name[name.rindex("-"):]):
        raise InvalidField("name", "a '-' must be followed by at least one letter later in the name "
                                   "(e.g. 'cpu-cluster', not 'cpu-cluster-1')")
    if name.lower() in RESERVED_NAMES:
        raise InvalidField("name", f"'{name}' is a reserved name ({', '.join(sorted(RESERVED_NAMES))})")
    return name


def validate_vm_size(vm_size: object, location: object = None) -> VmSize:
    """The catalogue entry of ``vm_size`` (any case), offered in ``location`` when one is given."""
    if not isinstance(vm_size, str) or not vm_size:
        raise InvalidField("vm_size", "a VM size is mandatory (e.g. 'Standard_D2_v2')")
    if location is not None and not isinstance(location, str):
        raise InvalidField("location", "must be an Azure region name such as 'eastus'")
    return load_catalogue().get(vm_size, location or None)


def validate_vm_priority(vm_priority: object) -> str:
    if vm_priority not in VM_PRIORITIES:
        raise InvalidField("vm_priority", f"must be one of {', '.join(VM_PRIORITIES)} (got {vm_priority!r})")
    return str(vm_priority)


def _whole_number(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidField(field, f"must be a whole number (got {value!r})")
    return value


def validate_node_counts(min_nodes: object, max_nodes: object) -> tuple[int, int]:
    """(min_nodes, max_nodes) with 0 <= min_nodes <= max_nodes; max_nodes is mandatory."""
    if max_nodes is None:
        raise InvalidField("max_nodes", "max nodes count is mandatory")
    maximum = _whole_number("max_nodes", max_nodes)
    minimum = _whole_number("min_nodes", DEFAULT_MIN_NODES if min_nodes is None else min_nodes)
    if minimum < 0:
        raise InvalidField("min_nodes", "min nodes count must be greater than or equal to 0")
    if maximum < 0:
        raise InvalidField("max_nodes", "max nodes count must be greater than or equal to 0")
    if maximum < minimum:
        raise InvalidField("max_nodes", f"max nodes count ({maximum}) must be greater than or equal to "
                                        f"min nodes count ({minimum})")
    return minimum, maximum


def validate_inter_node_communication(inter_node_communication: object, max_nodes: int) -> str:
    """More than 100 nodes only with inter-node communication disabled, and never above the ComputePlane cap."""
    if inter_node_communication not in INTER_NODE_COMMUNICATION_VALUES:
        raise InvalidField("inter_node_communication",
                           f"must be one of {', '.join(INTER_NODE_COMMUNICATION_VALUES)} "
                           f"(got {inter_node_communication!r})")
    if inter_node_communication == "Enabled" and max_nodes > MAX_NODES_WITH_INTER_NODE_COMMUNICATION:
        raise InvalidField("max_nodes", f"a cluster with inter-node communication enabled scales to at most "
                                        f"{MAX_NODES_WITH_INTER_NODE_COMMUNICATION} nodes; set "
                                        f"inter_node_communication to Disabled to go beyond (got {max_nodes})")
    if max_nodes > MAX_NODES_WITHOUT_INTER_NODE_COMMUNICATION:
        raise InvalidField("max_nodes", f"must be at most {MAX_NODES_WITHOUT_INTER_NODE_COMMUNICATION} nodes "
                                        f"(got {max_nodes})")
    return str(inter_node_communication)


def validate_idle_seconds_before_scaledown(idle_seconds: object) -> int:
    seconds = _whole_number("idle_seconds_before_scaledown", idle_seconds)
    if not 0 <= seconds <= MAX_IDLE_SECONDS_BEFORE_SCALEDOWN:
        raise InvalidField("idle_seconds_before_scaledown",
                           f"must be between 0 and {MAX_IDLE_SECONDS_BEFORE_SCALEDOWN} seconds (got {seconds})")
    return seconds


def validate_vnet(vnet_resourcegroup_name: object, vnet_name: object, subnet_name: object) -> bool:
    """True when a virtual network is given: all three names or none."""
    values = dict(zip(VNET_FIELDS, (vnet_resourcegroup_name, vnet_name, subnet_name), strict=True))
    for field, value in values.items():
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidField(field, "must be a non-empty name")
    missing = [field for field, value in values.items() if value is None]
    if missing and len(missing) < len(VNET_FIELDS):
        raise InvalidField(missing[0], "not all virtual network information provided: give vnet_resourcegroup_name, "
                                       f"vnet_name and subnet_name together, or none (missing: {', '.join(missing)})")
    return not missing


def validate_enable_node_public_ip(enable_node_public_ip: object, has_vnet: bool) -> bool:
    if not isinstance(enable_node_public_ip, bool):
        raise InvalidField("enable_node_public_ip", f"must be true or false (got {enable_node_public_ip!r})")
    if not enable_node_public_ip and not has_vnet:
        raise InvalidField("enable_node_public_ip", "nodes without a public IP need a virtual network: give "
                                                    "vnet_resourcegroup_name, vnet_name and subnet_name")
    return enable_node_public_ip


def validate_password(password: object) -> str:
    """Azure Linux VM length and v1's 3-of-4 character classes. The password never appears in the error."""
    if not isinstance(password, str):
        raise InvalidField("admin_user_password", "must be a string")
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise InvalidField("admin_user_password", f"must be between {PASSWORD_MIN_LENGTH} and "
                                                  f"{PASSWORD_MAX_LENGTH} characters long")
    classes = (
        any(c.islower() and c.isascii() for c in password),
        any(c.isupper() and c.isascii() for c in password),
        any(c.isdigit() and c.isascii() for c in password),
        any(c in PASSWORD_SPECIAL_CHARACTERS for c in password),
    )
    if sum(classes) < PASSWORD_CLASSES_REQUIRED:
        raise InvalidField("admin_user_password", "the admin user password must have 3 of the following: "
                                                  "1 lowercase character, 1 uppercase character, 1 number, and "
                                                  f"1 special character {PASSWORD_SPECIAL_CHARACTERS}")
    return password


def validate_admin_credentials(admin_username: object, admin_user_password: object,
                               admin_user_ssh_key: object) -> None:
    """A password or SSH key needs a username; a username needs a password or an SSH key."""
    for field, value in (("admin_username", admin_username), ("admin_user_ssh_key", admin_user_ssh_key)):
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidField(field, "must be a non-empty string")
    if admin_username is None:
        if admin_user_password is not None or admin_user_ssh_key is not None:
            raise InvalidField("admin_username", "admin username must be provided along with either a password or "
                                                 "SSH key information")
        return
    if admin_user_password is None and admin_user_ssh_key is None:
        raise InvalidField("admin_user_password", "no password or key information provided: give "
                                                  "admin_user_password or admin_user_ssh_key with admin_username")
    if admin_user_password is not None:
        validate_password(admin_user_password)


def validate_remote_login_port_public_access(value: object) -> str:
    if value not in REMOTE_LOGIN_PORT_PUBLIC_ACCESS_VALUES:
        raise InvalidField("remote_login_port_public_access",
                           f"must be one of {', '.join(REMOTE_LOGIN_PORT_PUBLIC_ACCESS_VALUES)} (got {value!r})")
    return str(value)


def validate_arm_identity_id(identity_id: object) -> str:
    """A user-assigned identity's ARM resource id (segments compare without case, as ARM does)."""
    if not isinstance(identity_id, str) or identity_id != identity_id.strip() or not is_user_assigned_arm_id(
            identity_id):
        raise InvalidField("identity_id", f"{identity_id!r} is not a user-assigned identity resource id of the "
                                          f"form {_ARM_ID_SHAPE}")
    return identity_id


def validate_identity(identity_type: object, identity_id: object) -> None:
    """SystemAssigned, or UserAssigned with a non-empty list of identity ids; ids only with UserAssigned."""
    if identity_type is None:
        if identity_id is not None:
            raise InvalidField("identity_id", "identity_id cannot be set when identity type is not UserAssigned")
        return
    if identity_type not in IDENTITY_TYPES:
        raise InvalidField("identity_type", f"must be one of {', '.join(IDENTITY_TYPES)} (got {identity_type!r})")
    if identity_type != "UserAssigned":
        if identity_id is not None:
            raise InvalidField("identity_id", "identity_id cannot be set when identity type is not UserAssigned")
        return
    if isinstance(identity_id, str) or not isinstance(identity_id, Sequence) or not identity_id:
        raise InvalidField("identity_id", "a UserAssigned identity needs identity_id as a non-empty list of "
                                          f"resource ids ({_ARM_ID_SHAPE})")
    seen: set[str] = set()
    for one_id in identity_id:
        key = validate_arm_identity_id(one_id).lower()
        if key in seen:
            raise InvalidField("identity_id", f"identity '{one_id}' is listed twice")
        seen.add(key)


def validate_tags(tags: object) -> None:
    if not isinstance(tags, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise InvalidField("tags", "must be a mapping of string keys to string values")


def validate_description(description: object) -> None:
    if not isinstance(description, str):
        raise InvalidField("description", "must be a string")


def _value_or_default(fields: Mapping[str, object], name: str, default: object) -> object:
    """A field's raw value; an absent field or an explicit null takes the default."""
    value = fields.get(name)
    return default if value is None else value


def validate_cluster_spec_fields(fields: Mapping[str, object]) -> None:
    """Every field rule on the raw values of a cluster create request. Absent (or null) optional fields take the
    v1 defaults. Every broken rule is reported: one as ``InvalidField``, several as ``InvalidFields``."""
    found = FieldErrors()
    found.check(validate_cluster_name, fields.get("name"), default=None)
    found.check(validate_vm_size, fields.get("vm_size"), fields.get("location"), default=None)
    found.check(validate_vm_priority, _value_or_default(fields, "vm_priority", DEFAULT_VM_PRIORITY), default=None)
    counts = found.check(validate_node_counts, fields.get("min_nodes"), fields.get("max_nodes"), default=None)
    if counts is not None:  # the node-count rules need a valid max_nodes
        found.check(validate_inter_node_communication,
                    _value_or_default(fields, "inter_node_communication", DEFAULT_INTER_NODE_COMMUNICATION),
                    counts[1], default=None)
    found.check(validate_idle_seconds_before_scaledown,
                _value_or_default(fields, "idle_seconds_before_scaledown", DEFAULT_IDLE_SECONDS_BEFORE_SCALEDOWN),
                default=None)
    has_vnet = found.check(validate_vnet, fields.get("vnet_resourcegroup_name"), fields.get("vnet_name"),
                           fields.get("subnet_name"), default=True)  # a broken vnet is reported once, not twice
    found.check(validate_enable_node_public_ip,
                _value_or_default(fields, "enable_node_public_ip", DEFAULT_ENABLE_NODE_PUBLIC_IP), has_vnet,
                default=None)
    found.check(validate_admin_credentials, fields.get("admin_username"), fields.get("admin_user_password"),
                fields.get("admin_user_ssh_key"), default=None)
    found.check(validate_remote_login_port_public_access,
                _value_or_default(fields, "remote_login_port_public_access", DEFAULT_REMOTE_LOGIN_PORT_PUBLIC_ACCESS),
                default=None)
    found.check(validate_identity, fields.get("identity_type"), fields.get("identity_id"), default=None)
    if fields.get("tags") is not None:
        found.check(validate_tags, fields["tags"], default=None)
    if fields.get("description") is not None:
        found.check(validate_description, fields["description"], default=None)
    found.raise_if_any()


def scale_settings_warnings(max_nodes: int) -> list[str]:
    """What a valid but surprising scale setting deserves: a warning on the cluster."""
    if max_nodes == 0:
        return ["max_nodes is 0: the cluster keeps no nodes and no job can run on it (as AmlCompute allows, e.g. to "
                "pause a cluster); raise max_nodes to run jobs"]
    return []
