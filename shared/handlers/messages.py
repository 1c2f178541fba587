"""Queue messages in: decode, route, apply. The trigger layer's half of the error kinds: a ``PermanentError``
(an invalid event, any domain error) is dead-lettered at once with the reason; anything else, a ``TemporaryError``
first, propagates so the broker redelivers (after the error's ``delay`` where the host can wait; see
``shared.local.host``) and dead-letters after maxDeliveryCount.

A queue trigger is handed a batch: the messages of one session, so of one cluster, in order (``handle_messages``).
They are applied in that order, except that the events which only ask for a look at the cluster (``LOOK_ONLY``)
are looked at once: only the last of them per cluster is applied, and it reconciles what all of them announced.
Each of them changes nothing and records nothing; the provider's observation, read when the cluster is reconciled,
is the truth they point at. Reconciling twice in a row at the same moment decides nothing the first time did not,
so the looks skipped are not missed: the batch's last look, or a later decision about that cluster, makes them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from shared.domain import events as ev
from shared.domain.errors import InvalidEvent, PermanentError, reason_of
from shared.domain.events import CloudEvent
from shared.handlers.deps import Deps
from shared.handlers.registry import decode_event, dispatch
from shared.ports import MAX_DELIVERY_COUNT
from shared.telemetry.events import handling

log = logging.getLogger(__name__)

# Events that carry no change: a reconcile of their cluster is all they ask for (``shared.handlers.events``).
LOOK_ONLY = frozenset({ev.JOB_FINISHED, ev.SCALE_REQUEST, ev.NODE_READY, ev.NODE_PREEMPTED, ev.NODE_FAILED})


@dataclass(frozen=True)
class QueueMessage:
    """A delivered message, as much of it as the handler needs."""

    message_id: str
    body: bytes
    delivery_count: int = 1


def handle_message(queue: str, message_id: str, body: bytes, deps: Deps) -> None:
    """One message: applied, or dead-lettered when it never can be; anything else raises for redelivery."""
    event = _decoded(queue, message_id, body, deps)
    if event is not None:
        _apply(queue, message_id, body, event, deps)


def handle_messages(queue: str, messages: Sequence[QueueMessage], deps: Deps) -> None:
    """A batch of one session, in order (see the module docstring). The first failure stops it and raises, so the
    broker redelivers the whole batch: what was applied already is recognised (each handler is idempotent), and
    nothing of the session is applied out of order. A message failing on its last delivery is dead-lettered here
    instead, so that the messages after it in the batch do not go down with it."""
    events = [_decoded(queue, m.message_id, m.body, deps) for m in messages]
    last_look = {(e.workspace, e.cluster): i for i, e in enumerate(events) if e is not None and e.type in LOOK_ONLY}
    for i, (message, event) in enumerate(zip(messages, events, strict=True)):
        if event is None:
            continue
        if event.type in LOOK_ONLY and last_look[event.workspace, event.cluster] != i:
            with handling(queue, event, outcome="coalesced"):  # its trace and count show where it went
                pass
            continue
        try:
            _apply(queue, message.message_id, message.body, event, deps)
        except Exception as exc:  # the broker's rule, applied to this message alone
            if message.delivery_count < MAX_DELIVERY_COUNT:
                raise
            reason = f"MaxDeliveryCountExceeded: {type(exc).__name__}: {exc}"
            log.error("dead-lettering %s after %d deliveries: %s", message.message_id, message.delivery_count, reason)
            deps.bus.dead_letter(queue, message.message_id, message.body, reason)


def _decoded(queue: str, message_id: str, body: bytes, deps: Deps) -> CloudEvent | None:
    """The message's event, or None once it was dead-lettered as one that can never be applied."""
    try:
        event = decode_event(body)
        if event.queue != queue:
            raise InvalidEvent(f"type: {event.type} belongs on queue {event.queue!r}, not {queue!r}")
    except InvalidEvent as exc:
        _dead_letter(queue, message_id, body, exc, deps)
        return None
    return event


def _apply(queue: str, message_id: str, body: bytes, event: CloudEvent, deps: Deps) -> None:
    try:
        with handling(queue, event):  # the publisher's trace continued, the ids on every log record, metrics
            dispatch(event, deps)
    except PermanentError as exc:
        _dead_letter(queue, message_id, body, exc, deps)


def _dead_letter(queue: str, message_id: str, body: bytes, exc: PermanentError, deps: Deps) -> None:
    reason = reason_of(exc)
    log.warning("dead-lettering message %s from %s: %s", message_id, queue, reason)
    deps.bus.dead_letter(queue, message_id, body, reason)
