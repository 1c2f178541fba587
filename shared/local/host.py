"""Drive the functions registered in ``function_app.app`` the way the Functions host would.

It reads each function's trigger (``get_trigger().get_dict_repr()``): Service Bus queue triggers get
``azure.functions.ServiceBusMessage`` objects built from the embedded queue, with peek-lock, delivery count and
dead-lettering after ``MAX_DELIVERY_COUNT``: one at a time, or, for a trigger declared with ``cardinality=many``, a
list of up to ``MAX_MESSAGE_BATCH`` messages of one session in order, settled together. Timer triggers get a
``TimerRequest`` on their NCRONTAB schedule. The HTTP function's ASGI app is served by uvicorn (see
``shared.local.serve``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest
from croniter import croniter

from shared.adapters.sqlite_queue import ReceivedMessage, SqliteQueue
from shared.domain.errors import TemporaryError
from shared.local.lock_renewal import LockRenewal
from shared.ports import MAX_DELIVERY_COUNT, MAX_LOCK_RENEWAL, MAX_MESSAGE_BATCH, FailedBatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueFunction:
    """A Service Bus queue trigger. ``call`` takes one ``func.ServiceBusMessage``, or, when ``takes_batch`` (the
    trigger's ``cardinality`` is ``many``), a list of them, all of one session and in its order."""

    name: str
    queue: str
    call: Callable[[Any], Any]
    takes_batch: bool = False


@dataclass(frozen=True)
class TimerFunction:
    name: str
    schedule: str
    run_on_startup: bool
    call: Callable[[func.TimerRequest], Any]


def discover(app: func.FunctionApp) -> tuple[list[QueueFunction], list[TimerFunction], list[str]]:
    """The queue and timer functions of ``app``, and the routes of its HTTP functions."""
    queues, timers, routes = [], [], []
    for fn in app.get_functions():
        binding = fn.get_trigger()
        if binding is None:
            continue
        trigger = binding.get_dict_repr()
        name, user_function = fn.get_function_name() or "", fn.get_user_function()
        if trigger["type"] == "serviceBusTrigger":
            queues.append(QueueFunction(name, trigger["queueName"], user_function, takes_batch(trigger)))
        elif trigger["type"] == "timerTrigger":
            timers.append(TimerFunction(name, trigger["schedule"],
                                        bool(trigger.get("runOnStartup")), user_function))
        elif trigger["type"] == "httpTrigger":
            routes.append(str(trigger.get("route")))
    return queues, timers, routes


def takes_batch(trigger: dict[str, Any]) -> bool:
    """Whether a Service Bus trigger is declared ``cardinality=many``. The decorator leaves a ``Cardinality`` enum
    in the dict, a function.json a plain string: compare the value."""
    cardinality = trigger.get("cardinality")
    return str(getattr(cardinality, "value", cardinality)).lower() == "many"


def to_service_bus_message(message: ReceivedMessage) -> func.ServiceBusMessage:
    return ServiceBusMessage(
        body=message.body, message_id=message.message_id, session_id=message.session_id,
        delivery_count=message.delivery_count, enqueued_time_utc=message.enqueued_at,
        sequence_number=message.seq, lock_token=message.lock_token, content_type="application/cloudevents+json",
        application_properties={}, user_properties={})


def redelivery_delay(delivery_count: int) -> timedelta:
    """A growing pause before a failed message is offered again: 0.5 s doubling up to 2 min, about 6 minutes over
    the 10 deliveries, so a store outage of a few minutes does not dead-letter everything in flight."""
    return timedelta(seconds=min(0.5 * 2 ** (delivery_count - 1), 120.0))


QueueReceiver = Callable[[QueueFunction], Callable[[threading.Event], None]]


class LocalFunctionsHost:
    def __init__(self, app: func.FunctionApp, queue: SqliteQueue | None, *, poll_seconds: float = 0.2,
                 sweep_seconds: float | None = None, workers_per_queue: int = 1,
                 external_receiver: QueueReceiver | None = None,
                 max_lock_renewal: timedelta = MAX_LOCK_RENEWAL) -> None:
        """Queue triggers are fed from the embedded ``queue``, or, when it is None, by ``external_receiver``
        (a real Service Bus namespace). ``sweep_seconds`` replaces every timer's schedule with a fixed period.
        The locks of messages a function is handling are renewed for up to ``max_lock_renewal``."""
        if queue is None and external_receiver is None:
            raise ValueError("the local host needs the embedded queue or an external receiver")
        self.queue_functions, self.timer_functions, self.http_routes = discover(app)
        self._queue = queue
        self._external = external_receiver
        self._poll = poll_seconds
        self._sweep_seconds = sweep_seconds
        self._workers = workers_per_queue
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._renewal = LockRenewal(queue, max_lock_renewal) if queue is not None else None

    def start(self) -> None:
        if self._queue is not None:
            released = self._queue.release_locks_of_dead_owners()
            if released:
                log.info("released %d message lock(s) held by a process that died", released)
        if self._renewal is not None:
            self._spawn("lock-renewal", self._renewal.run, self._stop)
        for qf in self.queue_functions:
            for n in range(self._workers):
                if self._external is not None:
                    self._spawn(f"servicebus-{qf.queue}-{n}", self._external(qf), self._stop)
                else:
                    self._spawn(f"queue-{qf.queue}-{n}", self._pump, qf)
        for tf in self.timer_functions:
            self._spawn(f"timer-{tf.name}", self._tick, tf)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._queue is not None:
            self._queue.wake_all()
        for thread in self._threads:
            thread.join(timeout)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # --- queues ------------------------------------------------------------------------------------------------
    def _pump(self, qf: QueueFunction) -> None:
        assert self._queue is not None
        batch_size = MAX_MESSAGE_BATCH if qf.takes_batch else 1
        while not self._stop.is_set():
            try:
                messages = self._queue.receive_batch(qf.queue, batch_size)
            except Exception:
                log.exception("receive from %s failed", qf.queue)
                self._stop.wait(self._poll)
                continue
            if not messages:
                self._queue.wait_for_message(qf.queue, self._poll)
                continue
            try:
                self.deliver_batch(qf, messages)
            except Exception:  # settling failed (the queue's database busy): the locks lapse and they come again
                log.exception("settling %d message(s) from %s failed", len(messages), qf.queue)
                self._stop.wait(self._poll)

    def deliver(self, qf: QueueFunction, message: ReceivedMessage) -> None:
        self.deliver_batch(qf, [message])

    def deliver_batch(self, qf: QueueFunction, messages: Sequence[ReceivedMessage]) -> None:
        """Call the function once with ``messages`` and settle them, as the broker's contract says: complete all on
        success; on an exception, each is abandoned, or dead-lettered on its last delivery (the function raises only
        when the batch must be tried again; what it can never apply it dead-letters itself). A batch that stopped
        part way (``BatchStopped``) has the messages before the stop completed, the one that failed settled as a
        failure, and those after it handed back untried (their delivery not counted)."""
        assert self._queue is not None and self._renewal is not None
        if not qf.takes_batch and len(messages) != 1:
            raise ValueError(f"{qf.name} takes one message at a time, not {len(messages)}")
        converted = [to_service_bus_message(message) for message in messages]
        try:
            with self._renewal.holding(messages):
                qf.call(converted if qf.takes_batch else converted[0])
        except Exception as exc:  # noqa: BLE001 - the broker's contract: abandon, then dead-letter
            failed = FailedBatch.of(messages, exc)
            self._queue.complete_all(failed.settled)
            for message in failed.failed:
                self._settle_failure(qf, message, failed.cause)
            self._queue.release_untried(failed.untried)
        else:
            self._queue.complete_all(messages)

    def _settle_failure(self, qf: QueueFunction, message: ReceivedMessage, exc: Exception) -> None:
        """Abandon after a growing delay (or the one a ``TemporaryError`` names), and dead-letter, keeping the
        reason, once ``MAX_DELIVERY_COUNT`` deliveries have failed."""
        assert self._queue is not None
        reason = f"{type(exc).__name__}: {exc}"
        if message.delivery_count >= MAX_DELIVERY_COUNT:
            log.error("dead-lettering %s after %d deliveries: %s", message.message_id, message.delivery_count,
                      reason)
            self._queue.dead_letter_received(message, f"MaxDeliveryCountExceeded: {reason}")
            return
        log.warning("%s failed on delivery %d of %s: %s", qf.name, message.delivery_count, message.message_id,
                    reason)
        delay = redelivery_delay(message.delivery_count)
        if isinstance(exc, TemporaryError) and exc.delay is not None:
            delay = max(delay, exc.delay)  # the error knows when trying again can help
        self._queue.abandon(message, delay)

    # --- timers ------------------------------------------------------------------------------------------------
    def _tick(self, tf: TimerFunction) -> None:
        if tf.run_on_startup:
            self._fire(tf, past_due=False)
        while not self._stop.is_set():
            if self._stop.wait(self._seconds_until_next(tf)):
                return
            self._fire(tf, past_due=False)

    def _seconds_until_next(self, tf: TimerFunction) -> float:
        if self._sweep_seconds is not None:
            return self._sweep_seconds
        now = datetime.now(UTC)
        following: datetime = croniter(tf.schedule, now, second_at_beginning=True).get_next(datetime)
        return max((following - now).total_seconds(), 0.0)

    def _fire(self, tf: TimerFunction, past_due: bool) -> None:
        try:
            tf.call(TimerRequest(past_due=past_due))
        except Exception:
            log.exception("timer %s failed", tf.name)
