"""The quota ledger a process keeps (``RecentLedgers``) saves reads, and never holds a cluster back for nothing:
when another process gave cores back after the copy was kept, the decision is made again on a fresh read. Real
handlers, SQLite store and local provider; the other process is its writes to the same store."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from bench.store_counter import CountingStore, OpKind, StoreCounter
from shared.bootstrap import Container
from shared.domain import events as ev
from shared.domain.quota_ledger import QuotaLedger
from shared.domain.vm_sizes import DEDICATED, load_catalogue
from shared.handlers.deps import Deps
from shared.handlers.messages import handle_message
from shared.ports import Store
from tests.fakes.deps import quota_limited_container

WS, REGION, OTHER = "ws", "eastus", "other-ws/big"
SIZE = load_catalogue().get("STANDARD_D2_V2", REGION)  # 2 vCPUs


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    with quota_limited_container(tmp_path, REGION, regional_vcpus=8) as built:
        yield built


def deliver(deps: Deps, kind: str, data: dict[str, object], event_id: str) -> None:
    event = ev.new_event(kind, WS, "cpu", data, event_id=event_id)
    handle_message(event.queue, event.id, event.to_json(), deps)


def another_process_books(deps: Deps, vcpus: int) -> None:
    ledger = deps.store.get_quota_ledger(REGION) or QuotaLedger(region=REGION)
    ledger.set_held(OTHER, SIZE, DEDICATED, vcpus, f"booking-{vcpus}")
    deps.store.save_quota_ledger(ledger)


def nodes(deps: Deps) -> int:
    cluster = deps.store.get_cluster(WS, "cpu")
    assert cluster is not None
    return len(cluster.nodes)


def test_cores_given_back_by_another_process_are_used_though_this_one_kept_the_full_ledger(
        container: Container) -> None:
    deps = container.deps
    another_process_books(deps, 8)  # the region is full
    deliver(deps, ev.CLUSTER_CREATE, {"name": "cpu", "vm_size": "STANDARD_D2_V2", "max_nodes": 1}, "create")
    deliver(deps, ev.JOB_SUBMIT, {"job_id": "j", "command": ["true"]}, "submit-j")
    assert nodes(deps) == 0  # held back by quota; this process now keeps the full ledger
    kept = deps.recent_ledgers.get(REGION)
    assert kept is not None and kept.held_by(OTHER) == 8

    another_process_books(deps, 0)  # the other cluster scaled down: its cores are free again
    deliver(deps, ev.SCALE_REQUEST, {"reason": "test"}, "scale-1")
    assert nodes(deps) == 1


def test_a_decision_that_grows_starts_from_the_kept_ledger_without_reading_it(container: Container) -> None:
    deps = container.deps
    deliver(deps, ev.CLUSTER_CREATE, {"name": "cpu", "vm_size": "STANDARD_D2_V2", "max_nodes": 3}, "create")
    deliver(deps, ev.JOB_SUBMIT, {"job_id": "j1", "command": ["true"]}, "submit-j1")  # reads it, books, keeps it
    counter = StoreCounter()
    deliver(dataclasses.replace(deps, store=cast(Store, CountingStore(deps.store, counter))), ev.JOB_SUBMIT,
            {"job_id": "j2", "command": ["true"]}, "submit-j2")
    assert nodes(deps) == 2 and ("get_quota_ledger", OpKind.POINT_READ) not in counter.by_context(counter.context)
    ledger = deps.store.get_quota_ledger(REGION)
    assert ledger is not None and ledger.held_by("ws/cpu") == 2 * SIZE.vcpus  # booked all the same
