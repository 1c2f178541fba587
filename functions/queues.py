"""Queue triggers: one function per queue of the event registry (``shared.domain.events.QUEUE_NAMES``), sessions
on (one cluster's events stay in order). With ``COMPUTEPLANE_QUEUE_BATCHES`` on (the default; off in Azure, see
``shared.config.queue_batches_on``) each call takes a batch of one session, up to host.json's
``maxMessageBatchSize``, applied in order with one decision per cluster where it can
(``shared.handlers.messages.handle_messages``); off, each call takes one message. The function is named after its
queue (``cluster-events`` -> ``cluster_events``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import azure.functions as func

from shared.bootstrap import container
from shared.config import SERVICE_BUS_CONNECTION, queue_batches_on
from shared.domain.events import QUEUE_NAMES
from shared.handlers.messages import QueueMessage, handle_message, handle_messages

F = TypeVar("F", bound=Callable[..., Any])


def queue_triggers(batches: bool) -> func.Blueprint:
    """The queue-trigger functions, taking batches or single messages."""
    blueprint = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ untyped
    for queue in QUEUE_NAMES:
        blueprint.service_bus_queue_trigger(
            arg_name="msgs" if batches else "msg", queue_name=queue, connection=SERVICE_BUS_CONNECTION,
            is_sessions_enabled=True, cardinality=func.Cardinality.MANY if batches else func.Cardinality.ONE,
        )(_batch_trigger_for(queue) if batches else _trigger_for(queue))
    return blueprint


def _batch_trigger_for(queue: str) -> Callable[[list[func.ServiceBusMessage]], None]:
    def on_messages(msgs: list[func.ServiceBusMessage]) -> None:
        # A batch that stops part way raises ``BatchStopped``: the local host and receiver complete the messages
        # before the stop; the Functions host, which settles a batch as a whole, delivers them all again (each
        # applied one is recognised by its event id).
        handle_messages(queue, [_message(m) for m in msgs], container().deps)

    return _named(on_messages, queue)


def _trigger_for(queue: str) -> Callable[[func.ServiceBusMessage], None]:
    def on_message(msg: func.ServiceBusMessage) -> None:
        # A failure raises: Service Bus redelivers it, and moves it to the queue's own dead-letter sub-queue after
        # maxDeliveryCount.
        handle_message(queue, msg.message_id or "", msg.get_body(), container().deps)

    return _named(on_message, queue)


def _message(msg: func.ServiceBusMessage) -> QueueMessage:
    return QueueMessage(msg.message_id or "", msg.get_body(), msg.delivery_count or 1)


def _named(function: F, queue: str) -> F:
    function.__name__ = function.__qualname__ = queue.replace("-", "_")
    return function


bp = queue_triggers(queue_batches_on())
