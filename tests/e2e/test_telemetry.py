"""OpenTelemetry end to end, in one process so in-memory readers see everything: the real ``function_app`` served
by uvicorn, its queue triggers driven by the local Functions host from the embedded SQLite queue, real job
processes. The trace context crosses the queue only inside the serialised CloudEvent (``traceparent``), as it
crosses processes in Azure."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared.bootstrap import build, use_container
from shared.config import Settings
from shared.domain.events import JOB_EVENTS, new_event
from shared.local.host import LocalFunctionsHost
from shared.local.serve import asgi_app_of
from shared.telemetry import state
from tests.contract.uvicorn_server import running_uvicorn
from tests.e2e.server import wait_for

SUBMIT_ROUTE = "POST /api/workspaces/{workspace}/clusters/{name}/jobs"


@dataclass
class Traced:
    api: httpx.Client
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    publish_raw: Any


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[Traced]:
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    state.install(tracer_provider, MeterProvider(metric_readers=[reader]))
    container = build(Settings(data_dir=tmp_path / "data", node_boot_seconds=0.2, release_poll_seconds=0.2,
                               resync_seconds=2, job_sandbox="off"))
    use_container(container)
    function_app = importlib.import_module("function_app")
    function_app.app.functions_bindings = None  # indexed once per process by the host; again for each test here
    host = LocalFunctionsHost(function_app.app, container.queue, sweep_seconds=1.0)
    host.start()
    try:
        with running_uvicorn(asgi_app_of(function_app.app)) as url, httpx.Client(base_url=url, timeout=30) as api:
            yield Traced(api, spans, reader, container.deps.bus.publish)
    finally:
        assert container.provider is not None
        container.provider.begin_shutdown()
        host.stop()
        container.provider.stop_all()
        use_container(None)
        state.uninstall()


def _finished(api: httpx.Client, job_id: str) -> bool:
    return api.get(f"/api/workspaces/ws1/jobs/{job_id}").json()["state"] == "Completed"


def _trace_of(spans: list[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context is not None and s.context.trace_id == trace_id]


def _ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


def test_one_http_submit_is_one_trace_through_the_queue_trigger_handler_store_and_provider(traced: Traced) -> None:
    api = traced.api
    created = api.post("/api/workspaces/ws1/clusters", json={"name": "tc1", "vm_size": "STANDARD_D2_V2",
                                                             "max_nodes": 1, "idle_seconds_before_scaledown": 1})
    assert created.status_code == 202, created.text
    wait_for(lambda: api.get("/api/workspaces/ws1/clusters/tc1").json()["provisioning_state"] == "Succeeded",
             what="cluster Succeeded")
    submitted = api.post("/api/workspaces/ws1/clusters/tc1/jobs", json={"command": [sys.executable, "-c", "pass"]})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    wait_for(lambda: _finished(api, job_id), timeout=60, what="job Completed")

    spans = list(traced.spans.get_finished_spans())
    server = next(s for s in spans if s.name == SUBMIT_ROUTE)
    assert server.kind is SpanKind.SERVER and server.attributes is not None
    assert server.attributes["http.response.status_code"] == 202
    assert server.attributes["computeplane.cluster"] == "tc1"
    assert server.context is not None
    trace = _trace_of(spans, server.context.trace_id)
    by_id = {s.context.span_id: s for s in trace if s.context is not None}

    handled = next(s for s in trace if s.name == "process computeplane.job.submit")
    assert handled.kind is SpanKind.CONSUMER and handled.attributes is not None
    assert handled.attributes["computeplane.job_id"] == job_id
    assert handled.attributes["computeplane.workspace"] == "ws1"
    assert handled.attributes["computeplane.cluster"] == "tc1"
    assert handled.attributes["computeplane.outcome"] == "ok"
    assert handled.attributes["cloudevents.event_type"] == "computeplane.job.submit"
    assert str(handled.attributes["cloudevents.event_id"]).strip()
    # The consumer continues the span of the HTTP request that published the event.
    assert _ancestors(handled, by_id) == [SUBMIT_ROUTE]
    # Under the handler: the node provider (a child span) and the store calls, with their durations.
    below = {s.name for s in trace if "process computeplane.job.submit" in _ancestors(s, by_id)}
    assert "provider.provision" in below, below
    store_calls = [call.split(" ")[0] for call in str(handled.attributes["computeplane.store.calls"]).split("; ")]
    # (the job's new state and the cluster that queued it: one round trip)
    assert {"store.get_cluster", "store.replace_cluster_with_jobs"} <= set(store_calls), store_calls
    # The request's own store calls: the job document created, before the event was published.
    assert server.attributes is not None and any(
        call.startswith("store.create_job ") for call in str(server.attributes["computeplane.store.calls"]).split("; "))
    # The whole submit is one trace, to the job's end: the node it asked for reports ready in it, and the run
    # started then reports its end in it (from the run's own thread), so nothing it caused started one of its own.
    finished = next(s for s in trace if s.name == "process computeplane.job.finished")
    assert finished.attributes is not None and finished.attributes["computeplane.job_id"] == job_id
    chain = _ancestors(finished, by_id)
    assert chain[-1] == SUBMIT_ROUTE and "process computeplane.job.submit" in chain, chain
    assert "process computeplane.node.ready" in chain or "process computeplane.scale.request" in chain, chain
    caused = {s.context.trace_id for s in spans if s.context is not None and s.name in (
        "process computeplane.job.submit", "process computeplane.job.finished", "provider.start_run")}
    assert caused == {server.context.trace_id}


def _points(reader: InMemoryMetricReader, name: str) -> list[tuple[dict[str, Any], float]]:
    data = reader.get_metrics_data()
    assert data is not None
    found = []
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found += [(dict(p.attributes or {}), getattr(p, "value", getattr(p, "count", 0)))
                              for p in metric.data.data_points]
    return found


def _total(points: list[tuple[dict[str, Any], float]], **labels: Any) -> float:
    return sum(v for attrs, v in points if all(attrs.get(k) == want for k, want in labels.items()))


def test_metrics_after_a_lifecycle_count_events_decisions_nodes_queues_and_dead_letters(traced: Traced) -> None:
    api = traced.api
    api.post("/api/workspaces/ws1/clusters", json={"name": "tc2", "vm_size": "STANDARD_D2_V2", "max_nodes": 1,
                                                   "idle_seconds_before_scaledown": 1})
    job_id = api.post("/api/workspaces/ws1/clusters/tc2/jobs",
                      json={"command": [sys.executable, "-c", "pass"]}).json()["id"]
    wait_for(lambda: _finished(api, job_id), timeout=60, what="job Completed")
    wait_for(lambda: api.get("/api/workspaces/ws1/clusters/tc2").json()["current_node_count"] == 0, timeout=60,
             what="the idle node released")
    # An event that can never be applied (no such job) is dead-lettered at once.
    traced.publish_raw(new_event("computeplane.job.cancel", "ws1", "tc2", {"job_id": 5}, event_id="broken-1"))
    reader = traced.metrics
    wait_for(lambda: _total(_points(reader, "computeplane.dead_letters"), **{
        "messaging.destination.name": JOB_EVENTS}) == 1, what="the dead letter counted")

    handled = _points(reader, "computeplane.events.handled")
    ok = {"computeplane.outcome": "ok"}
    assert _total(handled, **ok, **{"cloudevents.event_type": "computeplane.cluster.create"}) == 1
    assert _total(handled, **ok, **{"cloudevents.event_type": "computeplane.job.submit"}) == 1
    # (a node's readiness is looked at once, or coalesced into a later look at its cluster in the same batch)
    assert sum(_total(handled, **{"computeplane.outcome": outcome, "cloudevents.event_type": "computeplane.node.ready"})
               for outcome in ("ok", "coalesced")) == 1
    assert _total(handled, **{"computeplane.outcome": "dead_lettered",
                              "cloudevents.event_type": "computeplane.job.cancel"}) == 1
    latency = _points(reader, "computeplane.handler.duration")
    assert _total(latency, **{"cloudevents.event_type": "computeplane.job.submit"}) >= 1  # histogram counts
    decisions = _points(reader, "computeplane.reconcile.decisions")
    assert _total(decisions, **{"computeplane.action": "ProvisionNode"}) == 1
    assert _total(decisions, **{"computeplane.action": "StartRun"}) == 1
    assert _total(decisions, **{"computeplane.action": "ReleaseNode"}) >= 1
    nodes = _points(reader, "computeplane.cluster.nodes")
    assert _total(nodes, **{"computeplane.cluster": "tc2"}) == 0  # after the lifecycle: back to no node
    assert {a["computeplane.node.state"] for a, _ in nodes if a["computeplane.cluster"] == "tc2"} >= {"idle"}
    depth = _points(reader, "computeplane.queue.depth")
    assert {a["messaging.destination.name"] for a, _ in depth} == {"cluster-events", "job-events", "scale-events"}
    kept = _points(reader, "computeplane.queue.dead_letters")
    assert _total(kept, **{"messaging.destination.name": JOB_EVENTS}) == 1
    requests = _points(reader, "computeplane.http.requests")
    assert _total(requests, **{"http.route": "/api/workspaces/{workspace}/clusters/{name}/jobs",
                               "http.response.status_code": 202}) == 1


def _traceparent(trace_id: int, span_id: int, sampled: bool) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"


def test_a_callers_sampling_decision_keeps_or_drops_the_whole_trace_across_the_queue(traced: Traced) -> None:
    """What the deployed sampler (parent-based, ``infra/app/api.bicep``) relies on: the handler in another process
    follows the sampled flag its event carries, so a trace is never kept in one process and dropped in the next."""
    api = traced.api
    api.post("/api/workspaces/ws1/clusters", json={"name": "tc3", "vm_size": "STANDARD_D2_V2", "max_nodes": 1,
                                                   "idle_seconds_before_scaledown": 30})
    wait_for(lambda: api.get("/api/workspaces/ws1/clusters/tc3").json()["provisioning_state"] == "Succeeded",
             what="cluster Succeeded")
    kept, dropped = 0x0AF7651916CD43DD8448EB211C80319C, 0x1BF7651916CD43DD8448EB211C80319D
    caller_span = 0x00F067AA0BA902B7
    job_ids = []
    for trace_id, sampled in ((kept, True), (dropped, False)):
        submitted = api.post("/api/workspaces/ws1/clusters/tc3/jobs", json={"command": [sys.executable, "-c", "pass"]},
                             headers={"traceparent": _traceparent(trace_id, caller_span, sampled)})
        assert submitted.status_code == 202, submitted.text
        job_ids.append(submitted.json()["id"])
    for job_id in job_ids:
        wait_for(lambda job_id=job_id: _finished(api, job_id), timeout=60, what="job Completed")

    spans = list(traced.spans.get_finished_spans())
    kept_trace = _trace_of(spans, kept)
    server = next(s for s in kept_trace if s.name == SUBMIT_ROUTE)
    assert server.parent is not None and server.parent.span_id == caller_span  # the caller's trace, continued
    assert {"process computeplane.job.submit", "provider.provision"} <= {s.name for s in kept_trace}
    assert _trace_of(spans, dropped) == [], [s.name for s in _trace_of(spans, dropped)]
    # ... and its submit's handler did not start a recorded trace of its own.
    assert not [s for s in spans if s.name == "process computeplane.job.submit"
                and (s.attributes or {}).get("computeplane.job_id") == job_ids[1]]
    # (A job's end is reported in the trace of the handler that started its run: the dropped job, run on the node
    # once the kept job ended, ends in the kept trace; the dropped trace stays empty to the end, as asserted above.)
    # Metrics are not sampled: both submits are counted.
    handled = _points(traced.metrics, "computeplane.events.handled")
    assert _total(handled, **{"cloudevents.event_type": "computeplane.job.submit", "computeplane.outcome": "ok"}) == 2
