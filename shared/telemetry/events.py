"""Spans and metrics around CloudEvents: the producer side puts the W3C trace context into the event (the
CloudEvents distributed-tracing extension, ``traceparent``), the consumer side continues that trace."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

from opentelemetry import context, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.domain.errors import PermanentError, reason_of
from shared.domain.events import CloudEvent
from shared.telemetry.log_context import log_ids
from shared.telemetry.state import current
from shared.telemetry.store_calls import noting_store_calls

_propagator = TraceContextTextMapPropagator()
_NO_PARENT = context.Context()


def event_attributes(event: CloudEvent) -> dict[str, str]:
    """The event's ids as span attributes (the event is parsed: its subject is known to be well formed)."""
    attributes = {"cloudevents.event_id": event.id, "cloudevents.event_type": event.type,
                  "cloudevents.event_source": event.source, "messaging.destination.name": event.queue,
                  "computeplane.workspace": event.workspace, "computeplane.cluster": event.cluster}
    job = event.data.get("job_id")
    if isinstance(job, str):
        attributes["computeplane.job_id"] = job
    return attributes


def with_trace_context(event: CloudEvent) -> CloudEvent:
    """The event carrying the current trace context (unchanged when telemetry is off or it carries one)."""
    if current() is None or event.traceparent:
        return event
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    if "traceparent" not in carrier:
        return event
    return event.model_copy(update={"traceparent": carrier["traceparent"],
                                    "tracestate": carrier.get("tracestate") or None})


@contextmanager
def handling(queue: str, event: CloudEvent) -> Iterator[None]:
    """Around applying one event: a consumer span continuing the publisher's trace, the ids on every log record,
    and the events-handled counter and latency by type and outcome (ok, dead_lettered, retried)."""
    instruments = current()
    if instruments is None:
        job = event.data.get("job_id")
        with log_ids(workspace=event.workspace, cluster=event.cluster, event=event.id,
                     job=job if isinstance(job, str) else None):
            yield
        return
    parent = _extract(event) if event.traceparent else _NO_PARENT  # no parent: a trace of its own
    # start_span and attach rather than start_as_current_span: the same span and context without the SDK's two
    # generator-based context managers, on the one path every event takes. The ids are set once the span is known
    # to be recorded (none of the samplers we configure decides by them); a dropped trace costs no attributes.
    span = instruments.tracer.start_span(f"process {event.type}", context=parent, kind=trace.SpanKind.CONSUMER)
    recording = span.is_recording()
    if recording:
        span.set_attributes(event_attributes(event))
    token = context.attach(trace.set_span_in_context(span, parent))
    started, outcome = time.perf_counter(), "ok"
    job = event.data.get("job_id")
    try:  # (a trace the sampler dropped gets no store-call notes: nobody would read them)
        with noting_store_calls(span) if recording else nullcontext(), \
                log_ids(workspace=event.workspace, cluster=event.cluster, event=event.id,
                        job=job if isinstance(job, str) else None):
            yield
    except PermanentError as exc:
        outcome = "dead_lettered"
        span.record_exception(exc)
        span.set_status(trace.StatusCode.ERROR, reason_of(exc))
        raise
    except BaseException as exc:
        outcome = "retried"
        span.record_exception(exc)
        span.set_status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        context.detach(token)
        if recording:
            span.set_attribute("computeplane.outcome", outcome)
        span.end()
        instruments.events_handled.add(event.type, outcome)
        instruments.handler_duration.record(time.perf_counter() - started, _labels(event.type, outcome))


def _extract(event: CloudEvent) -> context.Context:
    carrier = {"traceparent": event.traceparent}
    if event.tracestate:
        carrier["tracestate"] = event.tracestate
    return _propagator.extract(carrier)


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

