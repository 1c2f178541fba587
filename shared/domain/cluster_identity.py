"""Assigning and removing a cluster's managed identities (AmlCompute's add_identity / remove_identity)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from shared.domain.cluster import Cluster
from shared.domain.errors import InvalidField, OperationNotAllowed
from shared.domain.identity import (
    ClusterIdentity,
    IdentityKind,
    ManagedIdentity,
    canonical_user_assigned_arm_id,
    new_system_assigned,
    user_assigned_from_arm_id,
)
from shared.domain.validation import validate_identity


def requested_identity(workspace: str, cluster: str, identity_type: str | None, identity_ids: Sequence[str] | None,
                       uuid_factory: Callable[[], uuid.UUID] = uuid.uuid4) -> ClusterIdentity:
    validate_identity(identity_type, list(identity_ids) if identity_ids is not None else None)
    if identity_type is None:
        return ClusterIdentity()
    if identity_type == "SystemAssigned":
        return ClusterIdentity(type="SystemAssigned",
                               identities=(new_system_assigned(workspace, cluster, uuid_factory),))
    return ClusterIdentity(type="UserAssigned",
                           identities=tuple(user_assigned_from_arm_id(i) for i in identity_ids or ()))


def same_identity_request(current: ClusterIdentity, identity_type: str | None,
                          identity_ids: Sequence[str] | None) -> bool:
    """Whether a create asks for the identity the cluster already has (system ids are random, so compare kinds)."""
    if current.type != identity_type:
        return False
    if identity_type != "UserAssigned":
        return True
    wanted = [canonical_user_assigned_arm_id(i).lower() for i in identity_ids or ()]
    return wanted == [(i.resource_id or "").lower() for i in current.identities]


def add_identity(cluster: Cluster, identity_type: str, identity_ids: Sequence[str] | None,
                 uuid_factory: Callable[[], uuid.UUID] = uuid.uuid4) -> bool:
    """Returns whether anything changed. A cluster never holds both kinds (AmlCompute's rule)."""
    requested = requested_identity(cluster.workspace, cluster.name, identity_type, identity_ids, uuid_factory)
    current = cluster.identity
    if current.type is not None and current.type != requested.type:
        raise InvalidField("identity_type", f"the cluster has a {current.type} identity; a cluster has a "
                                            "system-assigned identity or user-assigned identities, never both "
                                            "(remove the current identity first)")
    if requested.type == "SystemAssigned":
        if current.type == "SystemAssigned":
            return False
        cluster.identity = requested
        return True
    known = {i.client_id for i in current.identities}
    added = tuple(i for i in requested.identities if i.client_id not in known)
    if not added:
        return False
    kind: IdentityKind = "UserAssigned"
    cluster.identity = ClusterIdentity(type=kind, identities=current.identities + added)
    return True


def remove_identity(cluster: Cluster, identity_ids: Sequence[str] | None) -> list[ManagedIdentity]:
    """Remove all identities (no ids) or the listed user-assigned ones; returns what was removed."""
    current = cluster.identity
    if current.type is None:
        raise OperationNotAllowed("The compute has no identity assigned")
    if not identity_ids:
        cluster.identity = ClusterIdentity()
        return list(current.identities)
    wanted = {canonical_user_assigned_arm_id(i).lower() for i in identity_ids}
    removed = [i for i in current.identities if (i.resource_id or "").lower() in wanted]
    missing = wanted - {(i.resource_id or "").lower() for i in removed}
    if missing:
        raise InvalidField("identity_id", f"not assigned to this cluster: {', '.join(sorted(missing))}")
    kept = tuple(i for i in current.identities if i not in removed)
    cluster.identity = ClusterIdentity(type=current.type if kept else None, identities=kept)
    return removed
