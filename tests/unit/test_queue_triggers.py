"""The registered queue-trigger functions, called as the Functions host calls them: with
``azure.functions.servicebus.ServiceBusMessage`` objects carrying real metadata, against a container built by the
composition root (SQLite store, embedded queue as the bus)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.servicebus import ServiceBusMessage

from function_app import app
from functions.queues import queue_triggers
from shared.adapters.sqlite_queue import SqliteQueue
from shared.bootstrap import Container, build, use_container
from shared.config import Settings
from shared.domain.events import CLUSTER_CREATE, CLUSTER_EVENTS, JOB_SUBMIT, QUEUE_NAMES, CloudEvent, new_event
from shared.ports import BatchStopped
from tests.fakes.clock import FakeClock

QueueFunction = Callable[[list[func.ServiceBusMessage]], None]  # a batch of one session
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    built = build(Settings(data_dir=tmp_path), clock=FakeClock(NOW))
    use_container(built)
    try:
        yield built
    finally:
        use_container(None)
        if built.provider is not None:
            built.provider.stop_all()


@pytest.fixture
def queue(container: Container) -> SqliteQueue:
    assert container.queue is not None
    return container.queue


def queue_functions() -> dict[str, QueueFunction]:
    """queue name -> the user function registered for it."""
    # get_functions() remembers the names it indexed and rejects them on a second call (the host indexes once
    # per process); forget them so every test indexes the real app afresh.
    app.functions_bindings = None
    found: dict[str, QueueFunction] = {}
    for fn in app.get_functions():
        binding = fn.get_trigger()
        assert binding is not None
        trigger = binding.get_dict_repr()
        if trigger["type"] == "serviceBusTrigger":
            found[trigger["queueName"]] = fn.get_user_function()
    return found


def delivered(body: bytes, *, message_id: str, session_id: str | None, delivery_count: int = 1
              ) -> ServiceBusMessage:
    """A message as the host passes it: the metadata a session queue delivery carries."""
    return ServiceBusMessage(
        body=body, message_id=message_id, session_id=session_id, delivery_count=delivery_count,
        enqueued_time_utc=NOW, sequence_number=7 + delivery_count, lock_token=str(uuid.uuid4()),
        content_type="application/cloudevents+json", application_properties={}, user_properties={})


def create_event(event_id: str = "evt-create-1", name: str = "gpu-a") -> CloudEvent:
    return new_event(CLUSTER_CREATE, "ws1", name, {"name": name, "vm_size": "Standard_D2_v2", "max_nodes": 2},
                     event_id, time=NOW)


def message_of(event: CloudEvent, delivery_count: int = 1) -> ServiceBusMessage:
    return delivered(event.to_json(), message_id=event.id, session_id=event.session_id,
                     delivery_count=delivery_count)


def stored_document(container: Container, name: str) -> dict[str, Any]:
    cluster = container.deps.store.get_cluster("ws1", name)
    assert cluster is not None
    return cluster.model_dump(mode="json")  # etag is excluded from the document


def test_every_queue_has_its_function() -> None:
    assert sorted(queue_functions()) == sorted(QUEUE_NAMES)


def test_a_valid_create_event_creates_the_cluster(container: Container, queue: SqliteQueue) -> None:
    queue_functions()[CLUSTER_EVENTS]([message_of(create_event())])
    document = stored_document(container, "gpu-a")
    assert (document["workspace"], document["name"]) == ("ws1", "gpu-a")
    assert document["spec"]["vm_size"] == "Standard_D2_v2"
    assert document["spec"]["max_nodes"] == 2
    assert document["provisioning_state"] == "Succeeded"
    assert queue.dead_letters() == []


INVALID_BODIES = {
    "not JSON": (b"{not json", "not UTF-8 JSON"),
    "unknown type": (json.dumps({"specversion": "1.0", "id": "evt-x", "source": "/t", "type": "computeplane.nope",
                                 "subject": "workspaces/ws1/clusters/gpu-a"}).encode(), "unknown event type"),
    "wrong queue": (new_event(JOB_SUBMIT, "ws1", "gpu-a", {"command": ["true"]}, "evt-job-1").to_json(),
                    "belongs on queue 'job-events'"),
}


@pytest.mark.parametrize("case", sorted(INVALID_BODIES))
def test_an_invalid_body_is_dead_lettered_with_the_reason_and_the_function_returns(case: str, queue: SqliteQueue,
                                                                                   container: Container) -> None:
    body, reason = INVALID_BODIES[case]
    result = queue_functions()[CLUSTER_EVENTS]([delivered(body, message_id=f"msg-{case}", session_id="ws1/gpu-a")])
    assert result is None  # returned normally: the host completes the message, no redelivery
    (dead,) = queue.dead_letters(CLUSTER_EVENTS)
    assert dead.message_id == f"msg-{case}"
    assert dead.body == body
    assert reason in dead.reason
    assert container.deps.store.get_cluster("ws1", "gpu-a") is None


def test_the_same_event_twice_changes_nothing_the_second_time(container: Container, queue: SqliteQueue) -> None:
    cluster_events = queue_functions()[CLUSTER_EVENTS]
    event = create_event("evt-create-dup", "gpu-b")
    cluster_events([message_of(event, delivery_count=1)])
    first = stored_document(container, "gpu-b")
    pending = queue.pending()

    cluster_events([message_of(event, delivery_count=2)])  # redelivered: the lock was lost after the write
    assert stored_document(container, "gpu-b") == first
    assert queue.pending() == pending
    assert queue.dead_letters() == []

    clock = container.deps.clock
    assert isinstance(clock, FakeClock)
    clock.advance(30)
    cluster_events([message_of(event, delivery_count=3)])
    # Every reconcile pass stamps modified_at (and writes), so a later redelivery moves only that field.
    later = stored_document(container, "gpu-b")
    assert {k: v for k, v in later.items() if k != "modified_at"} == {
        k: v for k, v in first.items() if k != "modified_at"}


def test_a_create_for_a_cluster_still_deleting_is_redelivered_not_dead_lettered(container: Container,
                                                                                queue: SqliteQueue) -> None:
    from shared.domain.errors import ClusterStillDeleting, TemporaryError
    from shared.domain.requests import ClusterCreate
    from shared.handlers.use_cases import create_cluster, delete_cluster

    create_cluster(container.deps, "ws1", ClusterCreate(name="gpu-a", vm_size="Standard_D2_v2", max_nodes=2))
    container.deps.store.get_cluster("ws1", "gpu-a")
    delete_cluster(container.deps, "ws1", "gpu-a")
    again = new_event(CLUSTER_CREATE, "ws1", "gpu-a", {"name": "gpu-a", "vm_size": "Standard_D2_v2", "max_nodes": 3},
                      "evt-create-again", time=NOW)
    with pytest.raises(BatchStopped) as raised:  # stopped at its first message: nothing of the batch settled
        queue_functions()[CLUSTER_EVENTS]([message_of(again)])
    assert raised.value.settled == 0
    assert isinstance(raised.value.cause, ClusterStillDeleting) and isinstance(raised.value.cause, TemporaryError)
    assert "still being deleted" in str(raised.value.cause)
    assert queue.dead_letters(CLUSTER_EVENTS) == []


def test_with_batches_off_each_call_takes_one_message_and_applies_it(container: Container,
                                                                     queue: SqliteQueue) -> None:
    app_of_singles = func.FunctionApp()
    app_of_singles.register_functions(queue_triggers(batches=False))
    (cluster_events,) = [fn.get_user_function() for fn in app_of_singles.get_functions()
                         if fn.get_trigger().get_dict_repr()["queueName"] == CLUSTER_EVENTS]
    cluster_events(message_of(create_event("evt-create-single", "gpu-s")))
    assert stored_document(container, "gpu-s")["provisioning_state"] == "Succeeded"
    assert queue.dead_letters() == []


def test_a_batch_with_an_invalid_message_dead_letters_it_and_applies_the_rest(container: Container,
                                                                            queue: SqliteQueue) -> None:
    broken = delivered(b"{not json", message_id="msg-broken", session_id="ws1/gpu-c")
    queue_functions()[CLUSTER_EVENTS]([broken, message_of(create_event("evt-create-c", "gpu-c"))])
    assert [d.message_id for d in queue.dead_letters(CLUSTER_EVENTS)] == ["msg-broken"]
    assert stored_document(container, "gpu-c")["spec"]["max_nodes"] == 2
