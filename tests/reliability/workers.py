"""Several Functions hosts on one machine: each worker thread has its own container (its own SQLite connections to
the same data directory, its own local provider) and pumps the three queues through the local host's ``deliver``,
with the timer's sweep on a short period. Real clock, real job processes."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import azure.functions as func

from shared.bootstrap import Container, build
from shared.config import Settings
from shared.domain import events as ev
from shared.domain.events import CloudEvent
from shared.domain.quota import QuotaLimits
from shared.handlers.deps import Deps
from shared.handlers.messages import handle_message
from shared.handlers.sweep import sweep
from shared.local.host import LocalFunctionsHost, QueueFunction
from tests.reliability.ledger import LedgerStore

QUOTA_VCPUS = 8  # four STANDARD_D2_V2 nodes in the whole region, across clusters


def settings_for(data_dir: Path, cosmos: tuple[str, str] | None = None) -> Settings:
    """``cosmos`` = (endpoint, database): the workers share that Cosmos DB database instead of one SQLite file."""
    store = {"store": "cosmos", "cosmos_endpoint": cosmos[0], "cosmos_database": cosmos[1]} if cosmos else {}
    return Settings(data_dir=data_dir, node_boot_seconds=0.05, boot_timeout_seconds=30, resync_seconds=1,
                    release_poll_seconds=0.2, quota_limits=QuotaLimits(total_regional_dedicated_vcpus=QUOTA_VCPUS),
                    **store)  # type: ignore[arg-type]


class SessionlessBus:
    """Publishes without a session id, so messages of one cluster are handed to any worker at once (the worst case
    for lost updates on the cluster document)."""

    def __init__(self, container: Container) -> None:
        assert container.queue is not None
        self.queue = container.queue

    def publish(self, event: CloudEvent, *, not_before: datetime | None = None) -> None:
        self.queue.send(event.queue, event.id, event.to_json(), session_id=None, not_before=not_before)

    def dead_letter(self, queue: str, message_id: str, body: bytes, reason: str) -> None:
        self.queue.dead_letter(queue, message_id, body, reason)


class Worker:
    def __init__(self, data_dir: Path, name: str, applied: Counter[tuple[str, str]], lock: threading.Lock,
                 sessions: bool = True, cosmos: tuple[str, str] | None = None) -> None:
        self.name = name
        self.container = build(settings_for(data_dir, cosmos))
        assert self.container.queue is not None
        store = LedgerStore(self.container.deps.store, applied, lock)
        bus = self.container.deps.bus if sessions else SessionlessBus(self.container)
        self.deps: Deps = dataclasses.replace(self.container.deps, store=store, bus=bus)
        self.host = LocalFunctionsHost(func.FunctionApp(), self.container.queue, poll_seconds=0.02)
        self.host.queue_functions = [QueueFunction(f"{name}-{q}", q, self._trigger(q)) for q in ev.QUEUE_NAMES]
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_forever, name=f"{name}-sweep", daemon=True)

    def _trigger(self, queue: str) -> Callable[[func.ServiceBusMessage], None]:
        def call(msg: func.ServiceBusMessage) -> None:
            handle_message(queue, msg.message_id or "", msg.get_body(), self.deps)

        return call

    def _sweep_forever(self) -> None:
        while not self._stop.wait(0.5):
            sweep(self.deps)

    def start(self) -> None:
        self.host.start()
        self._sweeper.start()

    def stop(self) -> None:
        self._stop.set()
        self.host.stop()
        self._sweeper.join(10)
        if self.container.local_nodes is not None:
            self.container.local_nodes.stop_all()
