"""Queue triggers: one function per queue of the event registry (``shared.domain.events.QUEUE_NAMES``), sessions
on (one cluster's events stay in order). The function is named after its queue (``cluster-events`` ->
``cluster_events``)."""

from __future__ import annotations

from collections.abc import Callable

import azure.functions as func

from shared.bootstrap import container
from shared.config import SERVICE_BUS_CONNECTION
from shared.domain.events import QUEUE_NAMES
from shared.handlers.messages import handle_message

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ untyped


def _trigger_for(queue: str) -> Callable[[func.ServiceBusMessage], None]:
    def on_message(msg: func.ServiceBusMessage) -> None:
        handle_message(queue, msg.message_id or "", msg.get_body(), container().deps)

    on_message.__name__ = on_message.__qualname__ = queue.replace("-", "_")
    return on_message


for _queue in QUEUE_NAMES:
    bp.service_bus_queue_trigger(arg_name="msg", queue_name=_queue, connection=SERVICE_BUS_CONNECTION,
                                 is_sessions_enabled=True)(_trigger_for(_queue))
