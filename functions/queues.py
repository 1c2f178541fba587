"""Queue triggers: one function per Service Bus queue, sessions on (one cluster's events stay in order)."""

from __future__ import annotations

import azure.functions as func

from shared.bootstrap import container
from shared.config import SERVICE_BUS_CONNECTION
from shared.domain.events import CLUSTER_EVENTS, JOB_EVENTS, SCALE_EVENTS
from shared.handlers.messages import handle_message

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ untyped


@bp.service_bus_queue_trigger(arg_name="msg", queue_name=CLUSTER_EVENTS, connection=SERVICE_BUS_CONNECTION,
                              is_sessions_enabled=True)
def cluster_events(msg: func.ServiceBusMessage) -> None:
    handle_message(CLUSTER_EVENTS, msg.message_id or "", msg.get_body(), container().deps)


@bp.service_bus_queue_trigger(arg_name="msg", queue_name=JOB_EVENTS, connection=SERVICE_BUS_CONNECTION,
                              is_sessions_enabled=True)
def job_events(msg: func.ServiceBusMessage) -> None:
    handle_message(JOB_EVENTS, msg.message_id or "", msg.get_body(), container().deps)


@bp.service_bus_queue_trigger(arg_name="msg", queue_name=SCALE_EVENTS, connection=SERVICE_BUS_CONNECTION,
                              is_sessions_enabled=True)
def scale_events(msg: func.ServiceBusMessage) -> None:
    handle_message(SCALE_EVENTS, msg.message_id or "", msg.get_body(), container().deps)
