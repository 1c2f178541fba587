"""``ServiceBusPump`` (the receiver of ``computeplane serve`` against a real namespace) feeding a trigger declared
``cardinality=many``: one call per receive with the session's messages in order, then each settled. No Service Bus
runs here, so the session receiver is a small fake that keeps peek-lock's rules (an abandoned message is offered
again with its delivery counted); the messages it hands out are real SDK objects decoded from AMQP bytes."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.servicebus import ServiceBusReceivedMessage
from azure.servicebus._pyamqp._encode import encode_payload  # the SDK's own encoder: real wire bytes
from azure.servicebus._pyamqp.message import Header, Message, Properties
from azure.servicebus._pyamqp.types import TYPE, VALUE, AMQPTypes
from azure.servicebus.exceptions import OperationTimeoutError

from shared.adapters import servicebus_bus
from shared.adapters.servicebus_bus import ServiceBusPump
from shared.config import Settings
from shared.local.host import QueueFunction
from shared.local.serve import service_bus_receiver
from shared.ports import MAX_DELIVERY_COUNT, MAX_MESSAGE_BATCH, BatchStopped

QUEUE, SESSION = "cluster-events", "ws1/gpu-cluster"


def on_the_wire(message_id: str, seq: int, earlier_deliveries: int) -> ServiceBusReceivedMessage:
    """A message as a session receiver gets it: encoded to AMQP bytes and decoded by the SDK."""
    wire = Message(
        header=Header(delivery_count=earlier_deliveries),
        delivery_annotations={b"x-opt-lock-token": uuid.uuid4()},
        message_annotations={b"x-opt-sequence-number": {TYPE: AMQPTypes.long, VALUE: seq}},
        properties=Properties(message_id=message_id.encode(), group_id=SESSION.encode(),
                              content_type=b"application/cloudevents+json"),
        data=[message_id.encode()])
    return ServiceBusReceivedMessage.from_bytes(bytes(encode_payload(bytearray(), wire)))


@dataclass
class FakeSessionReceiver:
    """One session as its receiver sees it: messages in order; an abandoned one goes back in its place with the
    delivery counted; completed and dead-lettered ones leave. It records what the pump asked for."""

    ids: list[str]
    earlier: dict[str, int] = field(default_factory=dict)
    asked_for: list[int] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    dead_lettered: list[tuple[str, str, str]] = field(default_factory=list)

    def __enter__(self) -> FakeSessionReceiver:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def receive_messages(self, max_message_count: int, max_wait_time: float) -> list[ServiceBusReceivedMessage]:
        self.asked_for.append(max_message_count)
        taken, self.ids = self.ids[:max_message_count], self.ids[max_message_count:]
        return [on_the_wire(message_id, int(message_id[1:]), self.earlier.get(message_id, 0)) for message_id in taken]

    def complete_message(self, message: ServiceBusReceivedMessage) -> None:
        self.completed.append(str(message.message_id))

    def abandon_message(self, message: ServiceBusReceivedMessage) -> None:
        message_id = str(message.message_id)
        self.abandoned.append(message_id)
        self.earlier[message_id] = self.earlier.get(message_id, 0) + 1
        self.ids = sorted([*self.ids, message_id], key=lambda later: int(later[1:]))

    def dead_letter_message(self, message: ServiceBusReceivedMessage, reason: str, error_description: str) -> None:
        self.dead_lettered.append((str(message.message_id), reason, error_description))


@dataclass
class FakeClient:
    """Hands out the one session, then, when the pump asks for the next, stops it (as if no session had messages)."""

    session: FakeSessionReceiver
    stop: threading.Event
    receivers: int = 0

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def get_queue_receiver(self, queue: str, **_: Any) -> FakeSessionReceiver:
        assert queue == QUEUE
        self.receivers += 1
        if self.receivers > 1:
            self.stop.set()
            raise OperationTimeoutError(message="no session had messages")
        return self.session


def ids_of(messages: list[func.ServiceBusMessage]) -> list[str]:
    return [m.message_id or "" for m in messages]


def pump(session: FakeSessionReceiver, callback: Any, *, takes_batch: bool) -> None:
    stop = threading.Event()
    client = FakeClient(session, stop)

    def fake_factory() -> Any:  # the fake stands in for ServiceBusClient where the pump uses it
        return client

    ServiceBusPump(fake_factory, QUEUE, callback, takes_batch=takes_batch, session_idle_seconds=0.01).run(stop)


def test_a_batch_trigger_gets_the_session_s_messages_as_lists_in_order_then_each_is_completed() -> None:
    ids = [f"m{n}" for n in range(1, MAX_MESSAGE_BATCH + 4)]
    session = FakeSessionReceiver(list(ids))
    calls: list[list[func.ServiceBusMessage]] = []
    pump(session, calls.append, takes_batch=True)
    assert [ids_of(call) for call in calls] == [ids[:MAX_MESSAGE_BATCH], ids[MAX_MESSAGE_BATCH:]]
    assert {m.session_id for call in calls for m in call} == {SESSION}
    assert set(session.asked_for) == {MAX_MESSAGE_BATCH}
    assert session.completed == ids and session.abandoned == [] and session.dead_lettered == []


def test_a_failed_batch_is_abandoned_whole_then_dead_lettered_at_the_last_delivery() -> None:
    session = FakeSessionReceiver(["m1", "m2", "m3"])
    counts: list[list[int]] = []

    def fails(messages: list[func.ServiceBusMessage]) -> None:
        counts.append([m.delivery_count or 0 for m in messages])
        raise RuntimeError("store unavailable")

    pump(session, fails, takes_batch=True)
    assert counts == [[n, n, n] for n in range(1, MAX_DELIVERY_COUNT + 1)]
    assert session.abandoned == ["m1", "m2", "m3"] * (MAX_DELIVERY_COUNT - 1)
    assert session.dead_lettered == [(m, "MaxDeliveryCountExceeded", "RuntimeError: store unavailable")
                                     for m in ("m1", "m2", "m3")]
    assert session.completed == []


def test_a_batch_stopped_part_way_has_what_came_before_completed_and_only_the_rest_tried_again() -> None:
    session = FakeSessionReceiver(["m1", "m2", "m3"])
    calls: list[list[str]] = []

    def stops_at_the_second_once(messages: list[func.ServiceBusMessage]) -> None:
        calls.append(ids_of(messages))
        if len(calls) == 1:
            raise BatchStopped(1, RuntimeError("store unavailable"))

    pump(session, stops_at_the_second_once, takes_batch=True)
    assert calls == [["m1", "m2", "m3"], ["m2", "m3"]]
    assert session.completed == ["m1", "m2", "m3"] and session.abandoned == ["m2", "m3"]
    assert session.dead_lettered == []


def test_a_trigger_taking_one_message_still_gets_one_per_call() -> None:
    session = FakeSessionReceiver(["m1", "m2"])
    calls: list[func.ServiceBusMessage] = []
    pump(session, calls.append, takes_batch=False)
    assert [m.message_id for m in calls] == ["m1", "m2"]
    assert set(session.asked_for) == {1}
    assert session.completed == ["m1", "m2"]


@pytest.mark.parametrize("takes_batch", [True, False])
def test_serve_gives_each_queue_function_a_pump_that_takes_what_the_function_takes(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, takes_batch: bool) -> None:
    made: list[dict[str, Any]] = []

    class RecordingPump:
        def __init__(self, _factory: object, queue: str, callback: object, *, takes_batch: bool) -> None:
            made.append({"queue": queue, "callback": callback, "takes_batch": takes_batch})

        def run(self, stop: threading.Event) -> None:
            return None

    monkeypatch.setattr(servicebus_bus, "ServiceBusPump", RecordingPump)
    settings = Settings(data_dir=tmp_path, service_bus_namespace="example.servicebus.windows.net")
    monkeypatch.delenv("ServiceBusConnection", raising=False)
    qf = QueueFunction("cluster_events", QUEUE, print, takes_batch=takes_batch)
    service_bus_receiver(settings)(qf)
    assert made == [{"queue": QUEUE, "callback": print, "takes_batch": takes_batch}]
