"""An in-memory NodeProvider for property tests and the soak (the real local provider is covered elsewhere).

Nodes boot after ``boot_delay`` of the (fake) clock and announce it with a scheduled ``node.ready``, as the local
provider does. A run lasts ``FAKE_RUN_SECONDS`` from its environment and exits ``FAKE_EXIT_CODE`` (both optional:
without a duration it runs until ``finish()``). Losing a node (``preempt``/``fail_node``) kills only the rank on that
node, as in the cloud.

It also watches the promises the control plane makes to a provider and records each breach in ``violations``:
a job never runs twice at once, a node runs one job at a time, a busy node is never released, and no cluster is
given more nodes than its ``max_nodes``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.adapters.local_provider import Publish
from shared.domain.cluster import Cluster, JobPhase
from shared.domain.events import JOB_FINISHED, NODE_FAILED, NODE_PREEMPTED, NODE_READY, new_event
from shared.domain.observation import (
    LockLevel,
    NodeStatus,
    Observation,
    ObservedNode,
    ObservedRun,
    ResourceLock,
    RunStatus,
)
from shared.ports import Clock, RunRequest

MaxNodesOf = Callable[[str, str], int | None]
KILLED = -9


@dataclass
class FakeNode:
    node_id: str
    workspace: str
    cluster: str
    ready_at: datetime
    lost: str | None = None  # "preempted" or "failed"
    priority: str | None = None  # as asked at provision: dedicated nodes are never preempted


@dataclass
class FakeRun:
    request: RunRequest
    node_ids: tuple[str, ...]
    started_at: datetime
    ends_at: datetime | None
    exit_code: int
    alive: set[str] = field(default_factory=set)  # nodes whose rank still runs
    killed: bool = False

    def finished(self, now: datetime) -> bool:
        if self.ends_at is not None and now >= self.ends_at:
            self.alive.clear()
        return not self.alive


class FakeNodeProvider:
    def __init__(self, clock: Clock, publish: Publish, boot_delay: timedelta = timedelta(seconds=1),
                 max_nodes_of: MaxNodesOf | None = None) -> None:
        self._clock, self._publish, self._boot_delay = clock, publish, boot_delay
        self._max_nodes_of = max_nodes_of
        self.nodes: dict[str, FakeNode] = {}
        self.runs: dict[tuple[str, int], FakeRun] = {}
        self.violations: list[str] = []
        self._locks: dict[str, ResourceLock] = {}
        self.provisioned = 0
        self.released = 0
        self.runs_started = 0

    # --- NodeProvider --------------------------------------------------------------------------------------------
    def provision(self, workspace: str, cluster: str, node_id: str, priority: str | None = None) -> datetime | None:
        if node_id in self.nodes:
            return self.nodes[node_id].ready_at
        ready_at = self._clock.now() + self._boot_delay
        self.nodes[node_id] = FakeNode(node_id, workspace, cluster, ready_at, priority=priority)
        self.provisioned += 1
        limit = self._max_nodes_of(workspace, cluster) if self._max_nodes_of else None
        held = self.live_nodes(workspace, cluster)
        if limit is not None and len(held) > limit:
            self.violations.append(f"{workspace}/{cluster} was given {len(held)} nodes, max_nodes is {limit}")
        self._publish(new_event(NODE_READY, workspace, cluster, {"node_id": node_id},
                                event_id=f"node-ready-{node_id}"), ready_at)
        return ready_at

    def release(self, node_id: str) -> None:
        node = self.nodes.pop(node_id, None)
        if node is None:
            return
        self.released += 1
        now = self._clock.now()
        for run in self.runs.values():
            if node_id in run.alive and not run.finished(now):
                self.violations.append(f"node {node_id} was released while job {run.request.job_id} attempt "
                                       f"{run.request.attempt} ran on it")
                run.alive.discard(node_id)

    def start_run(self, node_ids: Sequence[str], run: RunRequest) -> None:
        key = (run.job_id, run.attempt)
        if key in self.runs:
            return  # started before: idempotent
        now = self._clock.now()
        for other in self.unfinished_runs():
            if other.request.job_id == run.job_id:
                self.violations.append(f"job {run.job_id} attempt {run.attempt} started while attempt "
                                       f"{other.request.attempt} still runs on {sorted(other.alive)}")
            elif set(node_ids) & other.alive:
                self.violations.append(f"job {run.job_id} started on {sorted(set(node_ids) & other.alive)}, busy "
                                       f"with job {other.request.job_id}")
        for node_id in node_ids:
            node = self.nodes.get(node_id)
            if node is None or node.lost or node.ready_at > now:
                self.violations.append(f"job {run.job_id} started on node {node_id}, which is not ready")
        seconds = run.environment.get("FAKE_RUN_SECONDS")
        ends_at = now + timedelta(seconds=float(seconds)) if seconds else None
        fake = FakeRun(run, tuple(node_ids), now, ends_at, int(run.environment.get("FAKE_EXIT_CODE", "0")),
                       alive=set(node_ids))
        self.runs[key] = fake
        self.runs_started += 1
        if ends_at is not None:
            self._announce_finished(fake, ends_at)

    def stop_run(self, job_id: str, attempt: int) -> None:
        run = self.runs.get((job_id, attempt))
        if run is not None and not run.finished(self._clock.now()):
            self._kill(run, run.alive)

    def observe(self, cluster: Cluster) -> Observation:
        now = self._clock.now()
        observation = Observation()
        for cluster_node in cluster.nodes:
            node = self.nodes.get(cluster_node.node_id)
            if node is None:
                continue
            if node.lost == "preempted":
                observation.nodes[node.node_id] = ObservedNode(NodeStatus.PREEMPTED, "preempted by the provider")
            elif node.lost == "failed":
                observation.nodes[node.node_id] = ObservedNode(NodeStatus.FAILED, "the node failed")
            elif node.ready_at <= now:
                observation.nodes[node.node_id] = ObservedNode(NodeStatus.READY, private_ip="10.0.0.4")
            else:
                observation.nodes[node.node_id] = ObservedNode(NodeStatus.BOOTING)
        if self._locks:  # the strictest lock decides
            observation.lock = max(self._locks.values(), key=lambda lock: lock.level is LockLevel.READ_ONLY)
        for entry in cluster.jobs:
            if entry.phase is not JobPhase.RUNNING:
                continue
            run = self.runs.get((entry.job_id, entry.attempt))
            if run is None:
                continue
            if run.finished(now):
                observation.runs[(entry.job_id, entry.attempt)] = ObservedRun(RunStatus.FINISHED, run.exit_code)
            else:
                observation.runs[(entry.job_id, entry.attempt)] = ObservedRun(RunStatus.RUNNING)
        held = {n.node_id for n in cluster.nodes}
        observation.unfinished_runs = {key: frozenset(run.alive & held) for key, run in self.runs.items()
                                       if run.alive & held and not run.finished(now)}
        return observation

    def read_logs(self, job_id: str, attempt: int) -> str | None:
        return "" if (job_id, attempt) in self.runs else None

    def add_lock(self, name: str, level: LockLevel) -> ResourceLock:
        self._locks[name] = ResourceLock(name, level, "/subscriptions/fake/resourceGroups/nodes")
        return self._locks[name]

    def remove_lock(self, name: str) -> bool:
        return self._locks.pop(name, None) is not None

    def locks(self) -> list[ResourceLock]:
        return list(self._locks.values())

    # --- what a test drives --------------------------------------------------------------------------------------
    def finish(self, job_id: str, exit_code: int = 0) -> bool:
        """End the job's unfinished run now with ``exit_code``."""
        run = next((r for r in self.unfinished_runs() if r.request.job_id == job_id), None)
        if run is None:
            return False
        run.exit_code, run.ends_at = exit_code, self._clock.now()
        run.alive.clear()
        self._announce_finished(run, None)
        return True

    def preempt(self, node_id: str) -> bool:
        node = self.nodes.get(node_id)
        if node is not None and node.priority == "dedicated":
            return False
        return self._lose(node_id, "preempted", NODE_PREEMPTED)

    def fail_node(self, node_id: str) -> bool:
        return self._lose(node_id, "failed", NODE_FAILED)

    def _lose(self, node_id: str, how: str, event_type: str) -> bool:
        node = self.nodes.get(node_id)
        if node is None or node.lost:
            return False
        node.lost = how
        for run in self.unfinished_runs():
            if node_id in run.alive:
                self._kill(run, {node_id})
        self._publish(new_event(event_type, node.workspace, node.cluster, {"node_id": node_id},
                                event_id=f"node-{how}-{node_id}"), None)
        return True

    def _kill(self, run: FakeRun, node_ids: set[str]) -> None:
        run.alive -= node_ids
        run.killed, run.exit_code = True, KILLED
        if not run.alive:
            run.ends_at = self._clock.now()
            self._announce_finished(run, None)

    def _announce_finished(self, run: FakeRun, at: datetime | None) -> None:
        r = run.request
        self._publish(new_event(JOB_FINISHED, r.workspace, r.cluster,
                                {"job_id": r.job_id, "attempt": r.attempt, "exit_code": run.exit_code},
                                event_id=f"job-finished-{r.job_id}-{r.attempt}"), at)

    # --- what the invariants read --------------------------------------------------------------------------------
    def live_nodes(self, workspace: str, cluster: str) -> list[str]:
        return [n.node_id for n in self.nodes.values() if (n.workspace, n.cluster) == (workspace, cluster)]

    def live_node_owners(self) -> dict[str, tuple[str, str]]:
        return {n.node_id: (n.workspace, n.cluster) for n in self.nodes.values()}

    def unfinished_runs(self) -> list[FakeRun]:
        now = self._clock.now()
        return [r for r in self.runs.values() if not r.finished(now)]

    def unfinished_attempts(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for run in self.unfinished_runs():
            found.setdefault(run.request.job_id, []).append(run.request.attempt)
        return found

    def busy_nodes(self) -> dict[str, str]:
        return {node_id: run.request.job_id for run in self.unfinished_runs() for node_id in run.alive}
