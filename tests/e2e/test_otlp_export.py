"""``computeplane serve`` with OTEL_EXPORTER_OTLP_ENDPOINT set exports its traces and metrics over OTLP/HTTP: a
small collector here receives them and decodes them with the OTLP protobuf definitions."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.server import Server, http, start_server, wait_for


class Collector:
    def __init__(self) -> None:
        self.spans: list[tuple[str, bytes, dict[str, str]]] = []  # name, trace id, string attributes
        self.metric_names: set[str] = set()
        self.service_names: set[str] = set()
        self.lock = threading.Lock()

    def receive(self, path: str, body: bytes) -> None:
        with self.lock:
            if path == "/v1/traces":
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    self.service_names |= {a.value.string_value for a in resource_spans.resource.attributes
                                           if a.key == "service.name"}
                    for scope in resource_spans.scope_spans:
                        self.spans += [(s.name, s.trace_id, {a.key: a.value.string_value for a in s.attributes})
                                       for s in scope.spans]
            elif path == "/v1/metrics":
                request = ExportMetricsServiceRequest.FromString(body)
                self.metric_names |= {m.name for r in request.resource_metrics for s in r.scope_metrics
                                      for m in s.metrics}


@pytest.fixture
def collector() -> Iterator[tuple[Collector, str]]:
    received = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.receive(self.path, body)
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture
def exporting_server(tmp_path: Path, collector: tuple[Collector, str]) -> Iterator[Server]:
    server = start_server(tmp_path / "data", {"OTEL_EXPORTER_OTLP_ENDPOINT": collector[1],
                                              "OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_METRIC_EXPORT_INTERVAL": "500"})
    try:
        yield server
    finally:
        server.stop()


def test_serve_exports_one_trace_per_submit_and_its_metrics_over_otlp(exporting_server: Server,
                                                                      collector: tuple[Collector, str]) -> None:
    received, _ = collector
    api = exporting_server.api()
    assert http.post(f"{api}/clusters", json={"name": "otlp1", "vm_size": "STANDARD_D2_V2",
                                              "max_nodes": 1}).status_code == 202
    job = http.post(f"{api}/clusters/otlp1/jobs", json={"command": [sys.executable, "-c", "pass"]}).json()

    def submit_trace() -> list[str] | None:
        with received.lock:
            handled = [t for name, t, attrs in received.spans if name == "process computeplane.job.submit"
                       and attrs.get("computeplane.job_id") == job["id"]]
            if not handled:
                return None
            return [name for name, t, _ in received.spans if t == handled[0]]

    names = wait_for(submit_trace, timeout=60, what="the submit's spans at the collector")
    assert "POST /api/workspaces/{workspace}/clusters/{name}/jobs" in names
    assert received.service_names == {"computeplane"}
    wait_for(lambda: {"computeplane.events.handled", "computeplane.handler.duration",
                      "computeplane.queue.depth"} <= received.metric_names, timeout=60, what="metrics exported")
    assert "telemetry on: OTLP" in exporting_server.log()
