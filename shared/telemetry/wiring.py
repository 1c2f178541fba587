"""What the composition root calls: the ports wrapped for tracing when telemetry is on, unchanged when off."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import cast

from shared.adapters.sqlite_queue import SqliteQueue
from shared.domain.events import QUEUE_NAMES
from shared.handlers.deps import Deps
from shared.ports import Clock, EventBus, NodeProvider, Store
from shared.telemetry.ports import TRACED_PROVIDER_CALLS, TracedEventBus, TracedPort, TracedStore
from shared.telemetry.state import QueueStats, add_queue_source, current


def traced_bus(bus: EventBus) -> EventBus:
    instruments = current()
    return bus if instruments is None else TracedEventBus(bus, instruments)


def traced_deps(deps: Deps) -> Deps:
    instruments = current()
    if instruments is None:
        return deps
    return replace(deps, store=cast(Store, TracedStore(deps.store, instruments)),
                   provider=cast(NodeProvider,
                                 TracedPort(deps.provider, "provider", TRACED_PROVIDER_CALLS, instruments)))


def observe_queue(queue: SqliteQueue, clock: Clock) -> None:
    """Depth, oldest age and dead letters of each embedded queue, read when metrics are collected."""
    if current() is None:
        return

    def stats() -> list[QueueStats]:
        now: datetime = clock.now()
        found = []
        for name in QUEUE_NAMES:
            depth, oldest = queue.ready(name)
            found.append(QueueStats(name, depth, (now - oldest).total_seconds() if oldest else 0.0,
                                    queue.dead_letter_count(name)))
        return found

    add_queue_source(stats)
