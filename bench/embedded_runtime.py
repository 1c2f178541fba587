"""The embedded runtime (SQLite queue and store, idempotency on) with instruments, and a driver that feeds queue
messages to ``handle_messages``, the function every queue trigger calls, in batches of one session as the
Functions host hands them (up to ``MAX_MESSAGE_BATCH``).

Jobs do not start processes here: ``InstantRunProvider`` wraps the local provider so that a started run has already
finished (exit code 0) and its ``job.finished`` event is published at once. Node boot takes 0 s. Everything else
(nodes, observation, queue, store, quota ledger) is the real embedded adapter.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from bench.store_counter import CountingStore, StoreCounter
from shared.adapters.sqlite_queue import SqliteQueue
from shared.bootstrap import build, freeze_startup_objects
from shared.config import Settings
from shared.domain.cluster import Cluster, JobPhase
from shared.domain.events import JOB_FINISHED, QUEUE_NAMES, new_event
from shared.domain.observation import Observation, ObservedRun, RunStatus
from shared.handlers.deps import Deps
from shared.handlers.messages import QueueMessage, handle_messages
from shared.ports import MAX_MESSAGE_BATCH, EventBus, FailedBatch, NodeProvider, RunRequest
from shared.telemetry.log_context import current_log_ids

WORKSPACE = "bench"
log = logging.getLogger(__name__)


class InstantRunProvider:
    """A NodeProvider whose runs end as soon as they start (exit 0); every other call goes to the wrapped one."""

    def __init__(self, inner: Any, bus: EventBus) -> None:
        self._inner, self._bus = inner, bus
        self._finished: set[tuple[str, int]] = set()
        self.provisions = 0
        self.releases = 0

    def provision(self, workspace: str, cluster: str, node_id: str, priority: str | None = None) -> datetime | None:
        self.provisions += 1
        return cast(datetime | None, self._inner.provision(workspace, cluster, node_id, priority))

    def release(self, node_id: str) -> None:
        self.releases += 1
        self._inner.release(node_id)

    def start_run(self, node_ids: Sequence[str], run: RunRequest) -> None:
        key = (run.job_id, run.attempt)
        if key in self._finished:
            return
        self._finished.add(key)
        self._bus.publish(new_event(JOB_FINISHED, run.workspace, run.cluster,
                                    {"job_id": run.job_id, "attempt": run.attempt, "exit_code": 0},
                                    event_id=f"job-finished-{run.job_id}-{run.attempt}"))

    def observe(self, cluster: Cluster) -> Observation:
        observation: Observation = self._inner.observe(cluster)
        for entry in cluster.jobs:
            key = (entry.job_id, entry.attempt)
            if entry.phase is JobPhase.RUNNING and key in self._finished:
                observation.runs[key] = ObservedRun(RunStatus.FINISHED, 0)
        return observation

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass
class DrainStats:
    handled: Counter[str] = field(default_factory=Counter)  # event type -> messages handled
    batches: int = 0  # calls of handle_messages: one receive and one complete each
    failures: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process's CPU (all threads) while draining: steadier than wall time on a busy box
    body_bytes: int = 0

    @property
    def messages(self) -> int:
        return sum(self.handled.values())


@dataclass
class EmbeddedRuntime:
    data_dir: Path
    deps: Deps
    queue: SqliteQueue
    counter: StoreCounter
    provider: InstantRunProvider
    submitted_at: dict[str, float] = field(default_factory=dict)  # job id -> when job-submit was published
    decided_at: dict[str, float] = field(default_factory=dict)  # job id -> when its scale-up was stored
    batch_size: int = MAX_MESSAGE_BATCH  # messages per call at most; 1 is one message per call, as Azure's triggers
    _batch: dict[str, dict[str, Any]] = field(default_factory=dict)  # event id -> event, of the batch handled
    _preparing: dict[str, set[str]] = field(default_factory=dict)  # cluster -> its nodes being prepared, last saved

    def drain(self, stats: DrainStats | None = None) -> DrainStats:
        """Hand every visible message to ``handle_messages`` (a batch of one session at a time, round robin over
        the queues) until none is left."""
        stats = stats or DrainStats()
        started, cpu_started = time.perf_counter(), time.process_time()
        progressed = True
        while progressed:
            progressed = False
            for queue_name in QUEUE_NAMES:
                batch = self.queue.receive_batch(queue_name, self.batch_size)
                if not batch:
                    continue
                progressed = True
                stats.batches += 1
                self._batch = {m.message_id: json.loads(m.body) for m in batch}
                try:
                    handle_messages(queue_name, [QueueMessage(m.message_id, m.body, m.delivery_count) for m in batch],
                                    self.deps)
                except Exception as exc:  # as the local host does: any failure means redelivery
                    log.exception("handling a batch of %d from %s failed; it is redelivered", len(batch), queue_name)
                    stats.failures += 1
                    failed = FailedBatch.of(batch, exc)
                    self.queue.complete_all(failed.settled)
                    for message in failed.failed:
                        self.queue.abandon(message)  # (no dead-lettering here: a bench run fails loudly instead)
                    self.queue.release_untried(failed.untried)
                else:
                    self.queue.complete_all(batch)
                for message in batch:
                    stats.handled[str(self._batch[message.message_id].get("type"))] += 1
                    stats.body_bytes += len(message.body)
                self._batch = {}
        stats.seconds += time.perf_counter() - started
        stats.cpu_seconds += time.process_time() - cpu_started
        self.counter.context = "idle"
        return stats

    def event_handled(self) -> dict[str, Any]:
        """The event being handled now (``{}`` between events)."""
        return self._batch.get(current_log_ids().get("event", ""), {})

    def note_cluster_saved(self, cluster: Cluster) -> None:
        """Reaction: the save, while handling a job's submit event, that provisions a node for it. A save that adds
        n nodes being prepared decides the scale-up of n of the submits being handled (a run of them is decided and
        saved together, under its last event), the earliest first; a submit that finds no room gets none."""
        preparing = {n.node_id for n in cluster.nodes if n.state.value == "preparing"}
        added = preparing - self._preparing.get(cluster.name, set())
        self._preparing[cluster.name] = preparing
        if not added or not self.event_handled().get("type", "").endswith("job.submit"):
            return
        held = {entry.job_id for entry in cluster.jobs}
        waiting = [job for event in self._batch.values() if event.get("type", "").endswith("job.submit")
                   and (job := event.get("data", {}).get("job_id")) in held and job not in self.decided_at]
        now = time.perf_counter()
        for job in waiting[:len(added)]:
            self.decided_at[job] = now


def start_runtime(data_dir: Path, *, measure_sizes: bool = False, batch_size: int = MAX_MESSAGE_BATCH
                  ) -> EmbeddedRuntime:
    """``shared.bootstrap.build`` with node boot 0 s; its store counted and its provider made instant."""
    container = build(Settings(data_dir=data_dir, node_boot_seconds=0.0, release_poll_seconds=1.0))
    if container.queue is None:
        raise RuntimeError("the embedded runtime needs the SQLite queue (COMPUTEPLANE_BUS=sqlite)")
    counter = StoreCounter(measure_sizes=measure_sizes)
    # Runs end through the bus the real provider publishes to: with telemetry on, the event carries the trace on.
    provider = InstantRunProvider(container.deps.provider, container.deps.bus)
    deps = replace(container.deps, store=CountingStore(container.deps.store, counter),
                   provider=cast(NodeProvider, provider))
    runtime = EmbeddedRuntime(data_dir=data_dir, deps=deps, queue=container.queue, counter=counter,
                              provider=provider, batch_size=batch_size)
    counter.on_cluster_saved = runtime.note_cluster_saved
    counter.context_of = lambda: runtime.event_handled().get("type")
    freeze_startup_objects()  # as the Functions host and `computeplane serve` do once started
    return runtime
