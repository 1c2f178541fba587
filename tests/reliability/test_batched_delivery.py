"""The World hands the queue triggers what the deployed ones get: batches of one session's messages, in order. A
cluster's events sent together arrive in one ``handle_messages`` call, and the day ends as it does when the same
events are handed over one at a time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from shared.domain import events as ev
from shared.handlers.deps import Deps
from shared.handlers.messages import QueueMessage, handle_messages
from tests.reliability import world as world_module
from tests.reliability.broker import DuplicatingBus, Message
from tests.reliability.world import World

SUBMITS = [f"submit-j{n}" for n in range(4)]


def _busy_minute(world: World) -> None:
    """Several events for one cluster published before any is delivered: job events and look-only wake-ups."""
    world.create("one", max_nodes=2)
    world.settle(30)
    for n in range(4):
        world.submit("one", f"j{n}", seconds=5 + n)
    world.cancel("one", "j1")
    world.submit("one", "j4", seconds=2)
    for n in range(3):
        world.send(ev.SCALE_REQUEST, "one", {"reason": "poke"}, f"poke-{n}")


def _play(world: World) -> None:
    _busy_minute(world)
    world.settle(60)
    world.settle(900)  # every job ends, idle nodes go


def _one_at_a_time(broker: DuplicatingBus) -> None:
    def take_one(max_messages: int) -> list[Message]:
        return DuplicatingBus.take_batch(broker, 1)

    broker.take_batch = take_one  # type: ignore[method-assign]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """Each ``handle_messages`` call the World makes: its queue and its message ids."""
    seen: list[tuple[str, list[str]]] = []

    def recording(queue: str, messages: Sequence[QueueMessage], deps: Deps) -> None:
        seen.append((queue, [m.message_id for m in messages]))
        handle_messages(queue, messages, deps)

    monkeypatch.setattr(world_module, "handle_messages", recording)
    return seen


def test_a_clusters_events_sent_together_arrive_in_one_batch_in_order_and_end_as_one_at_a_time(
        tmp_path: Path, calls: list[tuple[str, list[str]]]) -> None:
    batched = World(tmp_path / "batched")
    _play(batched)
    assert (ev.JOB_EVENTS, [*SUBMITS, "cancel-j1", "submit-j4"]) in calls  # one call, in the order sent
    assert (ev.SCALE_EVENTS, ["poke-0", "poke-1", "poke-2"]) in calls  # look-only: coalesced into one look
    assert batched.broken_promises(settled=True, scaled_down=True) == []

    calls.clear()
    single = World(tmp_path / "single")
    _one_at_a_time(single.broker)
    _play(single)
    assert calls and all(len(ids) == 1 for _, ids in calls)
    assert single.broken_promises(settled=True, scaled_down=True) == []
    assert batched.outcome() == single.outcome()
    assert batched.jobs()["j1"].state.value == "Canceled" and batched.jobs()["j0"].state.value == "Completed"
