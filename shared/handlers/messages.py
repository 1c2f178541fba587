"""Queue messages in: decode, route, apply. The trigger layer's half of the error kinds: a ``PermanentError``
(an invalid event, any domain error) is dead-lettered at once with the reason; anything else, a ``TemporaryError``
first, propagates so the broker redelivers (after the error's ``delay`` where the host can wait; see
``shared.local.host``) and dead-letters after maxDeliveryCount.

A queue trigger may be handed a batch: messages of one session, so of one cluster, in order (``handle_messages``).
They are applied in that order, except that the events which only ask for a look at the cluster (``LOOK_ONLY``)
are looked at once: only the last of them per cluster is applied, and it reconciles what all of them announced.
Each of them changes nothing and records nothing; the provider's observation, read when the cluster is reconciled,
is the truth they point at. Reconciling twice in a row at the same moment decides nothing the first time did not,
so the looks skipped are not missed: the batch's last look makes them (should the batch stop before it, that look
is delivered again).

A run of one cluster's submits in a batch (only looks coalesced away may come between them) is decided once: each
job's document is made, then one decision queues them all, each once per event id, with one read and one write of
the cluster (``on_job_submits``).

A batch that cannot go on stops at the message that failed and raises ``BatchStopped``: the messages before it
are settled (applied, coalesced, or dead-lettered here) and are completed; that message and those after it were
not applied, and are delivered again, in order.
"""

from __future__ import annotations

import logging
import time
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
from shared.ports import MAX_DELIVERY_COUNT, BatchStopped
from shared.telemetry.events import handling, note_folded, note_handled

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


@dataclass(frozen=True)
class _Invalid:
    message: QueueMessage
    error: InvalidEvent
    event: CloudEvent | None  # when the envelope was well formed and only its data was not


def handle_message(queue: str, message_id: str, body: bytes, deps: Deps) -> None:
    """One message: applied, or dead-lettered when it never can be; anything else raises for redelivery."""
    checked = _checked(queue, QueueMessage(message_id, body))
    if isinstance(checked, _Invalid):
        _dead_letter_invalid(queue, checked, deps)
    else:
        _apply(queue, checked, deps)


def handle_messages(queue: str, messages: Sequence[QueueMessage], deps: Deps) -> None:
    """A batch of one session, in order (see the module docstring). Raises ``BatchStopped`` at the first failure:
    nothing of the session is applied out of order. A message failing on its last delivery is dead-lettered here
    instead, and the batch goes on.

    Every message is checked first, so that a look is coalesced only into one that will be made; one that can never
    be applied is dead-lettered in its turn, so that a batch stopped before it leaves it to its next delivery."""
    checked = [_checked(queue, m) for m in messages]
    last_look = {_cluster_of(c): i for i, c in enumerate(checked)
                 if isinstance(c, _Decoded) and c.event.type in LOOK_ONLY}
    run: list[tuple[int, _Decoded]] = []  # a run of one cluster's submits, decided together
    for i, item in enumerate(checked):
        if isinstance(item, _Decoded) and item.event.type in LOOK_ONLY and last_look[_cluster_of(item)] != i:
            note_folded(item.event, "coalesced")  # its count, and its trace if it has one, show where it went
            continue
        if isinstance(item, _Decoded) and item.event.type == ev.JOB_SUBMIT and (
                not run or _cluster_of(run[0][1]) == _cluster_of(item)):
            run.append((i, item))
            continue
        _apply_submits(queue, run, deps)
        run = []
        if isinstance(item, _Invalid):
            _dead_letter_invalid(queue, item, deps)
        elif item.event.type == ev.JOB_SUBMIT:
            run = [(i, item)]
        else:
            _apply_or_stop(queue, i, item, deps)
    _apply_submits(queue, run, deps)


def _apply_submits(queue: str, run: list[tuple[int, _Decoded]], deps: Deps) -> None:
    """A run of submits to one cluster: one decision for all, traced under the last one's span and counted once
    its outcome is known (the others as ``merged``). Should it fail for good, or on its first message's last
    delivery, each is applied alone, so that only a submit that fails itself is dead-lettered."""
    if len(run) > 1 and _merged(queue, run, deps):
        return
    for i, decoded in run:  # alone, or each after the merged decision failed for good or on its last delivery
        _apply_or_stop(queue, i, decoded, deps)


def _merged(queue: str, run: list[tuple[int, _Decoded]], deps: Deps) -> bool:
    """The run decided once; False when each must be applied alone instead."""
    last = run[-1][1].event
    started = time.perf_counter()
    try:
        with handling(queue, last, counted=False):
            on_job_submits([(d.event, _submit_body(d)) for _, d in run], deps)
    except PermanentError:
        return False
    except Exception as exc:
        note_handled(last, "retried", time.perf_counter() - started)
        if run[0][1].message.delivery_count < MAX_DELIVERY_COUNT:
            raise BatchStopped(run[0][0], exc) from exc
        return False
    note_handled(last, "ok", time.perf_counter() - started)
    for _, decoded in run[:-1]:
        note_folded(decoded.event, "merged")
    return True


def _apply_or_stop(queue: str, index: int, decoded: _Decoded, deps: Deps) -> None:
    """Apply one message of a batch; a failure stops the batch there, unless it is the message's last delivery:
    then it is dead-lettered with the reason, as the broker would, and the batch goes on."""
    try:
        _apply(queue, decoded, deps)
    except Exception as exc:
        message = decoded.message
        if message.delivery_count < MAX_DELIVERY_COUNT:
            raise BatchStopped(index, exc) from exc
        reason = f"MaxDeliveryCountExceeded: {type(exc).__name__}: {exc}"
        log.error("dead-lettering %s after %d deliveries: %s", message.message_id, message.delivery_count, reason)
        deps.bus.dead_letter(queue, message.message_id, message.body, reason)


def _submit_body(decoded: _Decoded) -> JobSubmit:
    assert isinstance(decoded.body, JobSubmit)
    return decoded.body


def _cluster_of(decoded: _Decoded) -> tuple[str, str]:
    return decoded.event.workspace, decoded.event.cluster


def _checked(queue: str, message: QueueMessage) -> _Decoded | _Invalid:
    """The message's event and its checked data, or why it can never be applied."""
    try:
        event = decode_event(message.body)
        if event.queue != queue:
            raise InvalidEvent(f"type: {event.type} belongs on queue {event.queue!r}, not {queue!r}")
    except InvalidEvent as exc:
        return _Invalid(message, exc, None)
    try:
        return _Decoded(message, event, event_body(event))
    except InvalidEvent as exc:
        return _Invalid(message, exc, event)


def _apply(queue: str, decoded: _Decoded, deps: Deps) -> None:
    try:
        with handling(queue, decoded.event):  # the publisher's trace continued, the ids on every log record, metrics
            dispatch(decoded.event, deps, decoded.body)
    except PermanentError as exc:
        _dead_letter(queue, decoded.message, exc, deps)


def _dead_letter_invalid(queue: str, invalid: _Invalid, deps: Deps) -> None:
    if invalid.event is not None:
        try:
            with handling(queue, invalid.event):  # a well-formed event: traced and counted as dead-lettered
                raise invalid.error
        except InvalidEvent:
            pass
    _dead_letter(queue, invalid.message, invalid.error, deps)


def _dead_letter(queue: str, message: QueueMessage, exc: PermanentError, deps: Deps) -> None:
    reason = reason_of(exc)
    log.warning("dead-lettering message %s from %s: %s", message.message_id, queue, reason)
    deps.bus.dead_letter(queue, message.message_id, message.body, reason)
