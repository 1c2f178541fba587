"""add_identity / remove_identity: applied at once (the status shows it), then the event makes it durable for
other systems and reconciles. Removed identities stop getting tokens at once."""

from __future__ import annotations

import uuid
from datetime import datetime

from shared.domain import events as ev
from shared.domain.actions import Action
from shared.domain.cluster import Cluster
from shared.domain.cluster_identity import add_identity, remove_identity
from shared.domain.events import CloudEvent
from shared.domain.identity import ManagedIdentity
from shared.domain.requests import IdentityAssignment, IdentityRemoval
from shared.handlers.deps import Deps
from shared.handlers.reconcile import reconcile_cluster
from shared.handlers.retry import retry_on_conflict
from shared.handlers.use_cases import get_cluster


@retry_on_conflict
def assign_identity(deps: Deps, workspace: str, name: str, body: IdentityAssignment) -> Cluster:
    cluster = get_cluster(deps, workspace, name)
    event_id = uuid.uuid4().hex
    if add_identity(cluster, body.identity_type, body.identity_id):
        cluster.record_applied(event_id)  # the event below finds its change already made
        cluster = deps.store.replace_cluster(cluster)
        deps.bus.publish(ev.new_event(ev.CLUSTER_IDENTITY_ADD, workspace, name, body.model_dump(mode="json"),
                                      event_id=event_id, time=deps.clock.now()))
    return cluster


@retry_on_conflict
def unassign_identity(deps: Deps, workspace: str, name: str, body: IdentityRemoval) -> Cluster:
    cluster = get_cluster(deps, workspace, name)
    event_id = uuid.uuid4().hex
    removed = remove_identity(cluster, body.identity_id)
    cluster.record_applied(event_id)
    cluster = deps.store.replace_cluster(cluster)
    revoke(deps, cluster, removed)
    deps.bus.publish(ev.new_event(ev.CLUSTER_IDENTITY_REMOVE, workspace, name, body.model_dump(mode="json"),
                                  event_id=event_id, time=deps.clock.now()))
    return cluster


def revoke(deps: Deps, cluster: Cluster, identities: list[ManagedIdentity]) -> None:
    """A system-assigned identity dies with its assignment; a user-assigned one only leaves this cluster."""
    for identity in identities:
        scope = None if identity.kind == "SystemAssigned" else f"{cluster.workspace}/{cluster.name}"
        deps.tokens.revoke_identity(identity.client_id, scope)


def on_identity_add(event: CloudEvent, deps: Deps, body: IdentityAssignment) -> None:
    def change(cluster: Cluster, now: datetime) -> list[Action]:
        add_identity(cluster, body.identity_type, body.identity_id)
        return []

    reconcile_cluster(deps, event.workspace, event.cluster, change, event.id)


def on_identity_remove(event: CloudEvent, deps: Deps, body: IdentityRemoval) -> None:
    removed: list[ManagedIdentity] = []

    def change(cluster: Cluster, now: datetime) -> list[Action]:
        removed[:] = remove_identity(cluster, body.identity_id)
        return []

    cluster = reconcile_cluster(deps, event.workspace, event.cluster, change, event.id)
    if cluster is not None:
        revoke(deps, cluster, removed)
