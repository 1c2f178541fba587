"""A fault-injecting HTTP transport for the Cosmos DB SDK: it sits where the SDK's ``RequestsTransport`` does
(``CosmosStore(..., transport=...)``), forwards requests to ``@vercel/cosmosdb-server``, and for a window of
requests or of time answers some of them itself, as Azure Cosmos DB does when it is busy or failing:

- ``THROTTLED``: 429 with ``x-ms-retry-after-ms``, ``x-ms-substatus: 3200`` (RU budget exhausted) and Cosmos'
  JSON error body. Nothing reached the server.
- ``UNAVAILABLE``: 503 ServiceUnavailable. Nothing reached the server.
- ``REQUEST_TIMEOUT``: 408 RequestTimeout. Nothing reached the server.
- ``READ_TIMEOUT``: no answer in time: ``ServiceResponseTimeoutError``, what ``RequestsTransport`` raises for a
  socket read timeout. Nothing reached the server.
- ``APPLIED_RESPONSE_LOST``: the request reached the server and was applied, then the connection dropped before
  the answer arrived (``ServiceResponseError``).
- ``APPLIED_THEN_UNAVAILABLE``, ``APPLIED_THEN_TIMEOUT``: the request was applied, but the SDK is answered 503 /
  408 (a gateway that gave up waiting for a replica that did commit): whether it landed is unknown to the caller.

Every request is logged as an ``Exchange`` (what, when, what happened), so a test can count retries and measure
the waits between them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from azure.core.exceptions import ServiceResponseError, ServiceResponseTimeoutError
from azure.core.pipeline.transport import RequestsTransport, RequestsTransportResponse
from requests.structures import CaseInsensitiveDict

# The SDK names what each request does in these headers (set on every request it sends, gateway mode included).
RESOURCE_HEADER = "x-ms-thinclient-proxy-resource-type"
OPERATION_HEADER = "x-ms-thinclient-proxy-operation-type"

THROTTLED_SUBSTATUS = 3200  # "RU budget exceeded": the substatus Cosmos sends with an ordinary 429


@dataclass(frozen=True)
class Fault:
    name: str
    status: int | None  # answered with this status; None: the connection fails instead (an exception)
    applied: bool  # the request reached the server first (so it was applied); only the answer is replaced


THROTTLED = Fault("429 throttled", 429, applied=False)
UNAVAILABLE = Fault("503 unavailable", 503, applied=False)
REQUEST_TIMEOUT = Fault("408 request timeout", 408, applied=False)
READ_TIMEOUT = Fault("read timeout", None, applied=False)
APPLIED_RESPONSE_LOST = Fault("applied, response lost", None, applied=True)
APPLIED_THEN_UNAVAILABLE = Fault("applied, answered 503", 503, applied=True)
APPLIED_THEN_TIMEOUT = Fault("applied, answered 408", 408, applied=True)

_ERROR_BODIES = {
    429: ("TooManyRequests", "Request rate is large. More Request Units may be needed, so no changes were made. "
                             "Please retry this request later. Learn more: http://aka.ms/cosmosdb-error-429"),
    503: ("ServiceUnavailable", "Service is currently unavailable. Learn more: https://aka.ms/cosmosdb-tsg-"
                                "service-unavailable"),
    408: ("RequestTimeout", "Request timed out. Learn more: https://aka.ms/cosmosdb-tsg-request-timeout"),
}
_REASONS = {429: "Too Many Requests", 503: "Service Unavailable", 408: "Request Timeout"}


@dataclass(frozen=True)
class CosmosRequest:
    method: str
    path: str  # the URL's path: /dbs/{db}/colls/{coll}/docs/{id}/
    resource: str  # docs, colls, dbs, databaseaccount, pkranges, ...
    operation: str  # Create, Read, Replace, Delete, Upsert, SqlQuery, Query, ReadFeed, ...
    body: bytes

    @property
    def is_document(self) -> bool:
        return self.resource == "docs"

    @property
    def is_write(self) -> bool:
        return self.operation in ("Create", "Replace", "Upsert", "Delete", "Patch", "Batch")


def documents(request: CosmosRequest) -> bool:
    """Point operations and queries on documents (not the account, database or container metadata)."""
    return request.is_document


@dataclass
class Exchange:
    """One request as the transport saw it: ``fault`` is None when it was forwarded and answered by the server."""

    request: CosmosRequest
    started: float  # time.monotonic()
    ended: float = 0.0
    fault: Fault | None = None
    status: int | None = None  # what the SDK was answered (None: an exception instead)


@dataclass
class Window:
    """While open, the requests ``matches`` picks get ``fault`` instead of the server's answer.

    ``requests``: the next N such requests. ``seconds``: every such request for that long after the window opens.
    ``attempts``: each distinct request (same method, path and body: the SDK's retries of one operation) gets the
    fault its first N times, then is forwarded (the window stays open for the next operation). None of them: until
    ``heal()``."""

    fault: Fault
    matches: Callable[[CosmosRequest], bool] = documents
    requests: int | None = None
    seconds: float | None = None
    attempts: int | None = None
    opened: float = field(default_factory=time.monotonic)
    injected: int = 0
    _tries: dict[tuple[str, str, bytes], int] = field(default_factory=dict)

    def take(self, request: CosmosRequest, now: float) -> bool:
        """Whether this request gets the fault (and count it)."""
        if not self.matches(request):
            return False
        if self.requests is not None and self.injected >= self.requests:
            return False
        if self.seconds is not None and now - self.opened >= self.seconds:
            return False
        if self.attempts is not None:
            key = (request.method, request.path, request.body)
            tries = self._tries.get(key, 0)
            if tries >= self.attempts:
                self._tries.pop(key)  # forwarded now; the same request sent again later is a new operation
                return False
            self._tries[key] = tries + 1
        self.injected += 1
        return True


class FaultyCosmosTransport(RequestsTransport):
    """``RequestsTransport`` with ``fail(...)`` windows. Thread-safe: one instance serves the client's threads."""

    def __init__(self, retry_after_ms: int = 20, **kwargs: Any) -> None:
        kwargs.setdefault("connection_verify", False)  # the local server's certificate is self-signed
        super().__init__(**kwargs)
        self.retry_after_ms = retry_after_ms
        self.exchanges: list[Exchange] = []
        self._windows: list[Window] = []
        self._lock = threading.Lock()

    # --- what tests call ---------------------------------------------------------------------------------------
    def fail(self, fault: Fault, *, requests: int | None = None, seconds: float | None = None,
             attempts: int | None = None, when: Callable[[CosmosRequest], bool] = documents) -> Window:
        window = Window(fault, when, requests=requests, seconds=seconds, attempts=attempts)
        with self._lock:
            self._windows.append(window)
        return window

    def heal(self) -> None:
        with self._lock:
            self._windows.clear()

    def faulted(self, fault: Fault | None = None) -> list[Exchange]:
        """The exchanges that got a fault (that one, or any)."""
        with self._lock:
            return [e for e in self.exchanges if e.fault is not None and (fault is None or e.fault == fault)]

    def forwarded(self, when: Callable[[CosmosRequest], bool] = documents) -> list[Exchange]:
        """The exchanges the server answered (a fault with ``applied`` reached it too, but is not counted here)."""
        with self._lock:
            return [e for e in self.exchanges if e.fault is None and when(e.request)]

    def reset_log(self) -> None:
        with self._lock:
            self.exchanges.clear()

    # --- the transport -----------------------------------------------------------------------------------------
    def send(self, request: Any, **kwargs: Any) -> Any:
        seen = _describe(request)
        exchange = Exchange(seen, started=time.monotonic())
        with self._lock:
            exchange.fault = next((w.fault for w in self._windows if w.take(seen, exchange.started)), None)
            self.exchanges.append(exchange)
        try:
            fault = exchange.fault
            if fault is None or fault.applied:
                response = super().send(request, **kwargs)
                if fault is None:
                    exchange.status = response.status_code
                    return response
                response.body()  # read it all, as the SDK would have, before the answer is "lost"
            assert fault is not None
            if fault.status is None:
                if fault.applied:
                    raise ServiceResponseError("injected: the connection dropped after the request was sent")
                raise ServiceResponseTimeoutError("injected: no response within the read timeout")
            exchange.status = fault.status
            return self._error_response(request, fault.status, seen)
        finally:
            exchange.ended = time.monotonic()

    def _error_response(self, request: Any, status: int, seen: CosmosRequest) -> RequestsTransportResponse:
        """An error answer in the shape Cosmos sends: its headers, and a JSON body with a code and a message."""
        activity = str(uuid.uuid4())
        code, text = _ERROR_BODIES[status]
        message = (f'Message: {{"Errors":["{text}"]}}\r\nActivityId: {activity}, Request URI: {seen.path}, '
                   f"RequestStats: , SDK: injected by tests.reliability.cosmos_transport")
        headers = {"Content-Type": "application/json", "x-ms-activity-id": activity, "x-ms-request-charge": "0",
                   "x-ms-substatus": "0"}
        if status == 429:
            headers |= {"x-ms-retry-after-ms": str(self.retry_after_ms), "x-ms-substatus": str(THROTTLED_SUBSTATUS)}
        raw = requests.Response()
        raw.status_code = status
        raw.reason = _REASONS[status]
        raw.headers = CaseInsensitiveDict(headers)
        raw._content = json.dumps({"code": code, "message": message}).encode()  # a canned body
        raw.url = request.url
        raw.encoding = "utf-8"
        return RequestsTransportResponse(request, raw, self.connection_config.data_block_size)


def _describe(request: Any) -> CosmosRequest:
    body = request.data if isinstance(request.data, bytes) else str(request.data or "").encode()
    path = urlsplit(request.url).path or "/"
    return CosmosRequest(method=request.method, path=path, resource=str(request.headers.get(RESOURCE_HEADER, "")),
                         operation=str(request.headers.get(OPERATION_HEADER, "")), body=body)
