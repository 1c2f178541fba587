"""The phases of one decision (shared/handlers/decision.py) in the order its docstring gives, seen as the store sees
them: quota increases before the cluster's commit, the tombstone before a deleted cluster goes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.api.dashboard import node_timeline
from shared.domain import events as ev
from shared.domain.errors import ConcurrencyConflict
from shared.domain.node_history import SAMPLES_IN_CLUSTER, SAMPLES_LEFT_IN_CLUSTER, record_node_counts, samples_of
from shared.handlers.deps import Deps
from shared.handlers.messages import handle_message
from tests.fakes.deps import handler_deps
from tests.fakes.store import InMemoryStore

WRITES = ("create_cluster", "replace_cluster", "replace_cluster_with_jobs", "delete_cluster", "create_job",
          "replace_job", "save_quota_ledger", "save_tombstone", "save_node_history_archive")


class WriteLog(InMemoryStore):
    """The in-memory store, noting each write that succeeded, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.conflicts: list[str] = []  # writes to refuse once each, as if someone had written first

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if name not in WRITES:
            return attribute

        def noted(*args: Any, **kwargs: Any) -> Any:
            if name in self.conflicts:
                self.conflicts.remove(name)
                raise ConcurrencyConflict(f"{name}: written meanwhile")
            result = attribute(*args, **kwargs)
            self.writes.append(name)
            return result
        return noted


@pytest.fixture
def deps(tmp_path: Path) -> Iterator[Deps]:
    with handler_deps(tmp_path, WriteLog()) as (built, _):
        yield built


def deliver(deps: Deps, event: ev.CloudEvent) -> None:
    handle_message(event.queue, event.id, event.to_json(), deps)


def writes(deps: Deps) -> list[str]:
    assert isinstance(deps.store, WriteLog)
    return deps.store.writes


def test_more_cores_are_booked_before_the_cluster_that_uses_them_is_committed(deps: Deps) -> None:
    deliver(deps, ev.new_event(ev.CLUSTER_CREATE, "ws", "gpu", {"name": "gpu", "vm_size": "Standard_D2_v2",
                                                                "max_nodes": 2}, event_id="create-gpu"))
    writes(deps).clear()
    deliver(deps, ev.new_event(ev.JOB_SUBMIT, "ws", "gpu", {"job_id": "j", "command": ["true"]}, event_id="s-j"))
    decision = [w for w in writes(deps) if w in ("save_quota_ledger", "replace_cluster")]
    assert decision[:2] == ["save_quota_ledger", "replace_cluster"], writes(deps)


def test_a_deleted_cluster_is_buried_before_it_goes(deps: Deps) -> None:
    deliver(deps, ev.new_event(ev.CLUSTER_CREATE, "ws", "cpu", {"name": "cpu", "vm_size": "Standard_D2_v2",
                                                                "max_nodes": 2}, event_id="create-cpu"))
    writes(deps).clear()
    deliver(deps, ev.new_event(ev.CLUSTER_DELETE, "ws", "cpu", {}, event_id="delete-cpu"))
    assert writes(deps)[-2:] == ["save_tombstone", "delete_cluster"]
    assert deps.store.get_cluster("ws", "cpu") is None


def cluster_with_node_counts_changed_often(deps: Deps) -> str:
    """A cluster whose document holds one sample fewer than ``SAMPLES_IN_CLUSTER``; its history, as written."""
    deliver(deps, ev.new_event(ev.CLUSTER_CREATE, "ws", "gpu", {"name": "gpu", "vm_size": "Standard_D2_v2",
                                                                "max_nodes": 2}, event_id="create-gpu"))
    cluster = deps.store.get_cluster("ws", "gpu")
    assert cluster is not None
    history, start = "", deps.clock.now() - timedelta(hours=1)
    for n in range(SAMPLES_IN_CLUSTER - 1):
        history = record_node_counts(history, {"idle": 1 + n % 2}, start + timedelta(minutes=n))
    cluster.node_history = history
    deps.store.replace_cluster(cluster)
    writes(deps).clear()
    return history


@pytest.mark.parametrize("conflicts", [[], ["replace_cluster"]], ids=["first-try", "cluster-write-lost"])
def test_older_node_counts_move_to_their_archive_before_the_cluster_write_that_drops_them(
        deps: Deps, conflicts: list[str]) -> None:
    history = cluster_with_node_counts_changed_often(deps)
    assert isinstance(deps.store, WriteLog)
    # The cluster's write lost after the archive's (this store writes one by one, as the local Cosmos server does):
    # the retry moves the samples again.
    deps.store.conflicts = list(conflicts)
    deliver(deps, ev.new_event(ev.JOB_SUBMIT, "ws", "gpu", {"job_id": "j", "command": ["true"]}, event_id="s-j"))
    assert writes(deps)[-3:] == ["save_node_history_archive", "replace_cluster", "replace_cluster_with_jobs"]
    assert deps.store.conflicts == [] and writes(deps).count("save_node_history_archive") == 1 + len(conflicts)
    cluster = deps.store.get_cluster("ws", "gpu")
    assert cluster is not None and len(samples_of(cluster.node_history)) == SAMPLES_LEFT_IN_CLUSTER
    shown = node_timeline("ws", "gpu", deps).samples  # the dashboard's timeline: every change, each once
    assert len(shown) == SAMPLES_IN_CLUSTER
    assert shown[:-1] == samples_of(history) and shown[-1].counts == {"preparing": 1}
