"""The process's telemetry: off until ``install`` is called with a tracer and meter provider (tests install
their own in-memory ones; ``shared.telemetry.setup`` installs the exporting ones)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

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


@dataclass
class Instruments:
    tracer: trace.Tracer
    events_handled: Tally  # by cloudevents.event_type and computeplane.outcome
    handler_duration: metrics.Histogram
    reconcile_decisions: Tally  # by computeplane.action
    dead_letters: metrics.Counter
    http_requests: metrics.Counter
    http_duration: metrics.Histogram
    # Nodes by state per cluster, as last saved by this process: read when metrics are collected, never on a write.
    node_counts: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    node_counts_lock: threading.Lock = field(default_factory=threading.Lock)


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
    meter.create_observable_counter("computeplane.events.handled", callbacks=[events_handled.observe],
                                    unit="{event}", description="CloudEvents handled, by type and outcome")
    meter.create_observable_counter("computeplane.reconcile.decisions", callbacks=[reconcile_decisions.observe],
                                    unit="{action}", description="Actions reconcile decided, by kind")
    instruments = Instruments(
        tracer=tracer_provider.get_tracer(SCOPE),
        events_handled=events_handled,
        handler_duration=meter.create_histogram("computeplane.handler.duration", unit="s",
                                                description="Time to apply one CloudEvent, by type and outcome"),
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
    with instruments.node_counts_lock:
        snapshot = dict(instruments.node_counts)
    return [Observation(count, {"computeplane.workspace": workspace, "computeplane.cluster": cluster,
                                "computeplane.node.state": state})
            for (workspace, cluster), counts in snapshot.items() for state, count in counts.items()]


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
