"""The one event registry: each event type's queue and body model (``shared.domain.events.EVENT_KINDS``) bound to
its handler. The API's ``POST /api/events``, the queue triggers and DESIGN's table of events all come from here.

``dispatch`` applies one event and lets its handler's errors pass: the trigger layer (``shared.handlers.messages``)
dead-letters a ``PermanentError`` and leaves anything else to redelivery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from shared.domain.errors import InvalidEvent
from shared.domain.events import EVENT_KINDS, CloudEvent, EventKind, describe_validation_error, parse_cloud_event
from shared.handlers.deps import Deps
from shared.handlers.events import HANDLERS
from shared.ports import MAX_EVENT_BYTES

Handler = Callable[[CloudEvent, Any, Deps], None]


@dataclass(frozen=True)
class EventRoute:
    kind: EventKind
    handler: Handler

    @property
    def queue(self) -> str:
        return self.kind.queue


def _bind(kinds: Mapping[str, EventKind], handlers: Mapping[str, Handler]) -> dict[str, EventRoute]:
    """Every kind gets exactly one handler, and no handler waits for a kind nobody can send."""
    if set(kinds) != set(handlers):
        raise RuntimeError(f"event kinds without a handler: {sorted(set(kinds) - set(handlers))}; "
                           f"handlers without a kind: {sorted(set(handlers) - set(kinds))}")
    return {event_type: EventRoute(kind, handlers[event_type]) for event_type, kind in kinds.items()}


ROUTES: dict[str, EventRoute] = _bind(EVENT_KINDS, HANDLERS)


def decode_event(body: bytes | str) -> CloudEvent:
    """An event as it arrives from outside (HTTP or a queue): within the bus's size limit, a CloudEvent of a known
    type with a well-formed subject. Otherwise ``InvalidEvent`` with the reason."""
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"event body is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES} (Service Bus message size)")
    return parse_cloud_event(raw)


def event_body(event: CloudEvent) -> BaseModel:
    """The event's ``data`` checked against its type's body model."""
    try:
        return ROUTES[event.type].kind.body.model_validate(event.data)
    except ValidationError as exc:
        raise InvalidEvent(f"data of {event.type}: {describe_validation_error(exc)}") from None


def dispatch(event: CloudEvent, deps: Deps, body: BaseModel | None = None) -> None:
    """Apply one event with its type's handler (``body``: its ``data`` checked already, by ``event_body``)."""
    route = ROUTES.get(event.type)
    if route is None:
        raise InvalidEvent(f"type: {event.type} is not handled by this version of ComputePlane")
    route.handler(event, event_body(event) if body is None else body, deps)


def design_table() -> str:
    """The table of events in docs/design.md (a test keeps the two equal)."""
    rows = ["| type | queue | data | meaning |", "| --- | --- | --- | --- |"]
    rows += [f"| `{route.kind.event_type}` | `{route.queue}` | `{route.kind.body.__name__}` | {route.kind.meaning} |"
             for route in ROUTES.values()]
    return "\n".join(rows)


if __name__ == "__main__":  # python -m shared.handlers.registry: print the table for docs/design.md
    print(design_table())
