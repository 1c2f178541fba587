"""The EventBus port on Azure Service Bus (azure-servicebus 7.x), plus a receiver for ``computeplane serve``.

Sending: one ``ServiceBusClient`` for the process and one sender per queue, created on first use and reused. The
SDK does not make clients or senders thread-safe, and the Functions worker runs functions on a thread pool, so
creation happens under a lock and each sender sends under its own lock. Every event is a structured-mode CloudEvent
(``application/cloudevents+json``); its id is the ``message_id`` so the queues' duplicate detection drops a second
send, and ``workspace/cluster`` is the ``session_id`` so one cluster's events stay in order.

Dead-lettering: the port's ``dead_letter(queue, message_id, body, reason)`` is called by a handler that got the
message through the plain Service Bus trigger binding. Only the receiver holding a message's lock can move it to
the queue's own dead-letter sub-queue, and with the plain binding that receiver belongs to the Functions host, not
to us. So the adapter *sends* the original body to a dedicated queue named ``deadletter``, with the reason and the
original queue as application properties; the function then returns normally and the host completes the original.
The alternative, SDK-type bindings (``azurefunctions-extensions-bindings-servicebus`` with
``ServiceBusMessageActions.deadletter``), was not used because it needs ``autoCompleteMessages: false`` and manual
settlement in every function, exists only in recent extension and worker versions, and the local host and the
tests could not drive it with ``azure.functions.ServiceBusMessage`` objects. Messages that keep failing (transient
errors) still reach each queue's own ``$deadletterqueue`` after maxDeliveryCount, settled by the broker.

Errors: the SDK retries each operation itself (``retry_total`` and backoff below); what still fails as a connection
problem, a timeout or a busy server becomes ``TransientError`` (the triggering message is redelivered). Anything
else (authorization, missing queue, oversized message) propagates as it is.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import azure.functions as func
from azure.functions.servicebus import ServiceBusMessage as FunctionMessage
from azure.servicebus import (
    NEXT_AVAILABLE_SESSION,
    AutoLockRenewer,
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceivedMessage,
    ServiceBusReceiveMode,
    ServiceBusReceiver,
)
from azure.servicebus.amqp import AmqpMessageBodyType
from azure.servicebus.exceptions import (
    OperationTimeoutError,
    ServiceBusCommunicationError,
    ServiceBusConnectionError,
    ServiceBusError,
    ServiceBusServerBusyError,
)

from shared.adapters.credentials import azure_credential
from shared.config import SERVICE_BUS_CONNECTION, Settings
from shared.domain.errors import TransientError
from shared.domain.events import CloudEvent
from shared.domain.utc import as_utc
from shared.ports import MAX_DELIVERY_COUNT, MAX_LOCK_RENEWAL, MAX_MESSAGE_BATCH, FailedBatch

log = logging.getLogger(__name__)

NAMESPACE_SETTING = f"{SERVICE_BUS_CONNECTION}__fullyQualifiedNamespace"
CLOUDEVENTS_JSON = "application/cloudevents+json"
DEAD_LETTER_QUEUE = "deadletter"
# Service Bus allows 32 KB per property and 64 KB for all headers; 4096 characters keep well inside both.
MAX_PROPERTY_CHARS = 4096
TRANSIENT_ERRORS = (ServiceBusConnectionError, ServiceBusCommunicationError, OperationTimeoutError,
                    ServiceBusServerBusyError)


class QueueSender(Protocol):
    def send_messages(self, message: ServiceBusMessage) -> None: ...
    def close(self) -> None: ...


class SenderClient(Protocol):
    """What the bus needs of ``ServiceBusClient`` (tests inject a recording fake: no Service Bus runs here)."""

    def get_queue_sender(self, queue_name: str) -> QueueSender: ...
    def close(self) -> None: ...


def build_message(event: CloudEvent, not_before: datetime | None = None) -> ServiceBusMessage:
    """The exact message ``publish`` sends. CloudEvents' AMQP binding prefers the ``cloudEvents_`` prefix (``:``
    is not allowed in JMS selectors); only type and id are copied out of the body, for SQL filters and browsing.
    Without ``cloudEvents_specversion`` no reader can mistake the message for a binary-mode event."""
    return ServiceBusMessage(
        body=event.to_json(), message_id=event.id, session_id=event.session_id, content_type=CLOUDEVENTS_JSON,
        subject=event.type, application_properties={"cloudEvents_type": event.type, "cloudEvents_id": event.id},
        scheduled_enqueue_time_utc=as_utc(not_before) if not_before is not None else None)


def build_dead_letter(queue: str, message_id: str, body: bytes, reason: str) -> ServiceBusMessage:
    """The original body, kept byte for byte, with why and where from. The same message id lets duplicate
    detection drop a second dead-lettering of one message (a redelivery that failed the same way)."""
    return ServiceBusMessage(
        body=body, message_id=message_id or None,
        application_properties={"DeadLetterReason": reason[:MAX_PROPERTY_CHARS], "OriginalQueue": queue})


def service_bus_client_factory(settings: Settings, env: Mapping[str, str] | None = None
                               ) -> Callable[[], ServiceBusClient]:
    """How to connect, decided now (so a missing setting fails at start-up); connecting happens on first use.

    A connection string in ``ServiceBusConnection`` wins, as in the Functions host (it also covers the official
    emulator, ``UseDevelopmentEmulator=true``); otherwise the namespace with the app's managed identity.
    ``Settings`` carries no connection string (it is a secret, not app configuration), hence ``env`` here.
    """
    env = os.environ if env is None else env
    connection_string = env.get(SERVICE_BUS_CONNECTION, "").strip()
    if connection_string:
        if "endpoint=" not in connection_string.lower():
            raise ValueError(f"{SERVICE_BUS_CONNECTION}: expected a connection string 'Endpoint=sb://...;...'; "
                             f"for a managed identity leave it unset and set {NAMESPACE_SETTING}")

        def from_connection_string() -> ServiceBusClient:
            return ServiceBusClient.from_connection_string(connection_string, **_retry_options())

        return from_connection_string
    namespace = settings.service_bus_namespace
    if not namespace:
        raise ValueError(f"{NAMESPACE_SETTING}: required when COMPUTEPLANE_BUS=servicebus (e.g. "
                         f"'<your-namespace>.servicebus.windows.net'), or a connection string in "
                         f"{SERVICE_BUS_CONNECTION} for the emulator")

    def from_identity() -> ServiceBusClient:
        return ServiceBusClient(namespace, azure_credential(settings.azure_client_id), **_retry_options())

    return from_identity


def _retry_options() -> dict[str, Any]:
    # A few quick tries inside one function call; the broker's redelivery is the slower, outer retry.
    return {"retry_total": 3, "retry_backoff_factor": 0.5, "retry_backoff_max": 10.0, "retry_mode": "exponential"}


class ServiceBusEventBus:
    def __init__(self, client_factory: Callable[[], SenderClient]) -> None:
        self._client_factory = client_factory
        self._client: SenderClient | None = None
        self._senders: dict[str, tuple[QueueSender, threading.Lock]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> ServiceBusEventBus:
        return cls(service_bus_client_factory(settings, env))

    def publish(self, event: CloudEvent, *, not_before: datetime | None = None) -> None:
        self._send(event.queue, build_message(event, not_before))

    def dead_letter(self, queue: str, message_id: str, body: bytes, reason: str) -> None:
        self._send(DEAD_LETTER_QUEUE, build_dead_letter(queue, message_id, body, reason))

    def close(self) -> None:
        with self._lock:
            senders, client = list(self._senders.values()), self._client
            self._senders, self._client = {}, None
        for sender, sender_lock in senders:
            with sender_lock:
                sender.close()
        if client is not None:
            client.close()

    def _send(self, queue: str, message: ServiceBusMessage) -> None:
        sender, sender_lock = self._sender(queue)
        try:
            with sender_lock:
                sender.send_messages(message)
        except TRANSIENT_ERRORS as exc:
            raise TransientError(f"Service Bus: sending to {queue!r} failed: {exc}") from exc

    def _sender(self, queue: str) -> tuple[QueueSender, threading.Lock]:
        with self._lock:
            entry = self._senders.get(queue)
            if entry is None:
                if self._client is None:
                    self._client = self._client_factory()
                entry = self._senders[queue] = (self._client.get_queue_sender(queue_name=queue), threading.Lock())
            return entry


# --- receiving, for `computeplane serve` against a real namespace ------------------------------------------------
# A queue trigger: it takes one ``func.ServiceBusMessage``, or a list of one session's, in order, when the pump is
# made with ``takes_batch`` (a trigger declared with ``cardinality=many``).
MessageCallback = Callable[[Any], object]


def to_function_message(message: ServiceBusReceivedMessage) -> func.ServiceBusMessage:
    """What the Functions host would hand the trigger. AMQP counts earlier deliveries (0 the first time) and the
    Python SDK passes that on; the host, like .NET, counts this one too, so add 1. Strings in application
    properties arrive as bytes over AMQP; the host gives them as text."""
    properties = {_text(key): _text(value) for key, value in (message.application_properties or {}).items()}
    return FunctionMessage(
        body=_body(message), message_id=message.message_id or "", session_id=message.session_id,
        delivery_count=(message.delivery_count or 0) + 1, enqueued_time_utc=message.enqueued_time_utc,
        sequence_number=message.sequence_number, content_type=message.content_type, subject=message.subject,
        lock_token=str(message.lock_token) if message.lock_token else None,
        application_properties=properties, user_properties=dict(properties))


def _body(message: ServiceBusReceivedMessage) -> bytes:
    if message.body_type == AmqpMessageBodyType.DATA:
        return b"".join(message.body)
    value = message.body  # a value or sequence body (not sent by ComputePlane): hand it over as text
    return value if isinstance(value, bytes) else str(value).encode()


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class ServiceBusPump:
    """Peek-lock one session-enabled queue and feed a function, one message at a time or (``takes_batch``) up to
    ``MAX_MESSAGE_BATCH`` of the session at once: complete on success, abandon on failure, and dead-letter (in the
    queue's own sub-queue, since this receiver holds the lock) on the last delivery. A batch that stopped part way
    (``BatchStopped``) has the messages before the stop completed, the one that failed settled as a failure, and
    those after it abandoned untried."""

    def __init__(self, client_factory: Callable[[], ServiceBusClient], queue: str, callback: MessageCallback, *,
                 takes_batch: bool = False, session_idle_seconds: float = 5.0,
                 max_delivery_count: int = MAX_DELIVERY_COUNT) -> None:
        self._client_factory, self._queue, self._callback = client_factory, queue, callback
        self._batch_size = MAX_MESSAGE_BATCH if takes_batch else 1
        self._takes_batch = takes_batch
        self._idle, self._max_deliveries = session_idle_seconds, max_delivery_count

    def run(self, stop: threading.Event) -> None:
        """Take the next session with messages, drain it until it idles, repeat until ``stop``."""
        renewer = AutoLockRenewer(max_lock_renewal_duration=MAX_LOCK_RENEWAL.total_seconds())
        try:
            with self._client_factory() as client:
                while not stop.is_set():
                    self._take_session(client, renewer, stop)
        finally:
            renewer.close()

    def _take_session(self, client: ServiceBusClient, renewer: AutoLockRenewer, stop: threading.Event) -> None:
        try:
            with client.get_queue_receiver(self._queue, session_id=NEXT_AVAILABLE_SESSION,
                                           receive_mode=ServiceBusReceiveMode.PEEK_LOCK,
                                           max_wait_time=self._idle, auto_lock_renewer=renewer) as receiver:
                self._drain(receiver, stop)
        except OperationTimeoutError:
            return  # no session had messages within the wait
        except ServiceBusError:
            log.exception("receiving from %s failed; retrying", self._queue)
            stop.wait(1.0)

    def _drain(self, receiver: ServiceBusReceiver, stop: threading.Event) -> None:
        while not stop.is_set():
            batch = receiver.receive_messages(max_message_count=self._batch_size, max_wait_time=self._idle)
            if not batch:
                return  # the session is idle: release it so another can be taken
            if self._takes_batch:
                self._settle(receiver, batch)
            else:
                for message in batch:
                    self._settle(receiver, [message])

    def _settle(self, receiver: ServiceBusReceiver, messages: list[ServiceBusReceivedMessage]) -> None:
        """Call the function once with ``messages`` (the list, or its one message) and settle each the same way."""
        converted = [to_function_message(message) for message in messages]
        try:
            self._callback(converted if self._takes_batch else converted[0])
        except Exception as exc:  # noqa: BLE001 - any failure, as the trigger's contract: abandon, then dead-letter
            failed = FailedBatch.of(list(zip(messages, converted, strict=True)), exc)
            description = f"{type(failed.cause).__name__}: {failed.cause}"[:MAX_PROPERTY_CHARS]
            for message, _ in failed.settled:
                receiver.complete_message(message)
            for message, as_delivered in failed.failed:
                self._settle_failure(receiver, message, as_delivered, description)
            for message, _ in failed.untried:
                # Abandoned, never dead-lettered here for another message's failure (the broker counts the
                # delivery all the same, and dead-letters after maxDeliveryCount of them).
                receiver.abandon_message(message)
        else:
            for message in messages:
                receiver.complete_message(message)

    def _settle_failure(self, receiver: ServiceBusReceiver, message: ServiceBusReceivedMessage,
                        as_delivered: func.ServiceBusMessage, description: str) -> None:
        """Dead-letter on the last delivery the queue allows (the broker would do it at the next), else abandon."""
        if (as_delivered.delivery_count or 1) >= self._max_deliveries:
            receiver.dead_letter_message(message, reason="MaxDeliveryCountExceeded", error_description=description)
        else:
            log.warning("%s: delivery %s of %s failed: %s", self._queue, as_delivered.delivery_count,
                        as_delivered.message_id, description)
            receiver.abandon_message(message)
