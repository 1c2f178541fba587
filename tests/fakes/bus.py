"""The EventBus port in memory: what was published (per queue, with the time it becomes visible) and what was
dead-lettered; a second send of the same message id is dropped, as the brokers' duplicate detection does. Held to
the same contract suite as the embedded queue (tests/contract/test_event_bus_contract.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from shared.domain.events import CloudEvent
from shared.ports import Clock


@dataclass(frozen=True)
class Published:
    event: CloudEvent
    visible_at: datetime

    @property
    def body(self) -> bytes:
        return self.event.to_json()


@dataclass(frozen=True)
class DeadLettered:
    queue: str
    message_id: str
    body: bytes
    reason: str


class InMemoryBus:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._published: list[Published] = []
        self._dead: list[DeadLettered] = []
        self._ids: set[tuple[str, str]] = set()

    def publish(self, event: CloudEvent, *, not_before: datetime | None = None) -> None:
        now = self._clock.now()
        with self._lock:
            if (event.queue, event.id) in self._ids:
                return
            self._ids.add((event.queue, event.id))
            self._published.append(Published(event.model_copy(deep=True), max(not_before, now) if not_before
                                              else now))

    def dead_letter(self, queue: str, message_id: str, body: bytes, reason: str) -> None:
        with self._lock:
            self._dead.append(DeadLettered(queue, message_id, body, reason))

    # --- inspection, named as the embedded queue's ---------------------------------------------------------------
    def published(self, queue: str) -> list[Published]:
        with self._lock:
            return [p for p in self._published if p.event.queue == queue]

    def pending(self, queue: str) -> int:
        return len(self.published(queue))

    def next_visible_at(self, queue: str) -> datetime | None:
        return min((p.visible_at for p in self.published(queue)), default=None)

    def dead_letters(self, queue: str | None = None) -> list[DeadLettered]:
        with self._lock:
            return [d for d in self._dead if queue is None or d.queue == queue]
