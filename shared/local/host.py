"""Drive the functions registered in ``function_app.app`` the way the Functions host would.

It reads each function's trigger (``get_trigger().get_dict_repr()``): Service Bus queue triggers get
``azure.functions.ServiceBusMessage`` objects built from the embedded queue, with peek-lock, delivery count and
dead-lettering after ``MAX_DELIVERY_COUNT``; timer triggers get a ``TimerRequest`` on their NCRONTAB schedule. The HTTP
function's ASGI app is served by uvicorn (see ``shared.local.serve``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest
from croniter import croniter

from shared.adapters.sqlite_queue import ReceivedMessage, SqliteQueue
from shared.domain.errors import TemporaryError
from shared.ports import MAX_DELIVERY_COUNT

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class QueueFunction:
    name: str
    queue: str
    call: Callable[[func.ServiceBusMessage], Any]


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
            queues.append(QueueFunction(name, trigger["queueName"], user_function))
        elif trigger["type"] == "timerTrigger":
            timers.append(TimerFunction(name, trigger["schedule"],
                                        bool(trigger.get("runOnStartup")), user_function))
        elif trigger["type"] == "httpTrigger":
            routes.append(str(trigger.get("route")))
    return queues, timers, routes


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
                 external_receiver: QueueReceiver | None = None) -> None:
        """Queue triggers are fed from the embedded ``queue``, or, when it is None, by ``external_receiver``
        (a real Service Bus namespace). ``sweep_seconds`` replaces every timer's schedule with a fixed period."""
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

    def start(self) -> None:
        if self._queue is not None:
            released = self._queue.release_locks_of_dead_owners()
            if released:
                log.info("released %d message lock(s) held by a process that died", released)
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
        while not self._stop.is_set():
            try:
                message = self._queue.receive(qf.queue)
            except Exception:
                log.exception("receive from %s failed", qf.queue)
                self._stop.wait(self._poll)
                continue
            if message is None:
                self._queue.wait_for_message(qf.queue, self._poll)
                continue
            self.deliver(qf, message)

    def deliver(self, qf: QueueFunction, message: ReceivedMessage) -> None:
        assert self._queue is not None
        try:
            qf.call(to_service_bus_message(message))
        except Exception as exc:  # noqa: BLE001 - the broker's contract: abandon, then dead-letter
            reason = f"{type(exc).__name__}: {exc}"
            if message.delivery_count >= MAX_DELIVERY_COUNT:
                log.error("dead-lettering %s after %d deliveries: %s", message.message_id, message.delivery_count,
                          reason)
                self._queue.dead_letter_received(message, f"MaxDeliveryCountExceeded: {reason}")
            else:
                log.warning("%s failed on delivery %d of %s: %s", qf.name, message.delivery_count,
                            message.message_id, reason)
                delay = redelivery_delay(message.delivery_count)
                if isinstance(exc, TemporaryError) and exc.delay is not None:
                    delay = max(delay, exc.delay)  # the error knows when trying again can help
                self._queue.abandon(message, delay)
        else:
            self._queue.complete(message)

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
