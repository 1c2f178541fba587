"""The process's telemetry: off until ``install`` is called with a tracer and meter provider (tests install
their own in-memory ones; ``shared.telemetry.setup`` installs the exporting ones)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.trace.sampling import Decision, Sampler

from shared.domain.node_history import newest_node_counts

SCOPE = "computeplane"


class Tally:
    """A counter kept here and read by an observable counter when metrics are collected. Counting an event is a
    dict increment; the SDK's ``Counter.add`` would clean, copy and hash the attributes on every call, which on
    the queue-trigger path costs more than the span it counts beside."""

    def __init__(self, *label_names: str) -> None:
        self._label_names = label_names
        self._counts: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()

    def add(self, *label_values: str) -> None:
        with self._lock:
            self._counts[label_values] = self._counts.get(label_values, 0) + 1

    def observe(self, _: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            counts = list(self._counts.items())
        return [Observation(count, dict(zip(self._label_names, values, strict=True))) for values, count in counts]


class BufferedHistogram:
    """A histogram whose measurements are handed to the SDK's in batches of ``BATCH``, and before every collection
    (``flush`` from a collection callback), so that no export misses one. The SDK's ``Histogram.record`` is a long
    path (the attributes cleaned, copied, sorted and hashed, a lock, the aggregation): run once per event between
    a handler's other work it cost 19.5 µs, its code out of the CPU's caches; run 64 times in a row, 8 each
    (``python -m bench.tracing_calls``). Values and attributes are recorded as they came; exemplars, which want
    the span current at the measurement, are not taken (they are off here anyway: ``AlwaysOffExemplarFilter``)."""

    BATCH = 64

    def __init__(self, histogram: metrics.Histogram) -> None:
        self._histogram = histogram
        self._waiting: deque[tuple[float, Mapping[str, str]]] = deque()  # append and popleft need no lock
        self._flushing = threading.Lock()

    def record(self, amount: float, attributes: Mapping[str, str]) -> None:
        self._waiting.append((amount, attributes))
        if len(self._waiting) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        # The lock (taken once per batch) makes a collection's flush wait for a worker's flush under way, so a
        # measurement taken off the queue is in the histogram before the collection reads it.
        record = self._histogram.record
        with self._flushing:
            while True:
                try:
                    amount, attributes = self._waiting.popleft()
                except IndexError:
                    return
                record(amount, attributes)


@dataclass
class Instruments:
    tracer: trace.Tracer
    events_handled: Tally  # by cloudevents.event_type and computeplane.outcome
    handler_duration: BufferedHistogram
    reconcile_decisions: Tally  # by computeplane.action
    dead_letters: metrics.Counter
    http_requests: metrics.Counter
    http_duration: metrics.Histogram
    # Each cluster's node timeline (``Cluster.node_history``) as this process last saved it: its newest sample is
    # the nodes by state, decoded only when metrics are collected. A write keeps a reference to an immutable string;
    # one dict store or pop, and the collector's copy, each run whole under the GIL, so no lock.
    node_histories: dict[tuple[str, str], str] = field(default_factory=dict)
    # The sampler keeps a remote parent's decision (parent-based, as deployed): an event whose trace was dropped
    # upstream needs no span of its own here, only the trace carried on (``shared.telemetry.events``).
    follows_remote_parents: bool = False


_instruments: Instruments | None = None
_queue_sources: list[Callable[[], list[QueueStats]]] = []


@dataclass(frozen=True)
class QueueStats:
    queue: str
    depth: int
    oldest_age_seconds: float
    dead_letters: int


def current() -> Instruments | None:
    """None while telemetry is off: callers test this and do nothing else."""
    return _instruments


def install(tracer_provider: trace.TracerProvider, meter_provider: metrics.MeterProvider) -> Instruments:
    global _instruments
    meter = meter_provider.get_meter(SCOPE)
    events_handled = Tally("cloudevents.event_type", "computeplane.outcome")
    reconcile_decisions = Tally("computeplane.action")
    handler_duration = BufferedHistogram(meter.create_histogram(
        "computeplane.handler.duration", unit="s", description="Time to apply one CloudEvent, by type and outcome"))

    def observe_events_handled(options: CallbackOptions) -> Iterable[Observation]:
        handler_duration.flush()  # collection calls back before it reads the histogram: nothing recorded is left out
        return events_handled.observe(options)

    meter.create_observable_counter("computeplane.events.handled", callbacks=[observe_events_handled],
                                    unit="{event}", description="CloudEvents handled, by type and outcome")
    meter.create_observable_counter("computeplane.reconcile.decisions", callbacks=[reconcile_decisions.observe],
                                    unit="{action}", description="Actions reconcile decided, by kind")
    instruments = Instruments(
        tracer=tracer_provider.get_tracer(SCOPE),
        follows_remote_parents=follows_remote_parents(getattr(tracer_provider, "sampler", None)),
        events_handled=events_handled,
        handler_duration=handler_duration,
        reconcile_decisions=reconcile_decisions,
        dead_letters=meter.create_counter("computeplane.dead_letters", unit="{message}",
                                          description="Messages dead-lettered by a handler, by queue"),
        http_requests=meter.create_counter("computeplane.http.requests", unit="{request}",
                                           description="HTTP requests, by method, route and status"),
        http_duration=meter.create_histogram("computeplane.http.duration", unit="s",
                                             description="HTTP request latency, by method and route"))
    meter.create_observable_gauge("computeplane.cluster.nodes", callbacks=[_node_observations], unit="{node}",
                                  description="Nodes by state per cluster")
    for name, unit, description, read in (
            ("computeplane.queue.depth", "{message}", "Messages waiting in a local queue", _depth),
            ("computeplane.queue.oldest_age", "s", "Age of the oldest message in a local queue", _oldest_age),
            ("computeplane.queue.dead_letters", "{message}", "Dead letters kept by the local queue", _dead)):
        meter.create_observable_gauge(name, callbacks=[_queue_gauge(read)], unit=unit, description=description)
    _instruments = instruments
    return instruments


_PROBE_TRACE_IDS = (0x0AF7651916CD43DD8448EB211C80319C, 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE, 1)


def follows_remote_parents(sampler: Sampler | None) -> bool:
    """Whether ``sampler`` drops every span under a remote parent that was not sampled and keeps every span under
    one that was, asked of the sampler itself (its public ``should_sample``) rather than read from its type: a
    parent-based sampler does, a bare ratio or a rate limit does not. None (not the SDK's provider): False.
    A few probes cannot prove a sampler never keeps a span under an unsampled parent: one that kept a random few
    would pass and lose those spans here. The SDK's samplers and the distro's are told apart correctly."""
    if sampler is None:
        return False
    for sampled in (False, True):
        parent = trace.set_span_in_context(trace.NonRecordingSpan(trace.SpanContext(
            trace_id=_PROBE_TRACE_IDS[0], span_id=0x00F067AA0BA902B7, is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED if sampled else trace.TraceFlags.DEFAULT))))
        for trace_id in _PROBE_TRACE_IDS:
            decision = sampler.should_sample(parent, trace_id, "probe").decision
            if decision != (Decision.RECORD_AND_SAMPLE if sampled else Decision.DROP):
                return False
    return True


def uninstall() -> None:
    global _instruments
    _instruments = None
    _queue_sources.clear()


@contextmanager
def suspended() -> Iterator[None]:
    """Telemetry off for a while and on again after, its instruments kept: how the tracing-overhead benchmark
    runs a traced and an untraced runtime side by side in one process (``bench.throughput``)."""
    global _instruments
    instruments, _instruments = _instruments, None
    try:
        yield
    finally:
        _instruments = instruments


def add_queue_source(source: Callable[[], list[QueueStats]]) -> None:
    """The embedded queue, read when metrics are collected (locally; Azure Monitor has Service Bus' own)."""
    _queue_sources.append(source)


def _node_observations(_: CallbackOptions) -> Iterable[Observation]:
    instruments = _instruments
    if instruments is None:
        return []
    snapshot = dict(instruments.node_histories)
    return [Observation(count, {"computeplane.workspace": workspace, "computeplane.cluster": cluster,
                                "computeplane.node.state": state})
            for (workspace, cluster), history in snapshot.items()
            for state, count in newest_node_counts(history).items()]


def _depth(stats: QueueStats) -> float:
    return stats.depth


def _oldest_age(stats: QueueStats) -> float:
    return stats.oldest_age_seconds


def _dead(stats: QueueStats) -> float:
    return stats.dead_letters


def _queue_gauge(read: Callable[[QueueStats], float]) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(read(stats), {"messaging.destination.name": stats.queue})
                for source in list(_queue_sources) for stats in source()]

    return observe
