"""A whole control plane in one process, on a fake clock: the real handlers and SQLite store, a hostile broker
(``DuplicatingBus``), fault-injecting wrappers around every port, and the timer's sweep on its period.

``settle(duration)`` lets ``duration`` of fake time pass: every due message is delivered, in batches of one session
as the deployed queue triggers take them (a crash leaves the batch locked until its lock runs out, a failure retries
the batch after the host's back-off), and the sweep runs every ``sweep_every``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from shared.adapters.sqlite_store import SqliteStore
from shared.bootstrap import build
from shared.config import Settings
from shared.domain import events as ev
from shared.domain.events import CloudEvent, new_event
from shared.domain.job import Job, JobSpec
from shared.domain.requests import ClusterCreate
from shared.handlers import use_cases
from shared.handlers.deps import Deps
from shared.handlers.messages import QueueMessage, handle_messages
from shared.handlers.sweep import sweep
from shared.ports import MAX_MESSAGE_BATCH, FailedBatch, NodeProvider
from tests.fakes.clock import FakeClock
from tests.reliability.broker import DeliveryChaos, DuplicatingBus, Message
from tests.reliability.fake_provider import FakeNodeProvider
from tests.reliability.faults import Crash, FaultPlan, FaultyBus, FaultyProvider, FaultyStore
from tests.reliability.invariants import NodeHistory, check_invariants, check_scaled_down
from tests.reliability.ledger import RECORDED_TYPES, LedgerStore, check_events

WORKSPACE = "ws"
RESYNC = timedelta(seconds=60)
MAX_DELIVERIES_PER_SETTLE = 20_000


@dataclass
class WorldStats:
    crashes_in_handlers: int = 0
    crashes_in_sweeps: int = 0
    handler_failures: int = 0
    sweeps: int = 0
    sweep_failures: int = 0
    failure_kinds: dict[str, int] = field(default_factory=dict)


class World:
    def __init__(self, root: Path, *, chaos: DeliveryChaos | None = None, plan: FaultPlan | None = None,
                 seed: int = 0, boot_seconds: float = 1.0, boot_timeout_seconds: float = 600.0,
                 wrap_provider: Callable[[NodeProvider], NodeProvider] | None = None) -> None:
        self.clock = FakeClock()
        self.broker = DuplicatingBus(self.clock, chaos or DeliveryChaos(), seed=seed)
        self.plan = plan or FaultPlan()
        settings = Settings(data_dir=root, node_boot_seconds=boot_seconds, boot_timeout_seconds=boot_timeout_seconds,
                            resync_seconds=RESYNC.total_seconds(), release_poll_seconds=30.0)
        container = build(settings, clock=self.clock)
        assert isinstance(container.deps.store, SqliteStore)
        self.store = container.deps.store
        self.ledger = LedgerStore(self.store)
        self.provider = FakeNodeProvider(self.clock, self._provider_publish, timedelta(seconds=boot_seconds),
                                         max_nodes_of=self._max_nodes_of)
        provider: NodeProvider = self.provider if wrap_provider is None else wrap_provider(self.provider)
        self.deps: Deps = dataclasses.replace(
            container.deps, store=FaultyStore(self.ledger, self.plan), bus=FaultyBus(self.broker, self.plan),
            provider=FaultyProvider(provider, self.plan))
        self.sent: dict[str, bytes] = {}
        self.sent_at: dict[str, datetime] = {}
        self.recorded: list[str] = []
        self.next_sweep = self.clock.now() + RESYNC
        self.sweep_every = RESYNC
        self.history = NodeHistory()
        self.stats = WorldStats()
        self.crashed_at: datetime | None = None  # the first crash
        self.crashed_in: str | None = None  # the message id being handled then, or "sweep"
        self.one_period_after_crash: list[str] | None = None  # what was still broken one period after it

    def _provider_publish(self, event: CloudEvent, not_before: datetime | None) -> None:
        self.broker.publish(event, not_before=not_before)  # the cloud's own events never crash our process

    def _max_nodes_of(self, workspace: str, cluster: str) -> int | None:
        found = self.store.get_cluster(workspace, cluster)
        return found.spec.max_nodes if found else None

    # --- what other systems send ---------------------------------------------------------------------------------
    def send(self, event_type: str, cluster: str, data: dict[str, Any], event_id: str) -> CloudEvent:
        event = new_event(event_type, WORKSPACE, cluster, data, event_id=event_id, time=self.clock.now())
        self.sent[event.id] = event.to_json()
        self.sent_at[event.id] = self.clock.now()
        if event.type in RECORDED_TYPES:
            self.recorded.append(event.id)
        self.broker.publish(event)
        return event

    def create(self, cluster: str, max_nodes: int = 2, min_nodes: int = 0, idle: int = 120,
               priority: str = "dedicated", event_id: str | None = None) -> None:
        self.send(ev.CLUSTER_CREATE, cluster, {"name": cluster, "vm_size": "STANDARD_D2_V2", "max_nodes": max_nodes,
                                               "min_nodes": min_nodes, "idle_seconds_before_scaledown": idle,
                                               "vm_priority": priority}, event_id or f"create-{cluster}")

    def submit(self, cluster: str, job_id: str, seconds: float | None = 5.0, exit_code: int = 0,
               node_count: int = 1, max_retries: int = 3) -> None:
        env = {"FAKE_EXIT_CODE": str(exit_code)} | ({"FAKE_RUN_SECONDS": str(seconds)} if seconds else {})
        self.send(ev.JOB_SUBMIT, cluster, {"job_id": job_id, "command": ["python", "-c", "pass"],
                                           "node_count": node_count, "environment_variables": env,
                                           "max_retries": max_retries}, f"submit-{job_id}")

    def cancel(self, cluster: str, job_id: str, event_id: str | None = None) -> None:
        self.send(ev.JOB_CANCEL, cluster, {"job_id": job_id}, event_id or f"cancel-{job_id}")

    def update(self, cluster: str, event_id: str, **settings: int) -> None:
        self.send(ev.CLUSTER_UPDATE, cluster, settings, event_id)

    def delete(self, cluster: str, event_id: str | None = None) -> None:
        self.send(ev.CLUSTER_DELETE, cluster, {}, event_id or f"delete-{cluster}")

    def redeliver(self, event_id: str) -> None:
        """Send an event again (ours, or one the control plane or the cloud published), as a producer retrying or a
        broker redelivering would."""
        event = CloudEvent.model_validate_json(self.broker.bodies[event_id])
        self.broker.publish(event)

    # --- what people send through the HTTP API (the command handlers behind it) ------------------------------------
    def http_create(self, cluster: str, max_nodes: int = 2, idle: int = 120) -> None:
        use_cases.create_cluster(self.deps, WORKSPACE, ClusterCreate(
            name=cluster, vm_size="STANDARD_D2_V2", max_nodes=max_nodes, idle_seconds_before_scaledown=idle))

    def http_submit(self, cluster: str, seconds: float = 5.0) -> str:
        spec = JobSpec(command=["python", "-c", "pass"], environment_variables={"FAKE_RUN_SECONDS": str(seconds)})
        return use_cases.submit_job(self.deps, WORKSPACE, cluster, spec)[0].id

    # --- time ----------------------------------------------------------------------------------------------------
    def deliver_one(self) -> bool:
        """Hand one batch to the queue trigger, as the Functions host does for a session-enabled trigger declared
        with ``cardinality=many``: up to ``MAX_MESSAGE_BATCH`` messages of one session, in order, settled as the
        local host settles them.
        Whether anything was delivered. The stats count a failed or crashed batch once, whatever its size."""
        batch = self.broker.take_batch(MAX_MESSAGE_BATCH)
        if not batch:
            return False
        queue = batch[0].queue
        assert all(m.queue == queue for m in batch)
        try:
            handle_messages(queue, [QueueMessage(m.message_id, m.body, m.delivery_count) for m in batch], self.deps)
        except Crash as crash:
            self.stats.crashes_in_handlers += 1
            for message in batch:
                self.broker.lose_lock(message)
            self._note_crash(_crashed_in(crash, batch))
        except Exception as exc:  # noqa: BLE001 - what the local host does: any failure means redelivery
            # A batch that stopped part way settled what came before the stop: only the rest is tried again.
            failed = FailedBatch.of(batch, exc)
            self.stats.handler_failures += 1
            kind = type(failed.cause).__name__
            self.stats.failure_kinds[kind] = self.stats.failure_kinds.get(kind, 0) + 1
            for message in failed.settled:
                self.broker.complete(message)
            for message in failed.failed:
                self.broker.abandon(message, f"{kind}: {failed.cause}")
            for message in failed.untried:
                self.broker.release_untried(message)
        else:
            for message in batch:
                self.broker.complete(message)
        return True

    def use_plan(self, plan: FaultPlan) -> None:
        """From now on, faults come from ``plan`` (built after the world, e.g. an outage on its clock)."""
        self.plan = plan
        for port in (self.deps.store, self.deps.bus, self.deps.provider):
            assert isinstance(port, FaultyStore | FaultyBus | FaultyProvider)
            port.plan = plan

    def run_sweep(self) -> None:
        self.stats.sweeps += 1
        try:
            sweep(self.deps)
        except Exception:  # noqa: BLE001 - the timer function failed (store down): it runs again next tick
            self.stats.sweep_failures += 1
        except Crash:
            self.stats.crashes_in_sweeps += 1
            self._note_crash("sweep")

    def _note_crash(self, where: str) -> None:
        if self.crashed_at is None:
            self.crashed_at, self.crashed_in = self.clock.now(), where

    def _convergence_due(self) -> datetime | None:
        if self.crashed_at is None or self.one_period_after_crash is not None:
            return None
        return self.crashed_at + RESYNC

    def settle(self, seconds: float) -> None:
        """Let ``seconds`` of fake time pass, delivering everything that falls due and sweeping on the period."""
        end = self.clock.now() + timedelta(seconds=seconds)
        deliveries = 0
        while True:
            while self.deliver_one():
                deliveries += 1
                if deliveries > MAX_DELIVERIES_PER_SETTLE:
                    raise AssertionError(f"no quiet point after {deliveries} deliveries: a message loop")
            if self.clock.now() >= self.next_sweep:
                self.next_sweep += self.sweep_every
                self.run_sweep()
                continue
            check_at = self._convergence_due()
            if check_at is not None and self.clock.now() >= check_at:
                self.one_period_after_crash = self.broken_promises(settled=True)
                continue
            due = [t for t in (self.broker.next_visible_at(), self.next_sweep, check_at) if t is not None]
            upcoming = min(due)
            if upcoming > end:
                break
            self.clock.advance(upcoming - self.clock.now())
        if end > self.clock.now():
            self.clock.advance(end - self.clock.now())

    # --- what tests look at --------------------------------------------------------------------------------------
    def jobs(self) -> dict[str, Job]:
        return {j.id: j for j in self.store.list_jobs(WORKSPACE)}

    def outcome(self) -> dict[str, Any]:
        """What a user would compare between two runs: job results and cluster shapes."""
        clusters = {c.name: (c.provisioning_state.value, c.spec.min_nodes, c.spec.max_nodes, c.node_state_counts(),
                             sorted(e.code for e in c.errors), sorted(j.job_id for j in c.jobs))
                    for c in self.store.list_clusters(WORKSPACE)}
        jobs = {j.id: (j.state.value, j.exit_code, j.reason) for j in self.store.list_jobs(WORKSPACE)}
        return {"clusters": clusters, "jobs": jobs}

    def broken_promises(self, *, settled: bool = False, scaled_down: bool = False,
                        every_step: bool = True) -> list[str]:
        """``every_step=False`` when the caller looks only now and then: the node history then has gaps."""
        history = self.history if every_step else None
        broken = check_invariants(self.store, self.provider, WORKSPACE, settled=settled, history=history)
        if scaled_down:
            broken += check_scaled_down(self.store, self.provider, WORKSPACE)
        broken += check_events(self.sent, self.recorded, self.ledger, self.broker.completed_ids,
                               self.broker.dead_letters) if settled else []
        return broken


def _crashed_in(crash: Crash, batch: list[Message]) -> str:
    """The id of the batch's message being applied when the process died (the batch's first outside a handler)."""
    return crash.event_id if crash.event_id in {m.message_id for m in batch} else batch[0].message_id
