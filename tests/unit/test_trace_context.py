"""The trace context an event carries, read and written by the handler's own short paths, must mean what the SDK's
W3C propagator means; and a handler skips its span only where the sampler would have dropped it anyway."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import context, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.domain.events import CloudEvent, new_event
from shared.telemetry import log_context, state
from shared.telemetry.events import _extract, handling, with_trace_context
from shared.telemetry.ports import TRACED_PROVIDER_CALLS, TracedPort

PROPAGATOR = TraceContextTextMapPropagator()


def _event(traceparent: str | None = None, tracestate: str | None = None) -> CloudEvent:
    event = new_event("computeplane.job.submit", "ws", "c1", {"job_id": "j1"}, event_id="ev-1")
    return event.model_copy(update={"traceparent": traceparent, "tracestate": tracestate})


def _propagators_span_context(traceparent: str, tracestate: str | None) -> trace.SpanContext:
    carrier = {"traceparent": traceparent, **({"tracestate": tracestate} if tracestate else {})}
    return trace.get_current_span(PROPAGATOR.extract(carrier)).get_span_context()


@given(trace_id=st.integers(0, 2**128 - 1), span_id=st.integers(0, 2**64 - 1), flags=st.integers(0, 255),
       tracestate=st.sampled_from([None, "", "congo=t61rcWkgMzE", "a=1,b=2", "not a tracestate"]))
def test_the_handlers_parse_of_a_traceparent_agrees_with_the_propagator(
        trace_id: int, span_id: int, flags: int, tracestate: str | None) -> None:
    traceparent = f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"
    ours = trace.get_current_span(_extract(_event(traceparent, tracestate))).get_span_context()
    theirs = _propagators_span_context(traceparent, tracestate)
    assert (ours, ours.is_valid, ours.is_remote, ours.trace_flags, ours.trace_state) == \
        (theirs, theirs.is_valid, theirs.is_remote, theirs.trace_flags, theirs.trace_state)


@pytest.mark.parametrize("traceparent", [
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",  # version 00 has no more fields
    "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-later",  # a later version may
    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # version ff is invalid
    "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",  # upper case
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",  # no flags
    " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 ",  # padded
    "garbage"])
def test_a_traceparent_of_any_other_shape_means_what_it_means_to_the_propagator(traceparent: str) -> None:
    ours = trace.get_current_span(_extract(_event(traceparent))).get_span_context()
    theirs = _propagators_span_context(traceparent, None)
    assert (ours, ours.is_valid, ours.trace_flags) == (theirs, theirs.is_valid, theirs.trace_flags)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    state.uninstall()


def _install(sampler: Sampler, exporter: InMemorySpanExporter) -> None:
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    state.install(provider, MeterProvider())


def test_an_event_carries_on_the_current_trace_as_the_propagator_would_write_it(
        spans: InMemorySpanExporter) -> None:
    _install(ALWAYS_ON, spans)
    tracer = trace.get_tracer("test", tracer_provider=TracerProvider())
    parent = trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                               trace_flags=trace.TraceFlags(1),
                               trace_state=trace.TraceState([("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")]))
    with tracer.start_as_current_span("publisher", context=trace.set_span_in_context(trace.NonRecordingSpan(parent))):
        carried = with_trace_context(_event())
        expected: dict[str, str] = {}
        PROPAGATOR.inject(expected)
    assert (carried.traceparent, carried.tracestate) == (expected["traceparent"], expected["tracestate"])
    assert with_trace_context(_event()).traceparent is None  # no current span: nothing to carry on


def _handled_carrying(traceparent: str) -> CloudEvent:
    """What a handler publishes while it handles an event that carries ``traceparent``."""
    with handling("job-events", _event(traceparent)):
        return with_trace_context(_event())


DROPPED_UPSTREAM = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
KEPT_UPSTREAM = "00-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_with_a_parent_based_sampler_a_trace_dropped_upstream_stays_dropped_and_carried_on(
        spans: InMemorySpanExporter) -> None:
    _install(ParentBased(TraceIdRatioBased(0.05)), spans)
    assert state.current() is not None and state.current().follows_remote_parents  # type: ignore[union-attr]
    published = _handled_carrying(DROPPED_UPSTREAM)
    assert published.traceparent is not None
    trace_id, _, flags = published.traceparent.split("-")[1:]
    assert (trace_id, flags) == ("0af7651916cd43dd8448eb211c80319c", "00")  # the same trace, still dropped
    kept = _handled_carrying(KEPT_UPSTREAM)
    [span] = spans.get_finished_spans()  # only the kept one is recorded, a child of its publisher
    assert span.parent is not None and span.parent.span_id == 0xB7AD6B7169203331
    assert kept.traceparent == f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01"
    assert context.get_current() == context.Context()  # nothing left attached


@given(trace_id=st.integers(1, 2**128 - 1), span_id=st.integers(1, 2**64 - 1),
       flags=st.integers(0, 255).filter(lambda flags: not flags & 1),
       tracestate=st.sampled_from([None, "", "congo=t61rcWkgMzE", "a=1,b=2", "not a tracestate"]))
def test_a_trace_dropped_upstream_is_carried_on_as_the_propagator_would_carry_it(
        trace_id: int, span_id: int, flags: int, tracestate: str | None) -> None:
    """Whatever the shape (parsed by the handler, kept from an earlier event, or left to the propagator), what the
    handler publishes is what the SDK's propagator writes from the publisher's context, and nothing is recorded."""
    spans = InMemorySpanExporter()
    _install(ParentBased(TraceIdRatioBased(0.05)), spans)
    try:
        traceparent = f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"
        carrier = {"traceparent": traceparent, **({"tracestate": tracestate} if tracestate else {})}
        expected: dict[str, str] = {}
        PROPAGATOR.inject(expected, context=PROPAGATOR.extract(carrier))
        with handling("job-events", _event(traceparent, tracestate)):
            published = with_trace_context(_event())
        assert (published.traceparent, published.tracestate) == (expected["traceparent"], expected.get("tracestate"))
        assert spans.get_finished_spans() == ()
        assert with_trace_context(_event()).traceparent is None  # nothing carried on after it
    finally:
        state.uninstall()


def test_under_a_trace_dropped_upstream_the_dropped_context_is_current(spans: InMemorySpanExporter) -> None:
    """What other instrumentation reads (in Azure the distro's: the Azure SDK clients, requests): a span it starts
    under the handler is dropped with the trace instead of starting one of its own, and log records carry the
    trace's id."""
    _install(ParentBased(TraceIdRatioBased(1.0)), spans)  # a root here would be kept: only the parent drops it
    instruments = state.current()
    assert instruments is not None
    with handling("job-events", _event(DROPPED_UPSTREAM)):
        assert trace.get_current_span().get_span_context().trace_id == 0x0AF7651916CD43DD8448EB211C80319C
        with instruments.tracer.start_as_current_span("cosmos read") as below:  # (same provider, same sampler)
            assert not below.is_recording()
    assert spans.get_finished_spans() == ()


def test_a_handler_inside_a_recorded_span_parses_what_its_event_carries(spans: InMemorySpanExporter) -> None:
    """Its own event's dropped trace is its context, not the recorded span around it: nothing below it is
    recorded, and what it publishes carries its event's trace on."""
    _install(ParentBased(TraceIdRatioBased(0.05)), spans)
    instruments = state.current()
    assert instruments is not None
    tracer = instruments.tracer
    provider = TracedPort(SimpleNamespace(provision=lambda *_: None), "provider", TRACED_PROVIDER_CALLS, instruments)
    caller = trace.set_span_in_context(trace.NonRecordingSpan(trace.SpanContext(
        0x2AF7651916CD43DD8448EB211C80319C, 0x1111111111111111, is_remote=True, trace_flags=trace.TraceFlags(1))))
    with tracer.start_as_current_span("around", context=caller), handling("job-events", _event(DROPPED_UPSTREAM)):
        provider.provision("ws", "c1", "node-1")
        published = with_trace_context(_event())
    assert published.traceparent == DROPPED_UPSTREAM
    assert [span.name for span in spans.get_finished_spans()] == ["around"]  # no provider.provision under it


def test_with_a_sampler_that_decides_for_itself_an_event_dropped_upstream_still_gets_its_span(
        spans: InMemorySpanExporter) -> None:
    """A bare ALWAYS_ON ignores the parent's flag: the handler must not second-guess it."""
    _install(ALWAYS_ON, spans)
    assert state.current() is not None and not state.current().follows_remote_parents  # type: ignore[union-attr]
    published = _handled_carrying(DROPPED_UPSTREAM)
    [span] = spans.get_finished_spans()
    assert span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert published.traceparent == f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01"


@pytest.mark.parametrize("traceparent", ["garbage", "00-00000000000000000000000000000000-b7ad6b7169203331-00",
                                         "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-extra"])
def test_an_event_whose_traceparent_is_not_valid_starts_a_trace_of_its_own(
        spans: InMemorySpanExporter, traceparent: str) -> None:
    """As the propagator reads it: no parent at all, so the sampler decides afresh (here: keeps it)."""
    _install(ParentBased(ALWAYS_ON), spans)
    published = _handled_carrying(traceparent)
    [span] = spans.get_finished_spans()
    assert span.parent is None and span.context.trace_flags.sampled
    assert published.traceparent == \
        f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-{span.context.trace_flags:02x}"


class _FailingOnStart(SimpleSpanProcessor):
    def on_start(self, span: object, parent_context: object = None) -> None:
        raise RuntimeError("exporter broken")


def test_a_span_that_cannot_start_fails_the_delivery_and_leaves_nothing_behind_on_the_thread(
        spans: InMemorySpanExporter) -> None:
    """A worker thread handles event after event: a failure to start one's span must not leave its ids on the
    next one's log records, nor its context current."""
    provider = TracerProvider()
    provider.add_span_processor(_FailingOnStart(spans))
    state.install(provider, MeterProvider())
    with pytest.raises(RuntimeError, match="exporter broken"), handling("job-events", _event(KEPT_UPSTREAM)):
        pytest.fail("the handler ran without its span")
    assert log_context._ids.get() == {}
    assert context.get_current() == context.Context()
