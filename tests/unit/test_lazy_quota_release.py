"""Cores a cluster no longer needs are given back to the region's quota ledger lazily while quota has room (a node's
release then costs one write, its cluster's) and at once when a limit is near; the timer's resync gives back what
was left, by the cluster's ``quota_settle_by``. Real handlers, SQLite store, local provider, a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.bootstrap import Container
from shared.domain import events as ev
from shared.domain.cluster import Cluster
from shared.handlers.deps import Deps
from shared.handlers.messages import handle_message
from shared.handlers.sweep import sweep
from tests.fakes.clock import FakeClock
from tests.fakes.deps import quota_limited_container

WS, REGION = "ws", "eastus"


@pytest.fixture
def container(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Container]:
    with quota_limited_container(tmp_path, REGION, regional_vcpus=request.param) as built:
        yield built


def deliver(deps: Deps, kind: str, data: dict[str, object], event_id: str) -> None:
    event = ev.new_event(kind, WS, "cpu", data, event_id=event_id)
    handle_message(event.queue, event.id, event.to_json(), deps)


def cluster(deps: Deps) -> Cluster:
    found = deps.store.get_cluster(WS, "cpu")
    assert found is not None
    return found


def booked(deps: Deps) -> int:
    ledger = deps.store.get_quota_ledger(REGION)
    return 0 if ledger is None else ledger.held_by(f"{WS}/cpu")


def two_nodes_then_none(deps: Deps) -> None:
    """Two nodes of 2 vCPUs held by min_nodes, then min_nodes lowered to 0 and the idle nodes released."""
    clock = deps.clock
    assert isinstance(clock, FakeClock)
    deliver(deps, ev.CLUSTER_CREATE, {"name": "cpu", "vm_size": "STANDARD_D2_V2", "min_nodes": 2, "max_nodes": 2,
                                      "idle_seconds_before_scaledown": 60}, "create")
    clock.advance(10)
    deliver(deps, ev.SCALE_REQUEST, {"reason": "test"}, "booted")
    assert len(cluster(deps).nodes) == 2 and booked(deps) == 4
    deliver(deps, ev.CLUSTER_UPDATE, {"min_nodes": 0}, "update")
    for n in range(10):  # idle past the deadline, released, and gone
        clock.advance(61)
        deliver(deps, ev.SCALE_REQUEST, {"reason": "test"}, f"later-{n}")
        if not cluster(deps).nodes:
            return
    raise AssertionError(f"the nodes never went: {cluster(deps).nodes}")


@pytest.mark.parametrize("container", [16], indirect=True)
def test_with_room_to_spare_the_cores_stay_booked_until_the_timers_resync(container: Container) -> None:
    deps = container.deps
    two_nodes_then_none(deps)
    assert booked(deps) == 4  # 4 of 16 vCPUs: nobody is near the limit, no write spent on giving them back
    settle_by = cluster(deps).quota_settle_by
    assert settle_by is not None and cluster(deps).next_reconcile_at == settle_by  # the timer will look then

    assert sweep(deps).clusters_reconciled == 0  # not due yet
    assert booked(deps) == 4
    assert isinstance(deps.clock, FakeClock)
    deps.clock.advance((settle_by - deps.clock.now()).total_seconds())
    sweep(deps)
    assert booked(deps) == 0  # given back, and the cluster is not due any more
    assert cluster(deps).quota_settle_by is None and cluster(deps).next_reconcile_at is None


@pytest.mark.parametrize("container", [6], indirect=True)
def test_near_a_limit_the_cores_go_back_at_once(container: Container) -> None:
    deps = container.deps
    two_nodes_then_none(deps)
    assert booked(deps) == 0  # 4 of 6 vCPUs held: less than half free, so they went back with the release


@pytest.mark.parametrize("container", [16], indirect=True)
def test_a_cluster_deleted_with_cores_still_booked_gives_them_back(container: Container) -> None:
    deps = container.deps
    two_nodes_then_none(deps)
    assert booked(deps) == 4
    deliver(deps, ev.CLUSTER_DELETE, {}, "delete")
    assert deps.store.get_cluster(WS, "cpu") is None and booked(deps) == 0
