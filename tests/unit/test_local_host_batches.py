"""The local Functions host with a session-enabled queue trigger declared ``cardinality=many``: the function gets a
list of one session's messages in order, and the batch is settled together (completed on success; abandoned, and
dead-lettered after ``MAX_DELIVERY_COUNT`` deliveries, on failure), as the real host settles a batch."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import azure.functions as func
import pytest

from shared.adapters.clock import SystemClock
from shared.adapters.sqlite_queue import SqliteQueue
from shared.domain.errors import TemporaryError
from shared.local.host import LocalFunctionsHost, QueueFunction, redelivery_delay
from shared.local.lock_renewal import LockRenewal
from shared.ports import MAX_DELIVERY_COUNT, MAX_MESSAGE_BATCH, BatchStopped
from tests.fakes.clock import FakeClock

BATCHES, SINGLES = "batch-events", "single-events"


@dataclass
class Recorder:
    """What each function was called with (message id and delivery count), and whether it should fail."""

    batches: list[list[tuple[str, int]]] = field(default_factory=list)
    singles: list[tuple[str, int]] = field(default_factory=list)
    fail_with: Exception | None = None

    def take_batch(self, messages: list[func.ServiceBusMessage]) -> None:
        self.batches.append([(m.message_id or "", m.delivery_count or 0) for m in messages])
        if self.fail_with is not None:
            raise self.fail_with

    def take_one(self, message: func.ServiceBusMessage) -> None:
        self.singles.append((message.message_id or "", message.delivery_count or 0))


def app_of(recorder: Recorder) -> func.FunctionApp:
    """A tiny app as ``function_app`` declares its queue triggers: one taking batches, one a message at a time."""
    app = func.FunctionApp()

    @app.function_name("batch_events")
    @app.service_bus_queue_trigger(arg_name="messages", queue_name=BATCHES, connection="ServiceBusConnection",
                                   is_sessions_enabled=True, cardinality=func.Cardinality.MANY)
    def batch_events(messages: list[func.ServiceBusMessage]) -> None:
        recorder.take_batch(messages)

    @app.function_name("single_events")
    @app.service_bus_queue_trigger(arg_name="message", queue_name=SINGLES, connection="ServiceBusConnection",
                                   is_sessions_enabled=True)
    def single_events(message: func.ServiceBusMessage) -> None:
        recorder.take_one(message)

    return app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(tmp_path: Path, clock: FakeClock) -> SqliteQueue:
    return SqliteQueue(tmp_path / "queue.db", clock)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def host(queue: SqliteQueue, recorder: Recorder) -> Iterator[LocalFunctionsHost]:
    functions_host = LocalFunctionsHost(app_of(recorder), queue, poll_seconds=0.02)
    yield functions_host
    functions_host.stop()


def batch_function(host: LocalFunctionsHost) -> QueueFunction:
    [found] = [qf for qf in host.queue_functions if qf.queue == BATCHES]
    return found


def send(queue: SqliteQueue, queue_name: str, session: str, *ids: str) -> None:
    for message_id in ids:
        queue.send(queue_name, message_id, message_id.encode(), session_id=session)


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_trigger_s_cardinality_says_which_functions_take_batches(host: LocalFunctionsHost) -> None:
    assert {qf.queue: qf.takes_batch for qf in host.queue_functions} == {BATCHES: True, SINGLES: False}


def test_the_running_host_hands_each_session_s_messages_as_one_list_in_order_and_completes_them(
        host: LocalFunctionsHost, queue: SqliteQueue, recorder: Recorder) -> None:
    send(queue, BATCHES, "ws/a", "a1")
    send(queue, BATCHES, "ws/b", "b1")
    send(queue, BATCHES, "ws/a", "a2")
    send(queue, BATCHES, "ws/b", "b2")
    send(queue, BATCHES, "ws/a", "a3")
    send(queue, SINGLES, "ws/a", "s1", "s2")
    host.start()
    wait_for(lambda: sum(map(len, recorder.batches)) == 5 and len(recorder.singles) == 2)
    wait_for(lambda: queue.pending() == 0)
    assert recorder.batches == [[("a1", 1), ("a2", 1), ("a3", 1)], [("b1", 1), ("b2", 1)]]
    assert recorder.singles == [("s1", 1), ("s2", 1)]  # a function taking one message still gets one


def test_the_running_host_hands_at_most_max_message_batch_at_once(
        host: LocalFunctionsHost, queue: SqliteQueue, recorder: Recorder) -> None:
    many = [f"m{n:03}" for n in range(MAX_MESSAGE_BATCH + 3)]
    send(queue, BATCHES, "ws/a", *many)
    host.start()
    wait_for(lambda: queue.pending() == 0)
    assert [[message_id for message_id, _ in batch] for batch in recorder.batches] == [
        many[:MAX_MESSAGE_BATCH], many[MAX_MESSAGE_BATCH:]]


def test_a_failed_batch_is_abandoned_whole_and_redelivered_counting_a_delivery_on_each(
        host: LocalFunctionsHost, queue: SqliteQueue, clock: FakeClock, recorder: Recorder) -> None:
    send(queue, BATCHES, "ws/a", "a1", "a2", "a3")
    recorder.fail_with = RuntimeError("store unavailable")
    host.deliver_batch(batch_function(host), queue.receive_batch(BATCHES, MAX_MESSAGE_BATCH))
    assert queue.pending(BATCHES) == 3 and queue.dead_letters() == []
    assert queue.next_visible_at(BATCHES) == clock.now() + redelivery_delay(1)
    clock.advance(redelivery_delay(1))
    recorder.fail_with = None
    host.deliver_batch(batch_function(host), queue.receive_batch(BATCHES, MAX_MESSAGE_BATCH))
    assert recorder.batches == [[("a1", 1), ("a2", 1), ("a3", 1)], [("a1", 2), ("a2", 2), ("a3", 2)]]
    assert queue.pending(BATCHES) == 0


def test_a_temporary_error_s_delay_holds_back_the_whole_batch(
        host: LocalFunctionsHost, queue: SqliteQueue, clock: FakeClock, recorder: Recorder) -> None:
    send(queue, BATCHES, "ws/a", "a1", "a2")
    recorder.fail_with = TemporaryError("not yet", delay=timedelta(minutes=5))
    host.deliver_batch(batch_function(host), queue.receive_batch(BATCHES, MAX_MESSAGE_BATCH))
    clock.advance(timedelta(minutes=5) - timedelta(milliseconds=1))
    assert queue.receive_batch(BATCHES, MAX_MESSAGE_BATCH) == []
    clock.advance(timedelta(milliseconds=1))
    assert [m.message_id for m in queue.receive_batch(BATCHES, MAX_MESSAGE_BATCH)] == ["a1", "a2"]


def test_a_batch_failing_max_delivery_count_times_is_dead_lettered_with_the_reason(
        host: LocalFunctionsHost, queue: SqliteQueue, clock: FakeClock, recorder: Recorder) -> None:
    send(queue, BATCHES, "ws/a", "a1", "a2")
    recorder.fail_with = RuntimeError("never applies")
    for delivery in range(1, MAX_DELIVERY_COUNT + 1):
        batch = queue.receive_batch(BATCHES, MAX_MESSAGE_BATCH)
        assert [m.delivery_count for m in batch] == [delivery, delivery]
        host.deliver_batch(batch_function(host), batch)
        clock.advance(redelivery_delay(delivery))
    assert len(recorder.batches) == MAX_DELIVERY_COUNT
    assert queue.pending(BATCHES) == 0
    letters = queue.dead_letters(BATCHES)
    assert [(letter.message_id, letter.body, letter.delivery_count) for letter in letters] == [
        ("a1", b"a1", MAX_DELIVERY_COUNT), ("a2", b"a2", MAX_DELIVERY_COUNT)]
    assert {letter.reason for letter in letters} == {"MaxDeliveryCountExceeded: RuntimeError: never applies"}


def test_a_function_taking_one_message_is_not_handed_several(host: LocalFunctionsHost, queue: SqliteQueue) -> None:
    send(queue, SINGLES, "ws/a", "s1", "s2")
    [single] = [qf for qf in host.queue_functions if not qf.takes_batch]
    with pytest.raises(ValueError, match="one message at a time"):
        host.deliver_batch(single, queue.receive_batch(SINGLES, 2))


def test_a_batch_stopped_part_way_completes_what_came_before_the_stop_and_redelivers_the_rest(
        host: LocalFunctionsHost, queue: SqliteQueue, clock: FakeClock, recorder: Recorder) -> None:
    send(queue, BATCHES, "ws/a", "a1", "a2", "a3")
    recorder.fail_with = BatchStopped(1, TemporaryError("the store is busy"))  # a1 settled, a2 failed
    host.deliver_batch(batch_function(host), queue.receive_batch(BATCHES, MAX_MESSAGE_BATCH))
    recorder.fail_with = None
    assert queue.pending(BATCHES) == 2
    clock.advance(redelivery_delay(1))
    redelivered = queue.receive_batch(BATCHES, MAX_MESSAGE_BATCH + 10)
    assert [(m.message_id, m.delivery_count) for m in redelivered] == [("a2", 2), ("a3", 1)]  # a3: never tried
    assert queue.dead_letters() == []


def test_messages_after_a_stop_are_handed_back_untried_and_only_the_failing_one_is_dead_lettered(
        host: LocalFunctionsHost, queue: SqliteQueue, clock: FakeClock, recorder: Recorder) -> None:
    send(queue, BATCHES, "ws/a", "a1", "a2", "a3")
    recorder.fail_with = BatchStopped(0, RuntimeError("a1 fails"))  # every time: a2 and a3 are never tried
    for _ in range(MAX_DELIVERY_COUNT):
        clock.advance(timedelta(minutes=5))
        host.deliver_batch(batch_function(host), queue.receive_batch(BATCHES, MAX_MESSAGE_BATCH))
    (dead,) = queue.dead_letters()
    assert dead.message_id == "a1" and dead.reason == "MaxDeliveryCountExceeded: RuntimeError: a1 fails"
    recorder.fail_with = None
    clock.advance(timedelta(minutes=5))
    host.deliver_batch(batch_function(host), queue.receive_batch(BATCHES, MAX_MESSAGE_BATCH))
    assert recorder.batches[-1] == [("a2", 1), ("a3", 1)]  # their deliveries that were never tried not counted


def _slow_app(calls: list[tuple[str, int]], seconds: float) -> func.FunctionApp:
    app = func.FunctionApp()

    @app.function_name("slow_events")
    @app.service_bus_queue_trigger(arg_name="messages", queue_name=BATCHES, connection="ServiceBusConnection",
                                   is_sessions_enabled=True, cardinality=func.Cardinality.MANY)
    def slow_events(messages: list[func.ServiceBusMessage]) -> None:
        calls.extend((m.message_id or "", m.delivery_count or 0) for m in messages)
        if messages[0].delivery_count == 1:
            time.sleep(seconds)

    return app


@pytest.mark.parametrize(("renewed_for", "deliveries"), [(timedelta(minutes=5), 1), (timedelta(seconds=0.3), 2)])
def test_a_function_slower_than_the_lock_keeps_its_messages_while_their_locks_are_renewed(
        tmp_path: Path, renewed_for: timedelta, deliveries: int) -> None:
    """As the Functions host renews locks (host.json's maxAutoLockRenewalDuration): two workers, a function whose
    first call runs 2.5 s against a 1 s lock. Renewed, the other worker never gets the message; renewed for less
    than the function runs, the lock lapses and the message is delivered again while the first call still runs."""
    queue = SqliteQueue(tmp_path / "queue.db", SystemClock(), lock_duration=timedelta(seconds=1))
    calls: list[tuple[str, int]] = []
    host = LocalFunctionsHost(_slow_app(calls, 2.5), queue, poll_seconds=0.05, workers_per_queue=2,
                              max_lock_renewal=renewed_for)
    send(queue, BATCHES, "ws/a", "m1")
    host.start()
    try:
        wait_for(lambda: queue.pending() == 0)
    finally:
        host.stop()
    assert calls == [("m1", n) for n in range(1, deliveries + 1)]


def test_a_lock_that_lapsed_is_warned_of_once_and_not_renewed_again(
        queue: SqliteQueue, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    send(queue, BATCHES, "ws/a", "a1")
    renewal = LockRenewal(queue)
    batch = queue.receive_batch(BATCHES, MAX_MESSAGE_BATCH)
    with caplog.at_level(logging.WARNING, logger="shared.local.lock_renewal"), renewal.holding(batch):
        renewal.renew_held()  # within its lock: renewed, nothing to say
        assert caplog.records == []
        clock.advance(queue.lock_duration + timedelta(seconds=1))
        assert [m.message_id for m in queue.receive_batch(BATCHES, MAX_MESSAGE_BATCH)] == ["a1"]  # someone else's
        renewal.renew_held()
        renewal.renew_held()
    assert [r.getMessage() for r in caplog.records] == [
        "the lock of 1 of 1 message(s) from batch-events lapsed before it was renewed; they may be delivered again "
        "while their function runs"]
