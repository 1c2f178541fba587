"""Chaos soak: thousands of events over many clusters while the world misbehaves, then one table of figures.

    python -m bench.chaos --events 10000 --clusters 20 --seed 1
    python -m bench.chaos --quick           # a few hundred events (what the test suite runs)

Every event goes through ``shared.handlers.messages.handle_messages``, in batches of one session, against the real
SQLite store, through a hostile broker (``tests.reliability.broker.DuplicatingBus``: each message delivered 1-3
times, queues interleaved, copies and scheduled messages late), with store faults (429/503/timeouts) and process
crashes injected at random before or after writes, publishes and provider calls (``tests.reliability.faults``), and
the timer's sweep every minute. Time is a fake clock. The node provider is the in-memory fake
(``tests.reliability.fake_provider``): jobs last seconds of fake time instead of being processes, so 10,000 events
take about 90 s on 2 cores; the real local provider is covered by the reliability tests. Nodes are preempted and
fail, jobs are canceled, clusters are resized, deleted and created again, and events are redelivered by "producers".

Every invariant violation is reported; there is no list of known ones to excuse.
"""

from __future__ import annotations

import argparse
import bisect
import logging
import random
import string
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from rich.table import Table

from bench.machine import console, print_header
from shared.domain import events as ev
from tests.reliability.broker import DeliveryChaos
from tests.reliability.faults import FaultPlan, is_mutating
from tests.reliability.world import WORKSPACE, World

REDELIVERY_HORIZON = timedelta(minutes=10)
@dataclass(frozen=True)
class SoakConfig:
    events: int = 10_000
    clusters: int = 20
    seed: int = 1
    batch: int = 20  # events sent between two settles
    settle_seconds: float = 10.0
    store_fault_rate: float = 0.01  # per store call
    crash_rate: float = 0.002  # per mutating call (write, publish, provider call)


@dataclass
class SoakReport:
    config: SoakConfig
    events_sent: int = 0
    published: int = 0
    deliveries: int = 0
    duplicates: int = 0
    crashes: int = 0
    faults: int = 0
    applied: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    jobs: Counter[str] = field(default_factory=Counter)
    jobs_lost: list[str] = field(default_factory=list)
    jobs_waiting_behind_a_gang: int = 0
    violations: set[str] = field(default_factory=set)
    wall_seconds: float = 0.0

    def note(self, broken: list[str]) -> None:
        self.violations.update(broken)


def cluster_name(n: int) -> str:
    return "soak" + string.ascii_lowercase[n // 26 % 26] + string.ascii_lowercase[n % 26]


class Workload:
    """What users, other systems and the cloud do, drawn from one seeded generator."""

    def __init__(self, world: World, config: SoakConfig) -> None:
        self.world, self.config = world, config
        self.rng = random.Random(config.seed)
        self.names = [cluster_name(n) for n in range(config.clusters)]
        self.jobs: list[tuple[str, str]] = []
        self.deleted: list[str] = []
        self.count = 0

    def _id(self, kind: str) -> str:
        self.count += 1
        return f"{kind}-{self.count}"

    def create(self, name: str) -> None:
        max_nodes = self.rng.randint(1, 4)
        self.world.create(name, max_nodes, min(self.rng.randint(0, 1), max_nodes), self.rng.choice([30, 60, 120]),
                          self.rng.choice(["dedicated", "lowpriority"]), event_id=self._id("create"))

    def step(self) -> None:
        """One event from someone outside, or one thing the cloud does."""
        world, rng = self.world, self.rng
        action = rng.choices(["submit", "cancel", "update", "redeliver", "poke", "recreate", "cloud"],
                             weights=[55, 8, 5, 8, 10, 1, 13])[0]
        name = rng.choice(self.names)
        if action == "recreate" and name not in self.deleted:
            world.delete(name, event_id=self._id("delete"))
            self.deleted.append(name)
        elif action == "recreate" or (self.deleted and rng.random() < 0.05):
            self.create(self.deleted.pop(0) if self.deleted else name)
        elif action == "cancel" and self.jobs:
            cluster, job_id = rng.choice(self.jobs)
            world.cancel(cluster, job_id, event_id=self._id("cancel"))
        elif action == "update":
            max_nodes = rng.randint(1, 4)
            world.update(name, self._id("update"), max_nodes=max_nodes, min_nodes=min(rng.randint(0, 1), max_nodes))
        elif action == "redeliver":
            # A producer retrying within Service Bus' 10-minute duplicate-detection window; a copy of a create or
            # delete may reach the next incarnation of its cluster. (Copies older than the 200 ids a cluster
            # remembers are out of scope: updates are last-writer-wins by time, creates and deletes tombstoned.)
            recent = world.clock.now() - REDELIVERY_HORIZON
            world.redeliver(rng.choice(self.recent_ids(recent)))
        elif action == "poke":
            world.send(ev.SCALE_REQUEST, name, {"reason": "poke"}, self._id("poke"))
        elif action == "cloud":
            self._cloud()
            return
        else:
            job_id = self._id("job")
            world.submit(name, job_id, rng.choice([2, 5, 10, 30, 30, None]), rng.choice([0] * 9 + [1]),
                         rng.choice([1] * 6 + [2]), rng.randint(0, 2))
            self.jobs.append((name, job_id))

    def recent_ids(self, since: datetime) -> list[str]:
        sent_at = self.world.sent_at
        ids = list(sent_at)
        first = bisect.bisect_left(ids, since, key=lambda event_id: sent_at[event_id])  # sent in time order
        return ids[first:] or ids[-1:]

    def _cloud(self) -> None:
        provider, rng = self.world.provider, self.rng
        runs = provider.unfinished_runs()
        nodes = [n for n, node in provider.nodes.items() if not node.lost]
        what = rng.choice(["finish", "preempt", "fail"])
        if what == "finish" and runs:
            run = rng.choice(runs)
            provider.finish(run.request.job_id, rng.choice([0, 0, 0, 3]))
        elif what == "preempt" and nodes:
            provider.preempt(rng.choice(nodes))
        elif nodes:
            provider.fail_node(rng.choice(nodes))


def run_soak(config: SoakConfig, root: Path) -> SoakReport:
    started = time.perf_counter()
    chaos = DeliveryChaos(copies=(1, 3), duplicate_delay=(0.0, 45.0), late_scheduled=(0.0, 20.0), shuffle=True)
    plan = FaultPlan(fail_rate=config.store_fault_rate, crash_rate=config.crash_rate, seed=config.seed,
                     fail_calls=lambda call: call.startswith("store."), crash_calls=is_mutating)
    world = World(root, chaos=chaos, plan=plan, seed=config.seed)
    workload = Workload(world, config)
    report = SoakReport(config)
    for name in workload.names:
        workload.create(name)
    world.settle(30)
    batches = 0
    while len(world.sent) < config.events:
        for _ in range(config.batch):
            workload.step()
        world.settle(config.settle_seconds)
        batches += 1
        if batches % 10 == 0:
            report.note(world.broken_promises(every_step=False))
    _wind_down(world, report)
    _count(world, workload, report)
    report.wall_seconds = time.perf_counter() - started
    return report


def _wind_down(world: World, report: SoakReport) -> None:
    """Stop sending; let every run end and every idle node go, then check what must hold once all is quiet."""
    for _ in range(30):
        for run in world.provider.unfinished_runs():
            world.provider.finish(run.request.job_id)
        world.settle(61)
    world.plan.enabled = False
    world.settle(600)
    report.note(world.broken_promises(settled=True, every_step=False))


def _count(world: World, workload: Workload, report: SoakReport) -> None:
    broker = world.broker
    report.events_sent = len(world.sent)
    report.published, report.deliveries = broker.stats.published, broker.stats.deliveries
    report.duplicates = broker.stats.duplicate_deliveries
    report.crashes, report.faults = world.plan.crashes_injected, world.plan.faults_injected
    dead = {d.message_id for d in broker.dead_letters}
    report.applied = len([m for m in broker.completed_ids if m not in dead])
    report.dead_letters = Counter(d.reason.split(":")[0] + (": " + d.reason.split(":")[1].strip()
                                                            if d.reason.startswith("MaxDelivery") else "")
                                  for d in broker.dead_letters)
    jobs = world.jobs()
    report.jobs = Counter(j.state.value for j in jobs.values())
    blocked = {j.cluster for j in jobs.values() if not j.state.is_terminal
               and (c := world.store.get_cluster(WORKSPACE, j.cluster)) is not None
               and j.spec.node_count > c.spec.max_nodes}
    for job in jobs.values():
        if job.state.is_terminal:
            continue
        if job.cluster in blocked:
            report.jobs_waiting_behind_a_gang += 1  # head-of-line blocking, which test_queue_liveness rules out
        else:
            report.jobs_lost.append(f"{job.id} is still {job.state.value}: {job.reason}")
    for _, job_id in workload.jobs:
        if job_id not in jobs and f"submit-{job_id}" not in dead and f"submit-{job_id}" in world.sent:
            report.jobs_lost.append(f"{job_id} was submitted and never recorded")


def render(report: SoakReport) -> Table:
    c = report.config
    table = Table(title=f"Chaos soak: {c.events} events, {c.clusters} clusters, seed {c.seed}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("notes")
    rows = [
        ("events sent", f"{report.events_sent:,}", "by users and other systems (create, submit, cancel, ...)"),
        ("events published", f"{report.published:,}", "all messages, with the control plane's and the cloud's own"),
        ("deliveries", f"{report.deliveries:,}", "messages handed to the handler (in batches of one session)"),
        ("duplicates", f"{report.duplicates:,}", "extra copies and redeliveries handed out"),
        ("crashes injected", f"{report.crashes:,}", "process killed before/after a write, publish or provider call"),
        ("faults injected", f"{report.faults:,}", "store 429/503/timeouts"),
        ("events applied", f"{report.applied:,}", "distinct messages handled to the end"),
        ("dead-lettered", f"{sum(report.dead_letters.values()):,}",
         "; ".join(f"{n} {r}" for r, n in report.dead_letters.most_common(6)) or "-"),
        ("jobs", f"{sum(report.jobs.values()):,}", ", ".join(f"{n} {s}" for s, n in sorted(report.jobs.items()))),
        ("jobs lost", f"{len(report.jobs_lost):,}", "; ".join(report.jobs_lost[:3]) or "-"),
        ("jobs starved behind a gang", f"{report.jobs_waiting_behind_a_gang:,}", "test_queue_liveness holds this at 0"),
        ("invariant violations", f"{len(report.violations):,}", "; ".join(sorted(report.violations)[:3]) or "-"),
        ("wall time", f"{report.wall_seconds:.1f} s", ""),
    ]
    for row in rows:
        table.add_row(*row)
    return table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="600 events over 5 clusters")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = SoakConfig(events=600, clusters=5, seed=args.seed) if args.quick else SoakConfig(
        events=args.events, clusters=args.clusters, seed=args.seed)
    logging.disable(logging.CRITICAL)  # handlers log every injected failure
    out = console()
    print_header(out, "ComputePlane chaos soak")
    with tempfile.TemporaryDirectory(prefix="computeplane-chaos-") as root:
        report = run_soak(config, Path(root))
    out.print(render(report))
    for problem in sorted(report.violations)[:20]:  # the table counts them all
        out.print(f"  {problem}")
    return 1 if report.jobs_lost or report.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
