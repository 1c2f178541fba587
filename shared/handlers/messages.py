"""One queue message in: decode, route, apply. An event that can never be applied is dead-lettered at once with
the reason; any other failure propagates so the broker redelivers (and dead-letters after maxDeliveryCount)."""

from __future__ import annotations

import logging

from shared.domain.errors import InvalidEvent
from shared.handlers.deps import Deps
from shared.handlers.registry import decode_event, dispatch
from shared.telemetry.events import handling

log = logging.getLogger(__name__)


def handle_message(queue: str, message_id: str, body: bytes, deps: Deps) -> None:
    try:
        event = decode_event(body)
        if event.queue != queue:
            raise InvalidEvent(f"type: {event.type} belongs on queue {event.queue!r}, not {queue!r}")
        with handling(queue, event):  # the publisher's trace continued, the ids on every log record, metrics
            dispatch(event, deps)
    except InvalidEvent as exc:
        log.warning("dead-lettering message %s from %s: %s", message_id, queue, exc.message)
        deps.bus.dead_letter(queue, message_id, body, exc.message)
