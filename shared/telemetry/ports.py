"""The ports wrapped for tracing, in the composition root only when telemetry is on: a client span per store and
provider call, a producer span per published event (which carries the trace on as ``traceparent``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from opentelemetry import trace

from shared.domain.cluster import Cluster
from shared.domain.events import CloudEvent
from shared.ports import EventBus
from shared.telemetry.events import event_attributes, with_trace_context
from shared.telemetry.state import Instruments

CLUSTER_WRITES = frozenset({"create_cluster", "replace_cluster"})


class TracedPort:
    """Every public method of ``inner`` in a client span named ``<component>.<method>``."""

    def __init__(self, inner: Any, component: str, instruments: Instruments) -> None:
        self._inner, self._component, self._instruments = inner, component, instruments

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or not callable(value):
            return value
        traced = self._traced(name, value)
        setattr(self, name, traced)  # built once per method
        return traced

    def _traced(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        tracer, span_name = self._instruments.tracer, f"{self._component}.{name}"
        attributes = {"computeplane.component": self._component}

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            with tracer.start_as_current_span(span_name, kind=trace.SpanKind.CLIENT, attributes=attributes):
                return method(*args, **kwargs)

        return call


class TracedStore(TracedPort):
    """Also notes each saved cluster's nodes by state for the ``computeplane.cluster.nodes`` gauge."""

    def __init__(self, inner: Any, instruments: Instruments) -> None:
        super().__init__(inner, "store", instruments)

    def _traced(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        call = super()._traced(name, method)
        if name not in CLUSTER_WRITES and name != "delete_cluster":
            return call
        counts = self._instruments.node_counts

        @functools.wraps(method)
        def noting(cluster: Cluster, *args: Any, **kwargs: Any) -> Any:
            result = call(cluster, *args, **kwargs)
            key = (cluster.workspace, cluster.name)
            with self._instruments.node_counts_lock:
                if name == "delete_cluster":
                    counts.pop(key, None)
                else:
                    counts[key] = cluster.node_state_counts()
            return result

        return noting


class TracedEventBus:
    """A producer span per event, whose context the event carries on (``traceparent``), and the dead-letter
    counter."""

    def __init__(self, inner: EventBus, instruments: Instruments) -> None:
        self._inner, self._instruments = inner, instruments

    def publish(self, event: CloudEvent, *, not_before: datetime | None = None) -> None:
        with self._instruments.tracer.start_as_current_span(f"publish {event.type}", kind=trace.SpanKind.PRODUCER,
                                                            attributes=event_attributes(event)):
            self._inner.publish(with_trace_context(event), not_before=not_before)

    def dead_letter(self, queue: str, message_id: str, body: bytes, reason: str) -> None:
        self._instruments.dead_letters.add(1, {"messaging.destination.name": queue})
        trace.get_current_span().add_event("dead-lettered", {"messaging.message.id": message_id,
                                                             "computeplane.reason": reason[:500]})
        self._inner.dead_letter(queue, message_id, body, reason)

    def __getattr__(self, name: str) -> Any:  # the embedded queue's other methods (receive, complete, ...)
        return getattr(self._inner, name)
