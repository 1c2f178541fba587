"""The embedded queue's batches, as a session-enabled Service Bus trigger with ``cardinality=many`` gets them: the
next deliverable message with its session's later due messages, in order, locked together; other sessions go to
other receivers; the session stays closed to everyone else until the batch is settled."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from shared.adapters.sqlite_queue import ReceivedMessage, SqliteQueue
from tests.fakes.clock import FakeClock

Q = "cluster-events"
LOCK = timedelta(seconds=30)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(tmp_path: Path, clock: FakeClock) -> SqliteQueue:
    return SqliteQueue(tmp_path / "queue.db", clock, lock_duration=LOCK)


def send(queue: SqliteQueue, session: str | None, *ids: str) -> None:
    for message_id in ids:
        queue.send(Q, message_id, message_id.encode(), session_id=session)


def ids(messages: list[ReceivedMessage]) -> list[str]:
    return [message.message_id for message in messages]


def test_a_batch_is_one_sessions_messages_in_order_up_to_max_messages(queue: SqliteQueue) -> None:
    send(queue, "ws/a", "a1")
    send(queue, "ws/b", "b1")
    send(queue, "ws/a", "a2", "a3")
    send(queue, "ws/b", "b2")
    send(queue, "ws/a", "a4", "a5")
    batch = queue.receive_batch(Q, 4)
    assert ids(batch) == ["a1", "a2", "a3", "a4"]
    assert [m.body for m in batch] == [b"a1", b"a2", b"a3", b"a4"]
    assert {m.session_id for m in batch} == {"ws/a"}
    assert [m.delivery_count for m in batch] == [1, 1, 1, 1]
    assert ids(queue.receive_batch(Q, 32)) == ["b1", "b2"]  # the other session, whole, to the next receive


def test_a_message_without_a_session_comes_alone(queue: SqliteQueue) -> None:
    send(queue, None, "n1", "n2")
    send(queue, "ws/a", "a1")
    assert ids(queue.receive_batch(Q, 32)) == ["n1"]
    assert ids(queue.receive_batch(Q, 32)) == ["n2"]
    assert ids(queue.receive_batch(Q, 32)) == ["a1"]


def test_concurrent_receivers_each_get_whole_sessions_never_a_shared_one(queue: SqliteQueue) -> None:
    sessions = {f"ws/{s}": [f"{s}{n}" for n in range(1, 6)] for s in "abcdefgh"}
    for n in range(5):  # interleaved, as events of several clusters arrive
        for session, session_ids in sessions.items():
            send(queue, session, session_ids[n])
    start = threading.Barrier(4)
    batches: list[list[ReceivedMessage]] = []
    guard = threading.Lock()

    def receiver() -> None:
        start.wait()
        while batch := queue.receive_batch(Q, 32):
            with guard:
                batches.append(batch)

    threads = [threading.Thread(target=receiver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(ids(batch) for batch in batches) == sorted(sessions.values())


def test_a_message_scheduled_for_later_is_not_in_the_batch(queue: SqliteQueue, clock: FakeClock) -> None:
    send(queue, "ws/a", "a1")
    queue.send(Q, "a2-later", b"later", session_id="ws/a", not_before=clock.now() + timedelta(minutes=1))
    send(queue, "ws/a", "a3")
    batch = queue.receive_batch(Q, 32)
    assert ids(batch) == ["a1", "a3"]
    queue.complete_all(batch)
    assert queue.receive_batch(Q, 32) == []
    clock.advance(timedelta(minutes=1))
    assert ids(queue.receive_batch(Q, 32)) == ["a2-later"]


def test_while_a_batch_is_locked_no_receiver_gets_the_sessions_later_messages(queue: SqliteQueue,
                                                                              clock: FakeClock) -> None:
    send(queue, "ws/a", "a1", "a2", "a3")
    first = queue.receive_batch(Q, 2)
    assert ids(first) == ["a1", "a2"]
    send(queue, "ws/a", "a4")
    assert queue.receive_batch(Q, 32) == []
    assert queue.receive(Q) is None
    clock.advance(LOCK)  # the lock lapsed unsettled: the batch is offered again, its delivery counted
    again = queue.receive_batch(Q, 32)
    assert ids(again) == ["a1", "a2", "a3", "a4"]
    assert [m.delivery_count for m in again] == [2, 2, 1, 1]


def test_a_session_stays_closed_until_every_message_of_its_batch_is_settled(queue: SqliteQueue) -> None:
    send(queue, "ws/a", "a1", "a2", "a3")
    a1, a2, a3 = queue.receive_batch(Q, 32)
    queue.abandon(a1)  # the host settles a failed batch one message at a time
    assert queue.receive_batch(Q, 32) == []  # a1 is due again, but a2 and a3 are still locked behind it
    queue.abandon(a2)
    assert queue.receive_batch(Q, 32) == []
    queue.abandon(a3)
    again = queue.receive_batch(Q, 32)
    assert ids(again) == ["a1", "a2", "a3"]
    assert [m.delivery_count for m in again] == [2, 2, 2]


def test_complete_all_removes_the_whole_batch_and_opens_the_session(queue: SqliteQueue) -> None:
    send(queue, "ws/a", "a1", "a2", "a3")
    queue.complete_all(queue.receive_batch(Q, 2))
    assert queue.pending(Q) == 1
    rest = queue.receive_batch(Q, 32)
    assert ids(rest) == ["a3"]
    queue.complete_all(rest)
    assert queue.pending(Q) == 0


def test_complete_all_leaves_messages_whose_lock_was_lost(queue: SqliteQueue, clock: FakeClock) -> None:
    send(queue, "ws/a", "a1", "a2")
    stale = queue.receive_batch(Q, 32)
    clock.advance(LOCK)
    retaken = queue.receive_batch(Q, 32)  # another receiver took the batch after the lock lapsed
    queue.complete_all(stale)
    assert queue.pending(Q) == 2
    queue.complete_all(retaken)
    assert queue.pending(Q) == 0


def test_an_abandoned_message_is_received_again_with_delivery_count_two(queue: SqliteQueue) -> None:
    send(queue, "ws/a", "a1", "a2", "a3")
    a1, a2 = queue.receive_batch(Q, 2)
    queue.complete_all([a1])
    queue.abandon(a2)
    again = queue.receive_batch(Q, 32)
    assert ids(again) == ["a2", "a3"]
    assert [m.delivery_count for m in again] == [2, 1]


def test_a_batch_of_nothing_is_refused(queue: SqliteQueue) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        queue.receive_batch(Q, 0)


def test_a_message_abandoned_for_later_keeps_its_sessions_next_messages_back_as_service_bus_does(
        queue: SqliteQueue, clock: FakeClock) -> None:
    send(queue, "ws/a", "create", "delete")
    (create,) = queue.receive_batch(Q, 1)
    queue.abandon(create, timedelta(seconds=5))  # failed: tried again in 5 s
    assert queue.receive_batch(Q, 32) == []  # the delete does not overtake the create
    clock.advance(5)
    assert ids(queue.receive_batch(Q, 32)) == ["create", "delete"]


def test_a_batch_stops_before_a_message_held_back_for_its_redelivery(queue: SqliteQueue, clock: FakeClock) -> None:
    queue.send(Q, "wake", b"wake", session_id="ws/a", not_before=clock.now() + timedelta(seconds=10))
    send(queue, "ws/a", "submit", "cancel")
    (submit,) = queue.receive_batch(Q, 1)
    assert submit.message_id == "submit"
    queue.abandon(submit, timedelta(seconds=30))
    clock.advance(10)  # the scheduled wake-up is due; the submit is still held back
    assert ids(queue.receive_batch(Q, 32)) == ["wake"]  # not the cancel, which must wait for its submit


def test_a_renewed_lock_keeps_the_batch_from_other_receivers_for_another_lock_duration(
        queue: SqliteQueue, clock: FakeClock) -> None:
    send(queue, "ws/a", "a1", "a2")
    batch = queue.receive_batch(Q, 32)
    clock.advance(LOCK * 2 / 3)
    assert queue.renew_locks(batch) == 2
    clock.advance(LOCK * 2 / 3)  # past the first lock, within the renewed one
    assert queue.receive_batch(Q, 32) == []
    clock.advance(LOCK / 2)  # past the renewed lock too
    assert ids(queue.receive_batch(Q, 32)) == ["a1", "a2"]


def test_a_lapsed_or_settled_lock_is_not_renewed(queue: SqliteQueue, clock: FakeClock) -> None:
    send(queue, "ws/a", "a1")
    lapsed = queue.receive_batch(Q, 32)
    clock.advance(LOCK + timedelta(seconds=1))
    assert queue.renew_locks(lapsed) == 0  # it may be someone else's now
    taken_again = queue.receive_batch(Q, 32)
    assert ids(taken_again) == ["a1"] and queue.renew_locks(lapsed) == 0  # (the new lock is not the old token's)
    queue.complete_all(taken_again)
    assert queue.renew_locks(taken_again) == 0
