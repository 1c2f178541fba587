"""Managed identities of a compute cluster, and which one a job's token request means. Pure: no I/O, no Azure SDK.

AmlCompute rules kept here: a cluster has one system-assigned identity or one or more user-assigned identities,
never both; the default identity is the system-assigned one or the first user-assigned one. A user-assigned
identity is a standalone Azure resource shared by many clusters, so its client and principal ids are derived
from its ARM id: the same identity has the same client id on every cluster, as in Azure.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

from shared.domain.errors import DomainError, InvalidField

IdentityKind = Literal["SystemAssigned", "UserAssigned"]

# Fixed namespace so uuid5(namespace, arm id) is stable across processes, machines and releases.
# Changing it would give every user-assigned identity new ids and break DEFAULT_IDENTITY_CLIENT_ID of live jobs.
IDENTITY_ID_NAMESPACE = uuid.UUID("6f1f3c2e-8a4b-5d7e-9c0a-1b2c3d4e5f60")

# Stand-ins for the parts of a compute's ARM id that the local control plane does not know.
LOCAL_SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
LOCAL_RESOURCE_GROUP = "computeplane-local"

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
# ARM ids are case-insensitive in their keywords (Azure itself returns both "resourcegroups" and "resourceGroups").
_USER_ASSIGNED_ARM_ID = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)"
    r"/resourcegroups/(?P<resource_group>[^/]+)"
    r"/providers/microsoft\.managedidentity/userassignedidentities/(?P<name>[^/]+)$",
    re.IGNORECASE,
)
# Azure's naming rules for resource groups and user-assigned identities.
_RESOURCE_GROUP_NAME = re.compile(r"^[-\w.()]{0,89}[-\w()]$")
_IDENTITY_NAME = re.compile(r"^[A-Za-z0-9][-\w]{2,127}$", re.ASCII)

ARM_ID_RULE = (
    "must be /subscriptions/{subscription-guid}/resourcegroups/{resource-group}"
    "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
)


def _guid(value: str) -> str:
    if not _GUID.match(value):
        raise InvalidField("identity id", f"'{value}' is not a GUID")
    return value.lower()


Guid = Annotated[str, AfterValidator(_guid)]


class ManagedIdentity(BaseModel):
    """One Entra service principal a job can get tokens for. ``principal_id`` is what Azure calls the object id."""

    model_config = ConfigDict(frozen=True)

    kind: IdentityKind
    client_id: Guid
    principal_id: Guid
    # The ARM id: of the user-assigned identity resource, or (system-assigned) of the compute that owns it.
    resource_id: str | None = None

    @model_validator(mode="after")
    def _user_assigned_has_arm_id(self) -> ManagedIdentity:
        if self.kind == "UserAssigned":
            if self.resource_id is None:
                raise InvalidField("identity_id", "a user-assigned identity needs its ARM id")
            parse_user_assigned_arm_id(self.resource_id)
        return self

    @property
    def name(self) -> str:
        """The identity's resource name, or for a system-assigned identity the name of its compute."""
        if self.resource_id is None:
            return self.client_id
        return self.resource_id.rstrip("/").rsplit("/", 1)[-1]

    @property
    def description(self) -> str:
        if self.kind == "SystemAssigned":
            return f"the system-assigned identity of compute '{self.name}'"
        return f"the user-assigned identity '{self.name}'"


def parse_user_assigned_arm_id(arm_id: str) -> tuple[str, str, str]:
    """(subscription, resource group, name) of a user-assigned identity's ARM id; InvalidField if malformed."""
    match = _USER_ASSIGNED_ARM_ID.match(arm_id.strip())
    if match is None:
        raise InvalidField("identity_id", f"'{arm_id}' {ARM_ID_RULE}")
    subscription, resource_group, name = match.group("subscription", "resource_group", "name")
    if not _GUID.match(subscription):
        raise InvalidField("identity_id", f"subscription '{subscription}' in '{arm_id}' is not a GUID")
    if not _RESOURCE_GROUP_NAME.match(resource_group):
        raise InvalidField("identity_id", f"resource group '{resource_group}' in '{arm_id}' is not a valid name")
    if not _IDENTITY_NAME.match(name):
        raise InvalidField("identity_id", f"identity name '{name}' in '{arm_id}' is not a valid name "
                                          "(3-128 letters, digits, '-' or '_', starting with a letter or digit)")
    return subscription.lower(), resource_group, name


def is_user_assigned_arm_id(arm_id: str) -> bool:
    """Whether ``arm_id`` is a well-formed user-assigned identity's ARM id (the rules of
    ``parse_user_assigned_arm_id``: the one pattern of such ids)."""
    try:
        parse_user_assigned_arm_id(arm_id)
    except InvalidField:
        return False
    return True


def canonical_user_assigned_arm_id(arm_id: str) -> str:
    """The ARM id with Azure's casing of its keywords; names are kept as given (Azure preserves their case)."""
    subscription, resource_group, name = parse_user_assigned_arm_id(arm_id)
    return (f"/subscriptions/{subscription}/resourceGroups/{resource_group}"
            f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}")


def user_assigned_from_arm_id(arm_id: str, *, namespace: uuid.UUID = IDENTITY_ID_NAMESPACE) -> ManagedIdentity:
    """The user-assigned identity named by ``arm_id``, with ids that depend only on the ARM id.

    ARM ids compare case-insensitively, so the ids are derived from the lower-cased canonical form: two spellings of
    the same identity get the same client id, on every cluster it is assigned to.
    """
    canonical = canonical_user_assigned_arm_id(arm_id)
    key = canonical.lower()
    return ManagedIdentity(
        kind="UserAssigned",
        client_id=str(uuid.uuid5(namespace, f"client:{key}")),
        principal_id=str(uuid.uuid5(namespace, f"principal:{key}")),
        resource_id=canonical,
    )


def compute_arm_id(workspace: str, cluster: str, *, subscription_id: str = LOCAL_SUBSCRIPTION_ID,
                   resource_group: str = LOCAL_RESOURCE_GROUP) -> str:
    return (f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{workspace}/computes/{cluster}")


def new_system_assigned(workspace: str, cluster: str, uuid_factory: Callable[[], uuid.UUID], *,
                        subscription_id: str = LOCAL_SUBSCRIPTION_ID,
                        resource_group: str = LOCAL_RESOURCE_GROUP) -> ManagedIdentity:
    """A fresh system-assigned identity. Random ids, as in Azure: a cluster deleted and created again under the same
    name gets a new identity, so grants given to the old one never apply to the new one."""
    return ManagedIdentity(
        kind="SystemAssigned",
        client_id=str(uuid_factory()),
        principal_id=str(uuid_factory()),
        resource_id=compute_arm_id(workspace, cluster, subscription_id=subscription_id,
                                   resource_group=resource_group),
    )


def default_identity(identities: Sequence[ManagedIdentity]) -> ManagedIdentity | None:
    """The system-assigned identity, else the first user-assigned one, else None (the AmlCompute rule)."""
    for identity in identities:
        if identity.kind == "SystemAssigned":
            return identity
    return identities[0] if identities else None


class ClusterIdentity(BaseModel):
    """The identity block of a cluster: none, one system-assigned identity, or user-assigned identities in order."""

    model_config = ConfigDict(frozen=True)

    type: IdentityKind | None = None
    identities: tuple[ManagedIdentity, ...] = ()

    @model_validator(mode="after")
    def _one_kind_only(self) -> ClusterIdentity:
        kinds = {identity.kind for identity in self.identities}
        if self.type is None and self.identities:
            raise InvalidField("identity_type", "identities were given without an identity type")
        if self.type is not None and not self.identities:
            raise InvalidField("identity_type", f"{self.type} needs at least one identity")
        if len(kinds) > 1 or (self.type is not None and kinds != {self.type}):
            raise InvalidField("identity_type", "a cluster has a system-assigned identity or user-assigned "
                                                "identities, never both")
        if self.type == "SystemAssigned" and len(self.identities) != 1:
            raise InvalidField("identity_type", "a cluster has at most one system-assigned identity")
        client_ids = [identity.client_id for identity in self.identities]
        if len(set(client_ids)) != len(client_ids):
            raise InvalidField("identity_id", "the same identity is listed twice")
        return self

    @property
    def default(self) -> ManagedIdentity | None:
        return default_identity(self.identities)


class NoManagedIdentityAssigned(DomainError):
    code = "NoManagedIdentityAssigned"

    def __init__(self) -> None:
        super().__init__("The compute has no managed identity assigned. Create the cluster with identity_type "
                         "SystemAssigned or UserAssigned, or add one with add_identity.")


class ManagedIdentityNotFound(DomainError):
    """Azure's wording, so users can search for it; on purpose it does not say whether the id exists elsewhere."""

    code = "ManagedIdentityNotFound"

    def __init__(self) -> None:
        super().__init__("No User Assigned or Delegated Managed Identity found for specified "
                         "ClientId/ResourceId/PrincipalId.")


class ObjectIdGivenAsClientId(DomainError):
    """The most common mistake with ManagedIdentityCredential: the portal shows the object id first."""

    code = "ObjectIdGivenAsClientId"

    def __init__(self, value: str, identity: ManagedIdentity) -> None:
        super().__init__(
            f"A client id was expected, but '{value}' is the object (principal) id of {identity.description}. "
            f"Use its client id '{identity.client_id}', for example "
            "ManagedIdentityCredential(client_id=os.environ['DEFAULT_IDENTITY_CLIENT_ID']).")
        self.identity = identity


def select_identity(identities: Sequence[ManagedIdentity], *, client_id: str | None = None,
                    principal_id: str | None = None, resource_id: str | None = None) -> ManagedIdentity:
    """The identity a token request asks for, among those it may use. No selector means the default identity."""
    given = [name for name, value in (("client_id", client_id), ("object_id", principal_id),
                                      ("resource_id", resource_id)) if value]
    if len(given) > 1:
        raise InvalidField(" and ".join(given), "give only one of client_id, object_id or resource id")
    if not identities:
        raise NoManagedIdentityAssigned()
    if client_id:
        wanted = client_id.strip().lower()
        for identity in identities:
            if identity.client_id == wanted:
                return identity
        for identity in identities:
            if identity.principal_id == wanted:
                raise ObjectIdGivenAsClientId(client_id, identity)
        raise ManagedIdentityNotFound()
    if principal_id:
        wanted = principal_id.strip().lower()
        return _first(identity for identity in identities if identity.principal_id == wanted)
    if resource_id:
        wanted = resource_id.strip().lower()
        return _first(identity for identity in identities
                      if identity.resource_id is not None and identity.resource_id.lower() == wanted)
    found = default_identity(identities)
    assert found is not None  # identities is not empty
    return found


def _first(candidates: Iterable[ManagedIdentity]) -> ManagedIdentity:
    found = next(iter(candidates), None)
    if found is None:
        raise ManagedIdentityNotFound()
    return found
