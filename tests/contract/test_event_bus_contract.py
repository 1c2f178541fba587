"""The EventBus contract, on the embedded queue and on the in-memory bus the handler unit tests use: an event goes
to its type's queue as one message (id = the event id, the cluster's session), a second send of it is dropped, a
scheduled one waits, a dead letter keeps the body and the reason.
(Service Bus has its own: tests/contract/test_servicebus_bus.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest

from shared.adapters.sqlite_queue import SqliteQueue
from shared.domain import events as ev
from shared.ports import EventBus
from tests.fakes.bus import InMemoryBus
from tests.fakes.clock import FakeClock

NOW = datetime(2026, 3, 1, tzinfo=UTC)


class InspectableBus(EventBus, Protocol):
    def pending(self, queue: str) -> int: ...
    def next_visible_at(self, queue: str) -> datetime | None: ...
    def dead_letters(self, queue: str | None = None) -> Sequence[Any]: ...


@pytest.fixture(params=["sqlite", "memory"])
def bus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InspectableBus]:
    clock = FakeClock(NOW)
    yield SqliteQueue(tmp_path / "queue.db", clock) if request.param == "sqlite" else InMemoryBus(clock)


def received(bus: InspectableBus, queue: str) -> list[tuple[str, str | None, bytes]]:
    """(message id, session id, body) of the messages visible now on ``queue``."""
    if isinstance(bus, SqliteQueue):
        found = []
        while (message := bus.receive(queue)) is not None:
            found.append((message.message_id, message.session_id, message.body))
        return found
    assert isinstance(bus, InMemoryBus)
    return [(p.event.id, p.event.session_id, p.body) for p in bus.published(queue) if p.visible_at <= NOW]


def event(event_type: str = ev.JOB_SUBMIT, event_id: str = "e1") -> ev.CloudEvent:
    return ev.new_event(event_type, "ws", "gpu", {"job_id": "j1", "command": ["true"]}, event_id=event_id, time=NOW)


@pytest.mark.parametrize("event_type", sorted(ev.EVENT_KINDS))
def test_an_event_goes_to_its_type_s_queue_as_one_message_of_the_cluster_s_session(
        bus: InspectableBus, event_type: str) -> None:
    sent = event(event_type)
    bus.publish(sent)
    queue = ev.EVENT_KINDS[event_type].queue
    [(message_id, session_id, body)] = received(bus, queue)
    assert (message_id, session_id) == ("e1", "ws/gpu")
    assert json.loads(body) == json.loads(sent.to_json())
    assert all(bus.pending(other) == 0 for other in ev.QUEUE_NAMES if other != queue)


def test_a_second_send_of_the_same_event_is_dropped(bus: InspectableBus) -> None:
    bus.publish(event())
    bus.publish(event())
    assert bus.pending(ev.JOB_EVENTS) == 1


def test_a_scheduled_event_waits_until_its_time(bus: InspectableBus) -> None:
    later = NOW + timedelta(minutes=5)
    bus.publish(event(ev.SCALE_REQUEST), not_before=later)
    assert received(bus, ev.SCALE_EVENTS) == []
    assert bus.next_visible_at(ev.SCALE_EVENTS) == later


def test_a_dead_letter_keeps_the_body_and_the_reason(bus: InspectableBus) -> None:
    bus.dead_letter(ev.JOB_EVENTS, "m1", b"{not json", "body is not UTF-8 JSON")
    [letter] = bus.dead_letters(ev.JOB_EVENTS)
    assert (letter.message_id, letter.body, letter.reason) == ("m1", b"{not json", "body is not UTF-8 JSON")
