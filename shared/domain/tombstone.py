"""What a deleted cluster leaves behind, so that events meant for it never touch a later cluster of that name.

A cluster is addressed by workspace and name, and the name is free again as soon as the cluster is gone. Events
carry the name, not the incarnation: a create re-sent by a producer after the broker's duplicate window
(10 minutes), or a copy redelivered on a queue without sessions, can arrive after the delete and would bring the
cluster back; a late delete would delete the next cluster of that name. So the tombstone of a name keeps, for each
incarnation deleted in the last ``TOMBSTONE_KEPT``, the events it applied (its create's id and the keys of its last
``APPLIED_EVENTS_KEPT`` others, see ``applied_event_key``). A cluster event found there is stale and is dropped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from shared.domain.cluster import Cluster, applied_event_key
from shared.domain.utc import UtcDatetime

# Longer than any redelivery: Service Bus' longest duplicate window and message time-to-live people set for events.
TOMBSTONE_KEPT = timedelta(days=7)
INCARNATIONS_KEPT = 10  # a name deleted and created again more often than this in a week forgets the oldest


class BuriedIncarnation(BaseModel):
    uid: str
    deleted_at: UtcDatetime
    event_ids: list[str]


class ClusterTombstone(BaseModel):
    """One document per cluster name that was ever deleted. ``etag`` as for clusters: the version read."""

    workspace: str
    name: str
    incarnations: list[BuriedIncarnation] = Field(default_factory=list)  # oldest first
    etag: str | None = Field(default=None, exclude=True)

    def remembered(self, now: datetime) -> list[BuriedIncarnation]:
        return [i for i in self.incarnations if now - i.deleted_at < TOMBSTONE_KEPT]

    def knows(self, event_id: str, now: datetime) -> bool:
        """Whether a deleted incarnation applied this event (kept as its create's id and others' keys)."""
        key = applied_event_key(event_id)  # (a prefix of the longer keys tombstones written before kept)
        return any(event_id in i.event_ids or any(e.startswith(key) for e in i.event_ids)
                   for i in self.remembered(now))


def bury(tombstone: ClusterTombstone | None, cluster: Cluster, now: datetime) -> ClusterTombstone | None:
    """The tombstone with ``cluster`` recorded in it, or None when it is recorded already (nothing to write).

    Safe to repeat: a delete retried after a crash finds its incarnation there and writes nothing."""
    event_ids = [cluster.created_by_event] if cluster.created_by_event else []
    created = {cluster.created_by_event, applied_event_key(cluster.created_by_event or "")}
    event_ids += [e for e in cluster.applied_keys() if e not in created]
    current = tombstone or ClusterTombstone(workspace=cluster.workspace, name=cluster.name)
    if any(i.uid == cluster.uid and i.event_ids == event_ids for i in current.incarnations):
        return None
    others = [i for i in current.remembered(now) if i.uid != cluster.uid]
    buried = BuriedIncarnation(uid=cluster.uid, deleted_at=now, event_ids=event_ids)
    return current.model_copy(update={"incarnations": [*others[-(INCARNATIONS_KEPT - 1):], buried]})
