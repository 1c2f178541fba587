"""Store calls, noted on the span of the request or handler that made them as one string attribute,
``computeplane.store.calls`` (``"store.get_cluster 0.21 ms; store.replace_cluster 1.04 ms; ..."``).

A handler makes about six store calls; a span or span event for each would cost more than the rest of the
tracing together (objects that live until the batch is exported, and the garbage collection they cause). Each call
is noted as a tuple and the text made once, when the span ends: one string, not a list, because the SDK checks
every element of a list attribute (six checks and six strings per event, a tenth of the tracing's cost). In Azure
the Cosmos SDK's own spans (azure-core tracing) show each call as a dependency as well."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

from opentelemetry.trace import Span

STORE_CALLS = "computeplane.store.calls"
StoreCall = tuple[str, float, str | None]  # method, seconds, the failure's type (None: it succeeded)
_calls: ContextVar[list[StoreCall] | None] = ContextVar("computeplane_store_calls", default=None)


@contextmanager
def noting_store_calls(span: Span) -> Iterator[None]:
    token = start_noting_store_calls()
    try:
        yield
    finally:
        set_store_calls(span, stop_noting_store_calls(token))


NotingToken = Token[list[StoreCall] | None]


def start_noting_store_calls() -> NotingToken:
    """``noting_store_calls`` in steps, for a caller that is not a generator (``shared.telemetry.events``)."""
    return _calls.set([])


def stop_noting_store_calls(token: NotingToken) -> list[StoreCall]:
    """The calls noted since ``start_noting_store_calls``, and nobody noting them any more."""
    calls = _calls.get() or []
    _calls.reset(token)
    return calls


def set_store_calls(span: Span, calls: list[StoreCall]) -> None:
    if calls:
        span.set_attribute(STORE_CALLS, "; ".join(
            f"store.{name} {1000 * seconds:.2f} ms" + (f" failed: {failure}" if failure else "")
            for name, seconds, failure in calls))


def noted_calls() -> list[StoreCall] | None:
    """Where the current span's store calls are noted; None when nobody notes them (a dropped trace, or no span)."""
    return _calls.get()
