"""Spans and metrics around CloudEvents: the producer side puts the W3C trace context into the event (the
CloudEvents distributed-tracing extension, ``traceparent``), the consumer side continues that trace."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Sequence
from contextvars import Token

from opentelemetry import context, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import TraceState

from shared.domain.errors import PermanentError, reason_of
from shared.domain.events import CloudEvent
from shared.telemetry.log_context import reset_log_ids, set_log_ids
from shared.telemetry.state import Instruments, current
from shared.telemetry.store_calls import (
    NotingToken,
    set_store_calls,
    start_noting_store_calls,
    stop_noting_store_calls,
)

_propagator = TraceContextTextMapPropagator()
_NO_PARENT = context.Context()


def event_attributes(event: CloudEvent) -> dict[str, str]:
    """The event's ids as span attributes (the event is parsed: its subject is known to be well formed)."""
    attributes = {"cloudevents.event_id": event.id, "cloudevents.event_type": event.type,
                  "cloudevents.event_source": event.source, "messaging.destination.name": event.queue,
                  "computeplane.workspace": event.workspace, "computeplane.cluster": event.cluster}
    job = job_id_of(event)
    if job is not None:
        attributes["computeplane.job_id"] = job
    return attributes


def job_id_of(event: CloudEvent) -> str | None:
    job = event.data.get("job_id")
    return job if isinstance(job, str) else None


def set_event_log_ids(event: CloudEvent) -> Token[dict[str, str]]:
    """The event's ids on every log record from now until ``reset_log_ids``."""
    return set_log_ids(workspace=event.workspace, cluster=event.cluster, event=event.id, job=job_id_of(event))


def with_trace_context(event: CloudEvent) -> CloudEvent:
    """The event carrying the current trace context (unchanged when telemetry is off or it carries one)."""
    if current() is None or event.traceparent:
        return event
    span = trace.get_current_span()
    if isinstance(span, _RemoteParent) and span.traceparent is not None:  # a dropped trace, carried on as it came
        return event.model_copy(update={"traceparent": span.traceparent})
    span_context = span.get_span_context()
    if not span_context.is_valid:
        return event
    # What the SDK's propagator writes (W3C Trace Context, version 00), without its carrier and setter.
    return event.model_copy(update={
        "traceparent": f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}",
        "tracestate": span_context.trace_state.to_header() or None})


def handling(queue: str, event: CloudEvent, *, counted: bool = True) -> EventHandling:
    """Around applying one event: a consumer span continuing the publisher's trace, the ids on every log record,
    and the events-handled counter and latency by type and outcome (ok, dead_lettered, retried). ``counted=False``
    leaves the counting to the caller (``note_handled``), who knows the outcome only later."""
    return EventHandling(event, counted)


def note_handled(event: CloudEvent, outcome: str, seconds: float) -> None:
    """The events-handled counter and latency of an event handled under ``handling(..., counted=False)``."""
    instruments = current()
    if instruments is not None:
        instruments.events_handled.add(event.type, outcome)
        instruments.handler_duration.record(seconds, _labels(event.type, outcome))


def note_folded(event: CloudEvent, outcome: str) -> None:
    """An event of a batch whose work another event of the batch does (``coalesced``: its look; ``merged``: its
    submit's decision): counted by that outcome, with no latency (it had no work of its own), and given a span only
    when it continues a publisher's trace, so that the trace shows where it went."""
    instruments = current()
    if instruments is None:
        return
    if event.traceparent:
        span, _ = _consumer_span(instruments, event)
        if span is not None:
            if span.is_recording():
                span.set_attribute("computeplane.outcome", outcome)
            span.end()
    instruments.events_handled.add(event.type, outcome)


class EventHandling:
    """``handling``'s context manager: a class rather than generators, since every event takes this path.

    With a parent-based sampler (as deployed) an event whose trace was dropped upstream gets no span here: its
    publisher's context is made current as it came, so what this handler publishes carries the same trace, still
    dropped, on. The sampler would have made a span that records nothing, at about 13 µs on a path where a
    whole event costs 500 to 900 µs of CPU (``python -m bench.tracing_calls``). Otherwise a span is started and
    attached rather than ``start_as_current_span``: the same span and context without the SDK's generator-based
    context managers."""

    __slots__ = ("_calls_token", "_context_token", "_counted", "_event", "_ids_token", "_instruments", "_span",
                 "_started")
    _calls_token: NotingToken | None  # None unless the span is recorded: only a recorded span gets the store calls

    def __init__(self, event: CloudEvent, counted: bool = True) -> None:
        self._event, self._counted = event, counted

    def __enter__(self) -> None:
        event = self._event
        instruments = self._instruments = current()
        self._span = self._calls_token = None
        if instruments is not None:
            self._started = time.perf_counter()
            self._span, attached = _consumer_span(instruments, event)  # first: it may raise, and sets nothing
            self._context_token = context.attach(attached)
            if self._span is not None and self._span.is_recording():
                self._calls_token = start_noting_store_calls()
        self._ids_token = set_event_log_ids(event)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: object) -> None:
        reset_log_ids(self._ids_token)
        instruments = self._instruments
        if instruments is None:
            return
        context.detach(self._context_token)
        calls = stop_noting_store_calls(self._calls_token) if self._calls_token is not None else None
        outcome = "ok" if exc is None else "dead_lettered" if isinstance(exc, PermanentError) else "retried"
        span = self._span
        try:
            if span is not None and exc is not None:
                span.record_exception(exc)
                span.set_status(trace.StatusCode.ERROR, reason_of(exc) if isinstance(exc, PermanentError)
                                else f"{type(exc).__name__}: {exc}")
            if span is not None and calls is not None:
                set_store_calls(span, calls)
                span.set_attribute("computeplane.outcome", outcome)
        finally:
            if span is not None:
                span.end()
            if self._counted:
                instruments.events_handled.add(event_type := self._event.type, outcome)
                instruments.handler_duration.record(time.perf_counter() - self._started, _labels(event_type, outcome))


def _consumer_span(instruments: Instruments, event: CloudEvent) -> tuple[trace.Span | None, context.Context]:
    """The handler's span (None: none needed) and the context to make current while the event is handled."""
    parent = _extract(event) if event.traceparent else _NO_PARENT  # no parent: a trace of its own
    if instruments.follows_remote_parents and _dropped_upstream(parent):
        return None, parent  # the sampler would drop the span: the trace is carried on as it came
    span = instruments.tracer.start_span(f"process {event.type}", context=parent, kind=trace.SpanKind.CONSUMER)
    if span.is_recording():  # the ids are set once it is known to be recorded: a dropped span costs none
        try:
            span.set_attributes(event_attributes(event))
        except BaseException:
            span.end()
            raise
    return span, trace.set_span_in_context(span, parent)


def _dropped_upstream(parent: context.Context) -> bool:
    """A valid remote parent whose trace was not sampled (an invalid one, as no parent, starts a trace here)."""
    span_context = trace.get_current_span(parent).get_span_context()
    return span_context.is_valid and not span_context.trace_flags.sampled


# Version 00 exactly as W3C Trace Context writes it: what every publisher of ours (the SDK's propagator) writes.
_TRACEPARENT_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def _extract(event: CloudEvent) -> context.Context:
    """The publisher's context."""
    assert event.traceparent is not None
    return _parsed(event.traceparent, event.tracestate)


@functools.lru_cache(maxsize=1024)
def _parsed(traceparent: str, tracestate: str | None) -> context.Context:
    """The context a traceparent and tracestate stand for, parsed here for the usual shape: the SDK's propagator
    does the same through a carrier, a getter and more checks, at twice the cost on a path every traced event
    takes. Anything else (other versions, all-zero ids, malformed) is left to the propagator, which knows the rules
    for it. Kept for the next event that carries the same: every event of a dropped trace does, from the submit to
    the job's end (a handler under it starts no span, so it carries the one it came with on), and 19 traces in 20
    are dropped where they start. A ``Context`` cannot be changed, so many handlers may make one current at once."""
    match = _TRACEPARENT_00.fullmatch(traceparent)
    if match is None or match[1] == _ZERO_TRACE_ID or match[2] == _ZERO_SPAN_ID:
        carrier = {"traceparent": traceparent}
        if tracestate:
            carrier["tracestate"] = tracestate
        return _propagator.extract(carrier)
    span_context = trace.SpanContext(
        trace_id=int(match[1], 16), span_id=int(match[2], 16), is_remote=True,
        trace_flags=trace.TraceFlags(int(match[3], 16)),
        trace_state=TraceState.from_header([tracestate]) if tracestate else None)
    return trace.set_span_in_context(_RemoteParent(span_context, None if tracestate else traceparent), _NO_PARENT)


class _RemoteParent(trace.NonRecordingSpan):
    """The publisher's span as its event told it, with the ``traceparent`` it came as: the string the propagator
    would write from it (version 00, lower case, no tracestate to normalise; None otherwise), so that what a handler
    under a dropped trace publishes carries it on without formatting it again."""

    def __init__(self, context: trace.SpanContext, traceparent: str | None) -> None:
        super().__init__(context)
        self.traceparent = traceparent


_ZERO_TRACE_ID, _ZERO_SPAN_ID = "0" * 32, "0" * 16


@functools.lru_cache(maxsize=256)
def _labels(event_type: str, outcome: str) -> dict[str, str]:
    """The handler-duration labels, built once per type and outcome (the SDK copies them; nothing mutates them)."""
    return {"cloudevents.event_type": event_type, "computeplane.outcome": outcome}


def count_decisions(actions: Sequence[object]) -> None:
    """Reconcile's decisions, by kind of action (ProvisionNode, ReleaseNode, StartRun, ...)."""
    instruments = current()
    if instruments is None or not actions:
        return
    for action in actions:
        instruments.reconcile_decisions.add(type(action).__name__)

