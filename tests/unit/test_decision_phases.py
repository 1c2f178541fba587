"""The phases of one decision (shared/handlers/decision.py) in the order its docstring gives, seen as the store sees
them: quota increases before the cluster's commit, the tombstone before a deleted cluster goes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.domain import events as ev
from shared.handlers.deps import Deps
from shared.handlers.messages import handle_message
from tests.fakes.deps import handler_deps
from tests.fakes.store import InMemoryStore

WRITES = ("create_cluster", "replace_cluster", "delete_cluster", "create_job", "replace_job", "save_quota_ledger",
          "save_tombstone")


class WriteLog(InMemoryStore):
    """The in-memory store, noting each write that succeeded, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if name not in WRITES:
            return attribute

        def noted(*args: Any, **kwargs: Any) -> Any:
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
