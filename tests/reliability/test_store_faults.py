"""The store answering 429 / 503 / timeouts for a while, and losing races: messages are redelivered with back-off,
nothing is lost, nothing is applied twice. (The Cosmos variant, through a fault-injecting transport in front of the
Cosmos emulator, belongs with the Cosmos adapter's tests.)"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import datetime, timedelta
from pathlib import Path

import azure.functions as func
import pytest

from shared.adapters.sqlite_queue import SqliteQueue
from shared.bootstrap import build
from shared.config import Settings
from shared.domain import events as ev
from shared.domain.errors import ConcurrencyConflict
from shared.domain.events import new_event
from shared.handlers.messages import handle_message
from shared.local.host import MAX_DELIVERY_COUNT, LocalFunctionsHost, QueueFunction, redelivery_delay
from tests.fakes.clock import FakeClock
from tests.reliability.faults import FaultPlan, FaultyStore, FlakyStore
from tests.reliability.scenarios import BUSY_DAY, play
from tests.reliability.world import World


def _outage(world_clock: FakeClock, start: float, seconds: float) -> FaultPlan:
    """Every store call fails while the (fake) clock is inside [start, start + seconds) from now."""
    begin = world_clock.now() + timedelta(seconds=start)
    end = begin + timedelta(seconds=seconds)
    return FaultPlan(fails_when=lambda call: call.startswith("store.") and begin <= world_clock.now() < end)


@pytest.fixture(scope="module")
def clean_outcome(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    world = World(tmp_path_factory.mktemp("clean"))
    play(world, BUSY_DAY)
    return world.outcome()


def test_a_store_down_for_ten_seconds_loses_nothing_and_applies_nothing_twice(
        tmp_path: Path, clean_outcome: dict[str, object]) -> None:
    world = World(tmp_path)
    world.use_plan(_outage(world.clock, start=60, seconds=10))
    play(world, BUSY_DAY)
    assert world.plan.faults_injected > 0 and world.broker.stats.abandoned > 0
    assert world.broker.dead_letters == []
    assert world.outcome() == clean_outcome
    assert world.broken_promises(settled=True, scaled_down=True) == []


def test_redeliveries_during_an_outage_back_off(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.use_plan(_outage(world.clock, start=0, seconds=10))
    world.create("backoff")
    world.settle(60)
    message = next(m for m in world.broker.finished if m.message_id == "create-backoff")
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(message.delivered_at)]
    assert len(gaps) >= 5 and gaps == sorted(gaps) and gaps[0] < gaps[-1]
    assert world.store.get_cluster("ws", "backoff") is not None


@pytest.mark.parametrize("error", [ConcurrencyConflict, TimeoutError], ids=["lost-race", "timeout"])
def test_failed_cluster_writes_are_retried_with_fresh_state(tmp_path: Path, clean_outcome: dict[str, object],
                                                             error: type[Exception]) -> None:
    world = World(tmp_path)
    # Both writes of a cluster: alone, and with the jobs its decision changed (a placement, a finish).
    flaky = FaultPlan(fail_on={"store.replace_cluster": [2, 5, 6, 9], "store.replace_cluster_with_jobs": [2, 5]},
                      error=error)
    world.use_plan(flaky)
    play(world, BUSY_DAY)
    assert flaky.faults_injected == 6
    assert world.outcome() == clean_outcome
    assert world.broken_promises(settled=True, scaled_down=True) == []


def test_work_accepted_over_http_survives_an_outage_longer_than_the_retry_budget(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.http_create("durable")
    jobs = [world.http_submit("durable", seconds=3) for _ in range(3)]
    # Longer than the 10 deliveries' back-off (0.5 s doubling to 120 s: about 250 s): the events are dead-lettered.
    world.use_plan(_outage(world.clock, start=0, seconds=400))
    world.settle(900)
    assert world.broker.dead_letters
    assert all(d.reason.startswith("MaxDeliveryCountExceeded") for d in world.broker.dead_letters)
    assert all(d.body == world.broker.bodies[d.message_id] for d in world.broker.dead_letters)
    assert {world.jobs()[j].state.value for j in jobs} == {"Completed"}  # the sweep found them again
    assert world.broken_promises(settled=True, scaled_down=True) == []


def test_a_two_minute_store_outage_dead_letters_no_event(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.use_plan(_outage(world.clock, start=0, seconds=120))
    world.create("patient")
    world.submit("patient", "j1", seconds=3)
    world.settle(600)
    assert world.broker.dead_letters == []
    assert world.jobs()["j1"].state.value == "Completed"


# --- the real local host and embedded queue ------------------------------------------------------------------------
def _pump_until_quiet(host: LocalFunctionsHost, queue: SqliteQueue, fn: QueueFunction, clock: FakeClock,
                      limit: int = 50) -> list[datetime]:
    """Receive and deliver through the host by hand, moving the fake clock to each redelivery."""
    seen: list[datetime] = []
    for _ in range(limit):
        message = queue.receive(fn.queue)
        if message is None:
            upcoming = queue.next_visible_at(fn.queue)
            if upcoming is None:
                return seen
            clock.advance(max(upcoming - clock.now(), timedelta(0)) + timedelta(milliseconds=1))
            continue
        seen.append(clock.now())
        host.deliver(fn, message)
    return seen


def test_the_local_host_redelivers_with_growing_delays_then_dead_letters_with_the_original_body(
        tmp_path: Path) -> None:
    clock = FakeClock()
    container = build(Settings(data_dir=tmp_path), clock=clock)
    assert container.queue is not None
    down = dataclasses.replace(container.deps, store=FaultyStore(container.deps.store, FaultPlan(
        fails_when=lambda call: call.startswith("store."))))
    fn = QueueFunction("cluster_events", ev.CLUSTER_EVENTS,
                       lambda msg: handle_message(ev.CLUSTER_EVENTS, msg.message_id or "", msg.get_body(), down))
    host = LocalFunctionsHost(func.FunctionApp(), container.queue)
    event = new_event(ev.CLUSTER_CREATE, "ws", "stormy", {"name": "stormy", "vm_size": "STANDARD_D2_V2",
                                                          "max_nodes": 2}, event_id="create-stormy")
    container.queue.publish(event)
    deliveries = _pump_until_quiet(host, container.queue, fn, clock)
    assert len(deliveries) == MAX_DELIVERY_COUNT
    gaps = [b - a for a, b in itertools.pairwise(deliveries)]
    assert all(gap >= redelivery_delay(n + 1) for n, gap in enumerate(gaps))
    [letter] = container.queue.dead_letters()
    assert letter.reason.startswith("MaxDeliveryCountExceeded") and "injected fault" in letter.reason
    assert letter.body == event.to_json() and letter.delivery_count == MAX_DELIVERY_COUNT


def test_the_local_host_applies_a_message_once_when_the_store_recovers(tmp_path: Path) -> None:
    clock = FakeClock()
    container = build(Settings(data_dir=tmp_path), clock=clock)
    assert container.queue is not None
    flaky = FlakyStore(container.deps.store, fail_on={"get_cluster": [1, 2, 3]})
    deps = dataclasses.replace(container.deps, store=flaky)
    fn = QueueFunction("cluster_events", ev.CLUSTER_EVENTS,
                       lambda msg: handle_message(ev.CLUSTER_EVENTS, msg.message_id or "", msg.get_body(), deps))
    host = LocalFunctionsHost(func.FunctionApp(), container.queue)
    container.queue.publish(new_event(ev.CLUSTER_CREATE, "ws", "recovers", {
        "name": "recovers", "vm_size": "STANDARD_D2_V2", "max_nodes": 2}, event_id="create-recovers"))
    assert len(_pump_until_quiet(host, container.queue, fn, clock)) == 4
    assert container.queue.dead_letters() == [] and container.queue.pending() == 0
    assert [c.name for c in container.deps.store.list_clusters("ws")] == ["recovers"]
