"""The simulated node provider: nodes that boot, runs that finish, preemptions, and the bill.

It keeps a live ``Observation`` (what ``reconcile`` reads) and a ``ProviderLedger`` of node-seconds. A node is paid
from the moment it is asked for (boot included) until it is released or preempted. Only low-priority nodes are
preempted; a preempted run of a job that checkpoints keeps the work up to its last checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.domain.low_priority import checkpointed_seconds
from shared.domain.observation import NodeStatus, Observation, ObservedNode, ObservedRun, RunStatus

RunKey = tuple[str, int]  # (job id, attempt)


@dataclass
class ProviderLedger:
    node_seconds: float = 0.0  # paid: from request to release or preemption
    dedicated_node_seconds: float = 0.0  # of which on dedicated nodes (a low-priority cluster's fallback)
    busy_node_seconds: float = 0.0  # nodes running an attempt (finished or interrupted)
    lost_node_seconds: float = 0.0  # work of attempts killed by a preemption, since their last checkpoint
    provisions: int = 0
    releases: int = 0
    preemptions: int = 0
    interrupted_runs: int = 0
    peak_nodes: int = 0
    busy_intervals: list[tuple[float, float, int]] = field(default_factory=list)  # (start, end, nodes) of attempts


@dataclass
class _LiveNode:
    requested_at: float
    priority: str
    ready: bool = False


@dataclass
class _LiveRun:
    node_ids: tuple[str, ...]
    started_at: float
    checkpoint_interval_seconds: int | None = None


@dataclass
class SimulatedProvider:
    observation: Observation = field(default_factory=Observation)
    ledger: ProviderLedger = field(default_factory=ProviderLedger)
    _nodes: dict[str, _LiveNode] = field(default_factory=dict)  # paid nodes
    _runs: dict[RunKey, _LiveRun] = field(default_factory=dict)
    _run_of_node: dict[str, RunKey] = field(default_factory=dict)
    # Work each job's checkpoints saved (its checkpoint directory survives its attempts).
    saved_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def live_node_count(self) -> int:
        return len(self._nodes)

    def live_node_ids(self) -> list[str]:
        return list(self._nodes)

    # --- nodes -------------------------------------------------------------------------------------------------
    def provision(self, node_id: str, now: float, priority: str = "dedicated") -> bool:
        """Start booting a node; False if it exists already (asking twice is harmless, as with a real provider)."""
        if node_id in self._nodes or node_id in self.observation.nodes:
            return False
        self._nodes[node_id] = _LiveNode(requested_at=now, priority=priority)
        self.observation.nodes[node_id] = ObservedNode(NodeStatus.BOOTING)
        self.ledger.provisions += 1
        self.ledger.peak_nodes = max(self.ledger.peak_nodes, len(self._nodes))
        return True

    def mark_ready(self, node_id: str) -> bool:
        node = self._nodes.get(node_id)
        if node is None or node.ready:
            return False
        node.ready = True
        self.observation.nodes[node_id] = ObservedNode(NodeStatus.READY, private_ip="10.0.0.4")
        return True

    def priority_of(self, node_id: str) -> str | None:
        node = self._nodes.get(node_id)
        return None if node is None else node.priority

    def preempt(self, node_id: str, now: float) -> bool:
        """Take a ready low-priority node away: the bill stops, its run dies (all of the run's nodes), reconcile
        sees Preempted."""
        node = self._nodes.get(node_id)
        if node is None or not node.ready or node.priority == "dedicated":
            return False
        self._stop_paying(node_id, now)
        self.observation.nodes[node_id] = ObservedNode(NodeStatus.PREEMPTED, reason="preempted by the provider")
        self.ledger.preemptions += 1
        run = self._run_of_node.get(node_id)
        if run is not None:
            self._end_run(run, now, interrupted=True)
        return True

    def release(self, node_id: str, now: float) -> None:
        if node_id in self._nodes:
            self._stop_paying(node_id, now)
            self.ledger.releases += 1
        self.observation.nodes.pop(node_id, None)

    def _stop_paying(self, node_id: str, now: float) -> None:
        node = self._nodes.pop(node_id)
        self.ledger.node_seconds += now - node.requested_at
        if node.priority == "dedicated":
            self.ledger.dedicated_node_seconds += now - node.requested_at

    def bill_until(self, now: float) -> None:
        """At the end of a run that stopped early: charge the nodes still held up to ``now``."""
        for node_id in list(self._nodes):
            self._stop_paying(node_id, now)

    # --- runs --------------------------------------------------------------------------------------------------
    def start_run(self, key: RunKey, node_ids: tuple[str, ...], now: float,
                  checkpoint_interval_seconds: int | None = None) -> bool:
        if key in self._runs or key in self.observation.runs:
            return False
        self._runs[key] = _LiveRun(node_ids=node_ids, started_at=now,
                                   checkpoint_interval_seconds=checkpoint_interval_seconds)
        for node_id in node_ids:
            self._run_of_node[node_id] = key
        self.observation.runs[key] = ObservedRun(RunStatus.RUNNING)
        return True

    def finish_run(self, key: RunKey, now: float, exit_code: int = 0) -> bool:
        if key not in self._runs:
            return False  # killed by a preemption or stopped before its end
        self._end_run(key, now, interrupted=False)
        self.observation.runs[key] = ObservedRun(RunStatus.FINISHED, exit_code)
        return True

    def stop_run(self, key: RunKey, now: float) -> None:
        if key in self._runs:
            self._end_run(key, now, interrupted=False)

    def _end_run(self, key: RunKey, now: float, *, interrupted: bool) -> None:
        run = self._runs.pop(key)
        work = len(run.node_ids) * (now - run.started_at)
        self.ledger.busy_intervals.append((run.started_at, now, len(run.node_ids)))
        self.ledger.busy_node_seconds += work
        if interrupted:
            saved = checkpointed_seconds(now - run.started_at, run.checkpoint_interval_seconds)
            self.saved_seconds[key[0]] = self.saved_seconds.get(key[0], 0.0) + saved
            self.ledger.lost_node_seconds += work - len(run.node_ids) * saved
            self.ledger.interrupted_runs += 1
        for node_id in run.node_ids:
            if self._run_of_node.get(node_id) == key:
                del self._run_of_node[node_id]
