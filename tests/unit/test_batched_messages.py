"""A queue trigger's batch (``handle_messages``): one session's messages applied in order, a cluster's look-only
events looked at once, a failure that stops the batch for redelivery, and a message on its last delivery
dead-lettered alone. The real handlers on the in-memory store (counted by the benches' wrapper) and the local
provider, with a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bench.store_counter import CountingStore, StoreCounter
from shared.domain import events as ev
from shared.domain.actions import Action
from shared.domain.cluster import Cluster
from shared.domain.errors import ClusterStillDeleting, TransientError
from shared.domain.job import JobState
from shared.handlers.decision import Change, each_once
from shared.handlers.deps import Deps
from shared.handlers.messages import QueueMessage, handle_message, handle_messages
from shared.handlers.use_cases import delete_cluster
from shared.ports import MAX_DELIVERY_COUNT, BatchStopped, Store
from shared.telemetry import state
from tests.fakes.bus import InMemoryBus
from tests.fakes.clock import FakeClock
from tests.fakes.deps import handler_deps
from tests.fakes.store import InMemoryStore


@dataclass
class World:
    deps: Deps
    bus: InMemoryBus
    counter: StoreCounter

    @property
    def clock(self) -> FakeClock:
        assert isinstance(self.deps.clock, FakeClock)
        return self.deps.clock


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    counter = StoreCounter()
    with handler_deps(tmp_path, InMemoryStore()) as (deps, bus):
        yield World(replace(deps, store=CountingStore(deps.store, counter)), bus, counter)


def message(event: ev.CloudEvent, delivery_count: int = 1) -> QueueMessage:
    return QueueMessage(event.id, event.to_json(), delivery_count)


def create(world: World, name: str) -> None:
    handle_message(ev.CLUSTER_EVENTS, f"create-{name}", ev.new_event(
        ev.CLUSTER_CREATE, "ws", name, {"name": name, "vm_size": "Standard_D2_v2", "max_nodes": 2},
        event_id=f"create-{name}").to_json(), world.deps)


def wake_up(name: str, n: int) -> ev.CloudEvent:
    return ev.new_event(ev.SCALE_REQUEST, "ws", name, {"reason": "test"}, event_id=f"wake-{name}-{n}")


def cluster_reads(world: World) -> int:
    return sum(t.calls for (op, _), t in world.counter.by_context(world.counter.context).items()
               if op == "get_cluster")


def test_a_node_ready_followed_in_its_batch_by_a_wake_up_is_looked_at_once_and_its_job_still_starts(
        world: World) -> None:
    create(world, "gpu")
    submit = ev.new_event(ev.JOB_SUBMIT, "ws", "gpu", {"job_id": "j1", "command": ["true"]}, event_id="submit-j1")
    handle_message(ev.JOB_EVENTS, submit.id, submit.to_json(), world.deps)
    cluster = world.deps.store.get_cluster("ws", "gpu")
    assert cluster is not None and len(cluster.nodes) == 1
    world.clock.advance(6)  # the node has booted
    ready = ev.new_event(ev.NODE_READY, "ws", "gpu", {"node_id": cluster.nodes[0].node_id}, event_id="ready-1")

    world.counter.reset()
    handle_messages(ev.SCALE_EVENTS, [message(ready), message(wake_up("gpu", 1)), message(wake_up("gpu", 2))],
                    world.deps)

    assert cluster_reads(world) == 1  # one decision for the three: one read, at most one write
    job = world.deps.store.get_job("ws", "j1")
    assert job is not None and job.state is JobState.RUNNING  # the look the node's readiness asked for was made
    assert world.bus.dead_letters() == []


def test_a_look_is_not_coalesced_into_one_whose_data_is_invalid(world: World) -> None:
    create(world, "gpu")
    submit = ev.new_event(ev.JOB_SUBMIT, "ws", "gpu", {"job_id": "j1", "command": ["true"]}, event_id="submit-j1")
    handle_message(ev.JOB_EVENTS, submit.id, submit.to_json(), world.deps)
    cluster = world.deps.store.get_cluster("ws", "gpu")
    assert cluster is not None
    world.clock.advance(6)
    ready = ev.new_event(ev.NODE_READY, "ws", "gpu", {"node_id": cluster.nodes[0].node_id}, event_id="ready-1")
    broken = ev.new_event(ev.SCALE_REQUEST, "ws", "gpu", {"reason": 5}, event_id="wake-broken")

    handle_messages(ev.SCALE_EVENTS, [message(ready), message(broken)], world.deps)

    (dead,) = world.bus.dead_letters()
    assert dead.message_id == "wake-broken" and "data of computeplane.scale.request" in dead.reason
    job = world.deps.store.get_job("ws", "j1")
    assert job is not None and job.state is JobState.RUNNING  # the node's readiness was looked at all the same


def test_each_cluster_of_a_batch_gets_its_own_look(world: World) -> None:
    create(world, "gpu-a")
    create(world, "gpu-b")
    assert world.bus.dead_letters() == []
    world.counter.reset()
    handle_messages(ev.SCALE_EVENTS, [message(wake_up("gpu-a", 1)), message(wake_up("gpu-b", 1)),
                                      message(wake_up("gpu-a", 2))], world.deps)
    assert cluster_reads(world) == 2


def test_a_failure_stops_the_batch_for_redelivery_and_on_its_last_delivery_only_that_message_is_dead_lettered(
        world: World) -> None:
    create(world, "old")
    delete_cluster(world.deps, "ws", "old")  # still deleting: a create for its name must wait (a temporary error)
    again = ev.new_event(ev.CLUSTER_CREATE, "ws", "old", {"name": "old", "vm_size": "Standard_D2_v2",
                                                          "max_nodes": 3}, event_id="create-old-again")
    other = ev.new_event(ev.CLUSTER_CREATE, "ws", "new", {"name": "new", "vm_size": "Standard_D2_v2",
                                                          "max_nodes": 1}, event_id="create-new")

    with pytest.raises(BatchStopped) as stopped:
        handle_messages(ev.CLUSTER_EVENTS, [message(again), message(other)], world.deps)
    assert stopped.value.settled == 0 and isinstance(stopped.value.cause, ClusterStillDeleting)
    assert world.deps.store.get_cluster("ws", "new") is None  # nothing after the failure ran: order is kept
    assert world.bus.dead_letters() == []

    handle_messages(ev.CLUSTER_EVENTS, [message(again, MAX_DELIVERY_COUNT), message(other, MAX_DELIVERY_COUNT)],
                    world.deps)
    (dead,) = world.bus.dead_letters()
    assert dead.message_id == "create-old-again" and dead.body == again.to_json()
    assert dead.reason.startswith("MaxDeliveryCountExceeded: ClusterStillDeleting")
    assert world.deps.store.get_cluster("ws", "new") is not None  # the rest of the batch went on


def test_an_invalid_message_in_a_batch_is_dead_lettered_and_the_others_are_applied(world: World) -> None:
    batch = [QueueMessage("broken", b"{not json"),
             message(ev.new_event(ev.CLUSTER_CREATE, "ws", "cpu-one", {"name": "cpu-one", "vm_size": "Standard_D2_v2",
                                                                  "max_nodes": 1}, event_id="create-cpu-one"))]
    handle_messages(ev.CLUSTER_EVENTS, batch, world.deps)
    (dead,) = world.bus.dead_letters()
    assert dead.message_id == "broken" and "JSON" in dead.reason
    assert world.deps.store.get_cluster("ws", "cpu-one") is not None


def submit(name: str, job_id: str) -> ev.CloudEvent:
    return ev.new_event(ev.JOB_SUBMIT, "ws", name, {"job_id": job_id, "command": ["true"]},
                        event_id=f"submit-{job_id}")


def cluster_writes(world: World) -> int:
    return sum(t.calls for (op, _), t in world.counter.by_context(world.counter.context).items()
               if op in ("replace_cluster", "replace_cluster_with_jobs"))


def test_a_run_of_submits_to_one_cluster_is_decided_once_and_a_redelivery_queues_nothing_twice(
        world: World) -> None:
    create(world, "gpu")
    batch = [message(submit("gpu", f"j{n}")) for n in range(3)]
    world.counter.reset()
    handle_messages(ev.JOB_EVENTS, batch, world.deps)
    assert (cluster_reads(world), cluster_writes(world)) == (1, 1)
    cluster = world.deps.store.get_cluster("ws", "gpu")
    assert cluster is not None and sorted(j.job_id for j in cluster.jobs) == ["j0", "j1", "j2"]
    jobs = [world.deps.store.get_job("ws", f"j{n}") for n in range(3)]
    # two nodes at most: two jobs get a node each, being prepared; the third waits in the queue
    assert sorted(j.state.value for j in jobs if j is not None) == ["Preparing", "Preparing", "Queued"]
    assert len(cluster.nodes) == 2

    handle_messages(ev.JOB_EVENTS, batch, world.deps)  # the whole batch again, as after a lost lock
    cluster = world.deps.store.get_cluster("ws", "gpu")
    assert cluster is not None and len(cluster.jobs) == 3
    assert world.bus.dead_letters() == []


def test_a_submit_that_can_never_be_applied_is_dead_lettered_alone_and_its_run_still_queues_the_others(
        world: World) -> None:
    create(world, "gpu")
    create(world, "cpu")
    handle_messages(ev.JOB_EVENTS, [message(submit("cpu", "taken"))], world.deps)
    stray = ev.new_event(ev.JOB_SUBMIT, "ws", "gpu", {"job_id": "taken", "command": ["true"]}, event_id="stray")
    handle_messages(ev.JOB_EVENTS, [message(submit("gpu", "a1")), message(stray), message(submit("gpu", "a2"))],
                    world.deps)
    (dead,) = world.bus.dead_letters()
    assert dead.message_id == "stray" and "belongs to cluster 'cpu'" in dead.reason
    cluster = world.deps.store.get_cluster("ws", "gpu")
    assert cluster is not None and sorted(j.job_id for j in cluster.jobs) == ["a1", "a2"]


def test_changes_decided_together_are_each_applied_once_per_event_id(world: World) -> None:
    create(world, "gpu")
    cluster = world.deps.store.get_cluster("ws", "gpu")
    assert cluster is not None
    applied: list[str] = []

    def noting(name: str) -> Change:
        def change(_cluster: Cluster, _now: datetime) -> list[Action]:
            applied.append(name)
            return []
        return change

    both = each_once([(noting("first"), "e1"), (noting("second"), "e2")])
    both(cluster, world.clock.now())
    both(cluster, world.clock.now())  # decided again (a lost race), or the batch redelivered after its save
    assert applied == ["first", "second"]


@dataclass
class Telemetry:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def handled(self, event_type: str) -> dict[str, int]:
        """Events handled of ``event_type``, by outcome."""
        data = self.metrics.get_metrics_data()
        assert data is not None
        return {str(attributes["computeplane.outcome"]): int(point.value)  # type: ignore[attr-defined]
                for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics
                if m.name == "computeplane.events.handled" for point in m.data.data_points
                if (attributes := dict(point.attributes or {}))["cloudevents.event_type"] == event_type}


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    state.install(tracer_provider, MeterProvider(metric_readers=[reader]))
    try:
        yield Telemetry(spans, reader)
    finally:
        state.uninstall()


def test_a_coalesced_look_is_counted_as_such_and_traced_only_when_it_continues_a_trace(
        world: World, telemetry: Telemetry) -> None:
    create(world, "gpu")
    traced = wake_up("gpu", 1).model_copy(update={"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})
    handle_messages(ev.SCALE_EVENTS, [message(wake_up("gpu", 0)), message(traced), message(wake_up("gpu", 2))],
                    world.deps)
    assert telemetry.handled(ev.SCALE_REQUEST) == {"coalesced": 2, "ok": 1}
    coalesced = [s for s in telemetry.spans.get_finished_spans()
                 if (s.attributes or {}).get("computeplane.outcome") == "coalesced"]
    assert [s.context.trace_id for s in coalesced] == [int("ab" * 16, 16)]  # the traced one only, in its trace


def test_merged_submits_are_counted_once_each_also_when_one_of_them_can_never_be_applied(
        world: World, telemetry: Telemetry) -> None:
    create(world, "gpu")
    handle_messages(ev.JOB_EVENTS, [message(submit("gpu", "m1")), message(submit("gpu", "m2"))], world.deps)
    assert telemetry.handled(ev.JOB_SUBMIT) == {"ok": 1, "merged": 1}
    create(world, "cpu")
    handle_messages(ev.JOB_EVENTS, [message(submit("cpu", "taken"))], world.deps)
    stray = ev.new_event(ev.JOB_SUBMIT, "ws", "gpu", {"job_id": "taken", "command": ["true"]}, event_id="stray")
    handle_messages(ev.JOB_EVENTS, [message(submit("gpu", "m3")), message(stray), message(submit("gpu", "m4"))],
                    world.deps)
    # the run's decision fails for good, so each is applied alone: two applied, the stray one dead-lettered
    assert telemetry.handled(ev.JOB_SUBMIT) == {"ok": 4, "merged": 1, "dead_lettered": 1}
    assert [d.message_id for d in world.bus.dead_letters()] == ["stray"]


def test_a_stopped_batch_says_how_far_it_got_and_leaves_what_follows_even_an_invalid_message_to_its_next_delivery(
        world: World) -> None:
    create(world, "old")
    delete_cluster(world.deps, "ws", "old")
    first = ev.new_event(ev.CLUSTER_CREATE, "ws", "new", {"name": "new", "vm_size": "Standard_D2_v2",
                                                          "max_nodes": 1}, event_id="create-new")
    again = ev.new_event(ev.CLUSTER_CREATE, "ws", "old", {"name": "old", "vm_size": "Standard_D2_v2",
                                                          "max_nodes": 3}, event_id="create-old-again")
    batch = [message(first), message(again), QueueMessage("broken", b"{not json")]
    with pytest.raises(BatchStopped) as stopped:
        handle_messages(ev.CLUSTER_EVENTS, batch, world.deps)
    assert stopped.value.settled == 1  # the first is applied, and only it may be completed
    assert world.deps.store.get_cluster("ws", "new") is not None
    assert world.bus.dead_letters() == []  # the broken one is dead-lettered when its turn comes, once


class FailsOneCommit:
    """The store, whose next commit of a cluster with jobs fails as a throttled store's would (a temporary error)."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.armed = inner, True

    def replace_cluster_with_jobs(self, cluster: Cluster, jobs: Any, archive: Any = None) -> Cluster:
        if self.armed:
            self.armed = False
            raise TransientError("the store is busy")
        return self.inner.replace_cluster_with_jobs(cluster, jobs, archive)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("delivery", [1, MAX_DELIVERY_COUNT])
def test_a_run_of_submits_failing_for_a_while_stops_the_batch_unless_it_is_their_last_delivery(
        world: World, delivery: int) -> None:
    create(world, "gpu")
    deps = replace(world.deps, store=cast(Store, FailsOneCommit(world.deps.store)))
    run = [message(submit("gpu", "r1"), delivery), message(submit("gpu", "r2"), delivery)]
    if delivery < MAX_DELIVERY_COUNT:
        with pytest.raises(BatchStopped) as stopped:
            handle_messages(ev.JOB_EVENTS, run, deps)
        assert stopped.value.settled == 0 and isinstance(stopped.value.cause, TransientError)
        return
    handle_messages(ev.JOB_EVENTS, run, deps)  # each alone now: the busy store failed neither of them for good
    cluster = world.deps.store.get_cluster("ws", "gpu")
    assert cluster is not None and sorted(j.job_id for j in cluster.jobs) == ["r1", "r2"]
    assert world.bus.dead_letters() == []
