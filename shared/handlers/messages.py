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

A run of one cluster's submits in a batch (only looks coalesced away and invalid messages may come between them)
is decided once: each job's document is made, then one decision queues them
all, each once per event id, with one read and one write of the cluster (``on_job_submits``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from shared.domain import events as ev
from shared.domain.errors import InvalidEvent, PermanentError, reason_of
from shared.domain.events import CloudEvent
from shared.domain.requests import JobSubmit
from shared.handlers.deps import Deps
from shared.handlers.events import on_job_submits
from shared.handlers.registry import decode_event, dispatch, event_body
from shared.ports import MAX_DELIVERY_COUNT
from shared.telemetry.events import handling, note_folded

log = logging.getLogger(__name__)

# Events that carry no change: a reconcile of their cluster is all they ask for (``shared.handlers.events``).
LOOK_ONLY = frozenset({ev.JOB_FINISHED, ev.SCALE_REQUEST, ev.NODE_READY, ev.NODE_PREEMPTED, ev.NODE_FAILED})


@dataclass(frozen=True)
class QueueMessage:
    """A delivered message, as much of it as the handler needs."""

    message_id: str
    body: bytes
    delivery_count: int = 1


@dataclass(frozen=True)
class _Decoded:
    message: QueueMessage
    event: CloudEvent
    body: BaseModel  # ``data``, checked against the type's body model


def handle_message(queue: str, message_id: str, body: bytes, deps: Deps) -> None:
    """One message: applied, or dead-lettered when it never can be; anything else raises for redelivery."""
    decoded = _decoded(queue, QueueMessage(message_id, body), deps)
    if decoded is not None:
        _apply(queue, decoded, deps)


def handle_messages(queue: str, messages: Sequence[QueueMessage], deps: Deps) -> None:
    """A batch of one session, in order (see the module docstring). The first failure stops it and raises, so the
    broker redelivers the whole batch: what was applied already is recognised (each handler is idempotent), and
    nothing of the session is applied out of order. A message failing on its last delivery is dead-lettered here
    instead, so that the messages after it in the batch do not go down with it.

    Every message is decoded and checked first, and one that can never be applied is dead-lettered then: a look
    is coalesced only into one that will be made."""
    batch = [d for m in messages if (d := _decoded(queue, m, deps)) is not None]
    last_look = {_cluster_of(d): i for i, d in enumerate(batch) if d.event.type in LOOK_ONLY}
    submits: list[_Decoded] = []  # a run of one cluster's submits, decided together
    for i, decoded in enumerate(batch):
        if decoded.event.type in LOOK_ONLY and last_look[_cluster_of(decoded)] != i:
            note_folded(decoded.event, "coalesced")  # its count, and its trace if it has one, show where it went
            continue
        if decoded.event.type == ev.JOB_SUBMIT and (not submits or _cluster_of(submits[0]) == _cluster_of(decoded)):
            submits.append(decoded)
            continue
        _apply_submits(queue, submits, deps)
        submits = [decoded] if decoded.event.type == ev.JOB_SUBMIT else []
        if not submits:
            _apply_unless_last_delivery(queue, decoded, deps)
    _apply_submits(queue, submits, deps)


def _apply_submits(queue: str, submits: list[_Decoded], deps: Deps) -> None:
    """A run of submits to one cluster: one decision for all, under the last one's span (the others' spans say
    ``merged``). Should it fail for good, or on a last delivery, each is applied alone, so that only a submit
    that can never be applied is dead-lettered."""
    if len(submits) < 2:
        for decoded in submits:
            _apply_unless_last_delivery(queue, decoded, deps)
        return
    try:
        with handling(queue, submits[-1].event):
            on_job_submits([(d.event, _submit_body(d)) for d in submits], deps)
    except PermanentError:
        pass
    except Exception:
        if any(d.message.delivery_count < MAX_DELIVERY_COUNT for d in submits):
            raise
    else:
        for decoded in submits[:-1]:
            note_folded(decoded.event, "merged")
        return
    for decoded in submits:
        _apply_unless_last_delivery(queue, decoded, deps)


def _apply_unless_last_delivery(queue: str, decoded: _Decoded, deps: Deps) -> None:
    try:
        _apply(queue, decoded, deps)
    except Exception as exc:  # the broker's rule, applied to this message alone
        message = decoded.message
        if message.delivery_count < MAX_DELIVERY_COUNT:
            raise
        reason = f"MaxDeliveryCountExceeded: {type(exc).__name__}: {exc}"
        log.error("dead-lettering %s after %d deliveries: %s", message.message_id, message.delivery_count, reason)
        deps.bus.dead_letter(queue, message.message_id, message.body, reason)


def _submit_body(decoded: _Decoded) -> JobSubmit:
    assert isinstance(decoded.body, JobSubmit)
    return decoded.body


def _cluster_of(decoded: _Decoded) -> tuple[str, str]:
    return decoded.event.workspace, decoded.event.cluster


def _decoded(queue: str, message: QueueMessage, deps: Deps) -> _Decoded | None:
    """The message's event and checked body, or None once it was dead-lettered as one that can never be applied."""
    try:
        event = decode_event(message.body)
        if event.queue != queue:
            raise InvalidEvent(f"type: {event.type} belongs on queue {event.queue!r}, not {queue!r}")
    except InvalidEvent as exc:
        _dead_letter(queue, message.message_id, message.body, exc, deps)
        return None
    try:
        return _Decoded(message, event, event_body(event))
    except InvalidEvent as exc:
        try:
            with handling(queue, event):  # a well-formed event: traced and counted as dead-lettered
                raise
        except InvalidEvent:
            _dead_letter(queue, message.message_id, message.body, exc, deps)
        return None


def _apply(queue: str, decoded: _Decoded, deps: Deps) -> None:
    try:
        with handling(queue, decoded.event):  # the publisher's trace continued, the ids on every log record, metrics
            dispatch(decoded.event, deps, decoded.body)
    except PermanentError as exc:
        _dead_letter(queue, decoded.message.message_id, decoded.message.body, exc, deps)


def _dead_letter(queue: str, message_id: str, body: bytes, exc: PermanentError, deps: Deps) -> None:
    reason = reason_of(exc)
    log.warning("dead-lettering message %s from %s: %s", message_id, queue, reason)
    deps.bus.dead_letter(queue, message_id, body, reason)
