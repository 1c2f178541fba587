"""Tombstones of deleted clusters: written before the cluster document goes, read by every cluster event.

Written first, so that whenever a cluster of that name can be created again, its predecessor's events are in the
tombstone; a crash between the two writes leaves the cluster in Deleting, and the next reconcile repeats both."""

from __future__ import annotations

import logging

from shared.domain.cluster import Cluster
from shared.domain.events import CloudEvent
from shared.domain.tombstone import bury
from shared.handlers.deps import Deps
from shared.handlers.retry import retry_on_conflict

log = logging.getLogger(__name__)


@retry_on_conflict
def bury_cluster(deps: Deps, cluster: Cluster) -> None:
    tombstone = bury(deps.store.get_tombstone(cluster.workspace, cluster.name), cluster, deps.clock.now())
    if tombstone is not None:
        deps.store.save_tombstone(tombstone)


def meant_for_a_deleted_cluster(deps: Deps, event: CloudEvent) -> bool:
    """Whether a deleted cluster of the event's name already applied it: a late copy, to be dropped. Only cluster
    events ask (they are rare); job and node events are bound to their job document or node instead."""
    tombstone = deps.store.get_tombstone(event.workspace, event.cluster)
    if tombstone is None or not tombstone.knows(event.id, deps.clock.now()):
        return False
    log.info("%s %s was applied by a deleted cluster %s/%s: dropped", event.type, event.id, event.workspace,
             event.cluster)
    return True
