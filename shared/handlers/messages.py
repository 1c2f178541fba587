"""One queue message in: decode, route, apply. The trigger layer's half of the error kinds: a ``PermanentError``
(an invalid event, any domain error) is dead-lettered at once with the reason; anything else, a ``TemporaryError``
first, propagates so the broker redelivers (after the error's ``delay`` where the host can wait; see
``shared.local.host``) and dead-letters after maxDeliveryCount."""

from __future__ import annotations

import logging

from shared.domain.errors import InvalidEvent, PermanentError, reason_of
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
    except PermanentError as exc:
        reason = reason_of(exc)
        log.warning("dead-lettering message %s from %s: %s", message_id, queue, reason)
        deps.bus.dead_letter(queue, message_id, body, reason)
