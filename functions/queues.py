"""Queue triggers: one function per queue of the event registry (``shared.domain.events.QUEUE_NAMES``), sessions
on (one cluster's events stay in order), in batches: the host hands each call up to host.json's
``maxMessageBatchSize`` messages of one session, applied in order (``shared.handlers.messages.handle_messages``).
The function is named after its queue (``cluster-events`` -> ``cluster_events``)."""

from __future__ import annotations

from collections.abc import Callable

import azure.functions as func

from shared.bootstrap import container
from shared.config import SERVICE_BUS_CONNECTION
from shared.domain.events import QUEUE_NAMES
from shared.handlers.messages import QueueMessage, handle_messages

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ untyped


def _trigger_for(queue: str) -> Callable[[list[func.ServiceBusMessage]], None]:
    def on_messages(msgs: list[func.ServiceBusMessage]) -> None:
        handle_messages(queue, [QueueMessage(m.message_id or "", m.get_body(), m.delivery_count or 1) for m in msgs],
                        container().deps)

    on_messages.__name__ = on_messages.__qualname__ = queue.replace("-", "_")
    return on_messages


for _queue in QUEUE_NAMES:
    bp.service_bus_queue_trigger(arg_name="msgs", queue_name=_queue, connection=SERVICE_BUS_CONNECTION,
                                 is_sessions_enabled=True, cardinality=func.Cardinality.MANY)(_trigger_for(_queue))
