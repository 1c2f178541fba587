"""The ports wrapped for tracing, in the composition root only when telemetry is on: a client span per provider
action, store calls noted on the current span, and published events carrying the trace on (``traceparent``)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from opentelemetry import trace

from shared.domain.cluster import Cluster
from shared.domain.events import CloudEvent
from shared.ports import EventBus
from shared.telemetry.events import with_trace_context
from shared.telemetry.state import Instruments
from shared.telemetry.store_calls import noted_calls

CLUSTER_WRITES = frozenset({"create_cluster", "replace_cluster", "replace_cluster_with_jobs", "delete_cluster"})
# Calls that change the world get a child span; they are few (a node asked for, a run started) and slow in Azure.
TRACED_PROVIDER_CALLS = frozenset({"provision", "release", "start_run", "stop_run", "preempt"})


class TracedPort:
    """The listed methods of ``inner`` in a client span named ``<component>.<method>``; the rest as they are."""

    def __init__(self, inner: Any, component: str, traced: frozenset[str], instruments: Instruments) -> None:
        self._inner, self._component, self._instruments, self._names = inner, component, instruments, traced

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value):
            return value
        found = self._traced(name, value) if name in self._names else value
        setattr(self, name, found)  # looked up once per method
        return found

    def _traced(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        tracer, span_name = self._instruments.tracer, f"{self._component}.{name}"

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            if not trace.get_current_span().is_recording():
                # Its trace was dropped (or there is none): the samplers we configure would drop a child too.
                return method(*args, **kwargs)
            # A leaf: not made the current span (nothing below it is traced), which halves its cost.
            span = tracer.start_span(span_name, kind=trace.SpanKind.CLIENT)
            try:
                return method(*args, **kwargs)
            except BaseException as exc:
                span.record_exception(exc)
                span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
                raise
            finally:
                span.end()

        return call


class TracedStore:
    """Each store call noted with its duration on the span of the request or handler that made it (see
    ``store_calls``); and each saved cluster's node timeline, whose newest sample the ``computeplane.cluster.nodes``
    gauge reports (every decision samples the nodes before it saves, ``shared.handlers.decision``, and nothing else
    changes them), so the gauge and the dashboard's timeline agree."""

    def __init__(self, inner: Any, instruments: Instruments) -> None:
        self._inner, self._instruments = inner, instruments

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or not callable(value):
            return value
        recorded = self._recorded(name, value)
        setattr(self, name, recorded)  # built once per method
        return recorded

    def _recorded(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        histories = self._instruments.node_histories

        cluster_write = name in CLUSTER_WRITES

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            calls = noted_calls()
            if calls is None:  # nobody notes them: a dropped trace, or no span
                result = method(*args, **kwargs)
            else:
                started = time.perf_counter()
                try:
                    result = method(*args, **kwargs)
                except BaseException as exc:
                    calls.append((name, time.perf_counter() - started, type(exc).__name__))
                    raise
                calls.append((name, time.perf_counter() - started, None))
            if cluster_write:
                cluster: Cluster = args[0]
                if name == "delete_cluster":
                    histories.pop((cluster.workspace, cluster.name), None)
                else:
                    histories[(cluster.workspace, cluster.name)] = cluster.node_history
            return result

        return call


class TracedEventBus:
    """Each event carries the current trace on (``traceparent``: the span of the request or handler that
    published it, so the consumer's span is its child); and the dead-letter counter."""

    def __init__(self, inner: EventBus, instruments: Instruments) -> None:
        self._inner, self._instruments = inner, instruments

    def publish(self, event: CloudEvent, *, not_before: datetime | None = None) -> None:
        self._inner.publish(with_trace_context(event), not_before=not_before)

    def dead_letter(self, queue: str, message_id: str, body: bytes, reason: str) -> None:
        self._instruments.dead_letters.add(1, {"messaging.destination.name": queue})
        trace.get_current_span().add_event("dead-lettered", {"messaging.message.id": message_id,
                                                             "computeplane.reason": reason[:500]})
        self._inner.dead_letter(queue, message_id, body, reason)

    def __getattr__(self, name: str) -> Any:  # the embedded queue's other methods (receive, complete, ...)
        return getattr(self._inner, name)
