"""Which events were applied, and how often: read from what the handlers write, not from what they say.

``LedgerStore`` wraps the real store. On each successful cluster write it notes the event keys (``applied_event_key``)
that the write added to the cluster's ``applied_events`` (saved in the same write as the change it caused), so one
counted twice for the same cluster (the same uid: a deleted and re-created cluster is another one) is an event whose
change was applied twice.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from shared.domain import events as ev
from shared.domain.cluster import Cluster, applied_event_key
from shared.domain.job import Job
from shared.domain.node_history import NodeHistoryArchive
from shared.ports import Store
from tests.reliability.broker import DeadLetter

# Events whose change is recorded under their id; the others only wake a level-triggered reconcile.
RECORDED_TYPES = frozenset({ev.CLUSTER_UPDATE, ev.CLUSTER_DELETE, ev.JOB_SUBMIT, ev.JOB_CANCEL})


class LedgerStore:
    def __init__(self, inner: Store, applied: Counter[tuple[str, str]] | None = None,
                 lock: threading.Lock | None = None) -> None:
        """``applied`` ((cluster uid, event id) -> times) and ``lock`` may be shared by several workers' ledgers."""
        self.inner = inner
        self.applied: Counter[tuple[str, str]] = Counter() if applied is None else applied
        self._lock = lock or threading.Lock()

    def _note(self, before: Cluster | None, after: Cluster) -> None:
        old = set(before.applied_keys()) if before else set()
        with self._lock:
            self.applied.update((after.uid, e) for e in after.applied_keys() if e not in old)

    def create_cluster(self, cluster: Cluster) -> Cluster:
        created = self.inner.create_cluster(cluster)
        self._note(None, created)
        return created

    def replace_cluster(self, cluster: Cluster) -> Cluster:
        before = self.inner.get_cluster(cluster.workspace, cluster.name)
        read_as = before if before is not None and before.etag == cluster.etag else None
        saved = self.inner.replace_cluster(cluster)  # conditional: fails unless ``read_as`` is what is stored
        if read_as is not None:
            self._note(read_as, saved)
        return saved

    def replace_cluster_with_jobs(self, cluster: Cluster, jobs: Sequence[Job],
                                  archive: NodeHistoryArchive | None = None) -> Cluster:
        before = self.inner.get_cluster(cluster.workspace, cluster.name)
        read_as = before if before is not None and before.etag == cluster.etag else None
        saved = self.inner.replace_cluster_with_jobs(cluster, jobs, archive)
        if read_as is not None:
            self._note(read_as, saved)
        return saved

    def delete_cluster(self, cluster: Cluster) -> None:
        before = self.inner.get_cluster(cluster.workspace, cluster.name)
        read_as = before if before is not None and before.etag == cluster.etag else None
        self.inner.delete_cluster(cluster)
        if read_as is not None:
            self._note(read_as, cluster)

    def __getattr__(self, name: str) -> Any:  # every other Store call, unwatched
        return getattr(self.inner, name)


def check_events(sent: dict[str, bytes], recorded: Iterable[str], ledger: LedgerStore, completed: Counter[str],
                 dead_letters: list[DeadLetter]) -> list[str]:
    """Every event sent was applied at most once, and either handled to the end or dead-lettered with a reason
    and its original body. ``sent`` maps event ids to their bodies; ``recorded`` are the ids of recorded types."""
    broken: list[str] = []
    dead = {d.message_id: d for d in dead_letters}
    ids = {applied_event_key(e): e for e in recorded}  # the cluster keeps keys of ids
    twice = {e: n for (_, e), n in ledger.applied.items() if n > 1}
    broken += [f"event {ids[e]} was applied {n} times" for e, n in twice.items() if e in ids]
    for event_id, body in sent.items():
        letter = dead.get(event_id)
        if letter is not None:
            if not letter.reason:
                broken.append(f"event {event_id} was dead-lettered without a reason")
            if letter.body != body:
                broken.append(f"event {event_id} was dead-lettered without its original body")
        elif not completed[event_id]:
            broken.append(f"event {event_id} was neither handled nor dead-lettered: lost")
    return broken
