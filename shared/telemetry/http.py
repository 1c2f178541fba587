"""The HTTP edge: a server span per request (continuing a caller's ``traceparent`` header), request metrics, and,
locally, one access log line per request with its status and latency."""

from __future__ import annotations

import logging
import time

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.telemetry.log_context import log_ids
from shared.telemetry.state import current
from shared.telemetry.store_calls import noting_store_calls

access_log = logging.getLogger("computeplane.access")
access_log.propagate = False  # only where a handler is added for it: `computeplane serve` (see enable_access_log)
_propagator = TraceContextTextMapPropagator()


def enable_access_log(stream_handler: logging.Handler | None = None) -> None:
    handler = stream_handler or logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s access: %(message)s"))
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)


class RequestTelemetry:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        instruments = current()
        logging_access = access_log.isEnabledFor(logging.INFO)
        if instruments is None and not logging_access:
            await self._app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500
        method, path = scope.get("method", ""), scope.get("path", "")

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        workspace, cluster, job = _ids_in(path)
        try:
            with log_ids(workspace=workspace, cluster=cluster, job=job):
                if instruments is None:
                    await self._app(scope, receive, send_noting_status)
                else:
                    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])
                               if k in (b"traceparent", b"tracestate")}
                    attributes = {"http.request.method": method, "url.path": path}
                    attributes |= {k: v for k, v in (("computeplane.workspace", workspace),
                                                      ("computeplane.cluster", cluster),
                                                      ("computeplane.job_id", job)) if v}
                    with instruments.tracer.start_as_current_span(
                            f"{method} {path}", context=_propagator.extract(headers), kind=trace.SpanKind.SERVER,
                            attributes=attributes) as span, noting_store_calls(span):
                        await self._app(scope, receive, send_noting_status)
                        route = _route_of(scope) or path
                        span.update_name(f"{method} {route}")
                        span.set_attribute("http.route", route)
                        span.set_attribute("http.response.status_code", status)
                        if status >= 500:
                            span.set_status(trace.StatusCode.ERROR)
        finally:
            seconds = time.perf_counter() - started
            if instruments is not None:
                labels = {"http.request.method": method, "http.route": _route_of(scope) or "other",
                          "http.response.status_code": status}
                instruments.http_requests.add(1, labels)
                instruments.http_duration.record(seconds, labels)
            if logging_access:
                client = scope.get("client") or ("-", 0)
                access_log.info('%s "%s %s" %d %.1f ms', client[0], method, path, status, seconds * 1000)


def _route_of(scope: Scope) -> str | None:
    """The route template (``/api/workspaces/{workspace}/clusters/{name}``) once the router has matched it."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


def _ids_in(path: str) -> tuple[str | None, str | None, str | None]:
    """workspace, cluster and job named by an API path."""
    parts = path.split("/")
    if len(parts) < 4 or parts[1:3] != ["api", "workspaces"]:
        return None, None, None
    named = dict(zip(parts[4::2], parts[5::2], strict=False))
    return parts[3], named.get("clusters"), named.get("jobs")
