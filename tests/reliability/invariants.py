"""The promises ComputePlane keeps whatever happens, checked against the store and what the provider really runs.

``check_invariants`` returns a list of broken promises (empty when all hold), each a sentence naming the job, node
or cluster. ``settled=True`` adds the promises that hold once every message is handled and the timer has run.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from shared.adapters.local_provider import same_process
from shared.domain.autoscale import ACTIVE_NODE_STATES
from shared.domain.cluster import Cluster, JobPhase, NodeState
from shared.domain.errors import DomainError
from shared.domain.job import Job, JobState
from shared.domain.quota_ledger import QuotaLedger, ledger_keys
from shared.domain.vm_sizes import load_catalogue, normalize_location
from shared.ports import Store

WAITING_STATES = (JobState.QUEUED, JobState.PREPARING)


class ProviderView(Protocol):
    """What the node provider really holds and runs, as the invariants read it."""

    violations: list[str]

    def live_node_owners(self) -> dict[str, tuple[str, str]]: ...
    def unfinished_attempts(self) -> dict[str, list[int]]: ...
    def busy_nodes(self) -> dict[str, str]: ...


@dataclass
class NodeHistory:
    """The nodes seen so far per cluster: a node that appears while the cluster is above max_nodes is a breach;
    nodes that were there before max_nodes was lowered may stay until they are idle long enough."""

    seen: dict[tuple[str, str], set[str]] = field(default_factory=dict)


def check_invariants(store: Store, provider: ProviderView, workspace: str, *, settled: bool = False,
                     history: NodeHistory | None = None) -> list[str]:
    clusters = store.list_clusters(workspace)
    jobs = store.list_jobs(workspace)
    broken: list[str] = list(provider.violations)
    broken += _job_promises(clusters, jobs, settled)
    for cluster in clusters:
        broken += _placement_promises(cluster)
        broken += _node_ceiling(cluster, history)
    broken += _provider_promises(clusters, provider, workspace, settled)
    broken += _quota_promises(store, clusters)
    return broken


def check_scaled_down(store: Store, provider: ProviderView, workspace: str) -> list[str]:
    """After every job ended and the idle time passed: each cluster holds exactly min_nodes idle nodes."""
    broken: list[str] = []
    owners = provider.live_node_owners()
    for cluster in store.list_clusters(workspace):
        held = [n for n, owner in owners.items() if owner == (workspace, cluster.name)]
        idle = cluster.nodes_in(NodeState.IDLE)
        if cluster.jobs:
            broken.append(f"cluster {cluster.name} still holds jobs {[j.job_id for j in cluster.jobs]}")
        if len(cluster.nodes) != cluster.spec.min_nodes or len(idle) != len(cluster.nodes):
            broken.append(f"cluster {cluster.name} has nodes {cluster.node_state_counts()} after the idle time; "
                          f"min_nodes is {cluster.spec.min_nodes}")
        if len(held) != cluster.spec.min_nodes:
            broken.append(f"the provider holds {len(held)} nodes of {cluster.name}; min_nodes is "
                          f"{cluster.spec.min_nodes}")
    return broken


# --- jobs ----------------------------------------------------------------------------------------------------------
def _job_promises(clusters: list[Cluster], jobs: list[Job], settled: bool) -> list[str]:
    broken: list[str] = []
    holders: dict[str, list[str]] = {}
    for cluster in clusters:
        counts = Counter(e.job_id for e in cluster.jobs)
        broken += [f"cluster {cluster.name} holds job {j} {n} times" for j, n in counts.items() if n > 1]
        for entry in cluster.jobs:
            holders.setdefault(entry.job_id, []).append(cluster.name)
    by_cluster = {c.name: c for c in clusters}
    for job in jobs:
        where = holders.get(job.id, [])
        if len(where) > 1:
            broken.append(f"job {job.id} is held by clusters {where}")
        if job.state is JobState.FAILED and not job.reason:
            broken.append(f"job {job.id} Failed without a reason")
        if job.state in WAITING_STATES and not job.reason:
            broken.append(f"job {job.id} is {job.state.value} with no reason shown")
        if job.state.is_terminal:
            continue
        if not where and (job.scheduled or settled):
            broken.append(f"job {job.id} is {job.state.value} but no cluster holds it: lost")
        held = by_cluster[where[0]].job(job.id) if settled and where else None
        if held is not None and (job.state.value, job.attempts) != (held.visible_state, held.attempt):
            broken.append(f"job {job.id} shows {job.state.value} attempt {job.attempts}, the cluster says "
                          f"{held.visible_state} attempt {held.attempt}")
    return broken


# --- one cluster document ------------------------------------------------------------------------------------------
def _placement_promises(cluster: Cluster) -> list[str]:
    broken: list[str] = []
    name = cluster.name
    nodes = {n.node_id: n for n in cluster.nodes}
    if len(nodes) != len(cluster.nodes):
        broken.append(f"cluster {name} lists a node twice")
    claimed: dict[str, str] = {}
    for entry in cluster.jobs:
        if entry.phase is not JobPhase.RUNNING:
            continue
        if len(entry.node_ids) != entry.node_count:
            broken.append(f"job {entry.job_id} runs on {len(entry.node_ids)} nodes, needs {entry.node_count}")
        for node_id in entry.node_ids:
            node = nodes.get(node_id)
            if node is None or node.state is not NodeState.RUNNING or node.run_id != entry.job_id:
                broken.append(f"job {entry.job_id} runs on node {node_id}, which is "
                              f"{node.state.value if node else 'missing'} with run {node.run_id if node else None}")
            if node_id in claimed:
                broken.append(f"node {node_id} runs both {claimed[node_id]} and {entry.job_id}")
            claimed[node_id] = entry.job_id
    for node in cluster.nodes:
        if node.state is NodeState.RUNNING and claimed.get(node.node_id) != node.run_id:
            broken.append(f"node {node.node_id} is running {node.run_id}, which the cluster does not run there")
        if node.state is not NodeState.RUNNING and node.run_id is not None:
            broken.append(f"node {node.node_id} is {node.state.value} but still holds run {node.run_id}")
    return broken


def _node_ceiling(cluster: Cluster, history: NodeHistory | None) -> list[str]:
    """Needs the history of every step (a node added while max_nodes was higher may stay after it is lowered);
    without one, the provider's own check at each provision is what holds the promise."""
    if history is None:
        return []
    active = {n.node_id for n in cluster.nodes_in(*ACTIVE_NODE_STATES)}
    limit = cluster.spec.max_nodes
    seen = history.seen.setdefault((cluster.workspace, f"{cluster.name}/{cluster.uid}"), set())
    new = active - seen
    seen |= active
    if new and len(active) > limit:
        return [f"cluster {cluster.name} added nodes {sorted(new)} beyond max_nodes={limit} ({len(active)} active)"]
    return []


# --- the quota ledger ----------------------------------------------------------------------------------------------
def _quota_promises(store: Store, clusters: list[Cluster]) -> list[str]:
    """The region's ledger holds at least the cores of every node a saved cluster lists, per priority: cores are
    booked (or found still booked under the booking the cluster names) before the save that adds nodes, and given
    back only after the save that removes them, so this holds between any two deliveries, whatever crashed. (Only
    where nothing is in flight: the cluster and the ledger are read apart.) The region is the cluster's own
    location, which every cluster created here has; the limits themselves are the quota tests' business."""
    broken: list[str] = []
    ledgers: dict[str, QuotaLedger | None] = {}
    for cluster in clusters:
        region = normalize_location(cluster.spec.location or "eastus")
        try:
            vcpus = load_catalogue().get(cluster.spec.vm_size, region).vcpus
        except DomainError:
            continue  # a size outside the catalogue is not booked
        if region not in ledgers:
            ledgers[region] = store.get_quota_ledger(region)
        ledger = ledgers[region] or QuotaLedger(region=region)
        held = cluster.node_priority_counts()
        for priority, key in ledger_keys(cluster).items():
            need = vcpus * held.get(priority, 0)
            if ledger.held_by(key) < need:
                broken.append(f"the {region} quota ledger holds {ledger.held_by(key)} vCPUs for {key}, whose "
                              f"{priority} nodes need {need}")
    return broken


# --- the provider --------------------------------------------------------------------------------------------------
def _provider_promises(clusters: list[Cluster], provider: ProviderView, workspace: str, settled: bool) -> list[str]:
    broken: list[str] = []
    by_name = {c.name: c for c in clusters}
    for node_id, (ws, name) in provider.live_node_owners().items():
        cluster = by_name.get(name) if ws == workspace else None
        if ws == workspace and (cluster is None or cluster.node(node_id) is None):
            broken.append(f"node {node_id} of {name} is held by the provider but by no cluster: leaked")
    running: dict[str, tuple[int, Cluster]] = {
        e.job_id: (e.attempt, c) for c in clusters for e in c.jobs if e.phase is JobPhase.RUNNING}
    for job_id, attempts in provider.unfinished_attempts().items():
        if len(attempts) > 1:
            broken.append(f"job {job_id} runs {len(attempts)} times at once (attempts {sorted(attempts)})")
        if settled and (job_id not in running or running[job_id][0] not in attempts):
            broken.append(f"job {job_id} attempt(s) {sorted(attempts)} still run, but no cluster runs that attempt")
    if settled:
        for node_id, job_id in provider.busy_nodes().items():
            owner = provider.live_node_owners().get(node_id)
            cluster = by_name.get(owner[1]) if owner and owner[0] == workspace else None
            node = cluster.node(node_id) if cluster else None
            if node is not None and (node.state is not NodeState.RUNNING or node.run_id != job_id):
                broken.append(f"node {node_id} is {node.state.value} in the cluster but still runs job {job_id}")
    return broken


# --- the local provider, read from its database --------------------------------------------------------------------
class LocalProviderView:
    """``ProviderView`` of the real local provider: its ``provider.db`` and the processes in /proc."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / "provider.db"
        self.violations: list[str] = []

    def _rows(self, sql: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(self._path, timeout=30) as conn:
            return list(conn.execute(sql))

    def live_node_owners(self) -> dict[str, tuple[str, str]]:
        return {str(n): (str(w), str(c)) for n, w, c in self._rows("SELECT node_id, workspace, cluster FROM nodes")}

    def _unfinished(self) -> list[tuple[str, int, list[str]]]:
        rows = self._rows("SELECT job_id, attempt, node_ids, processes FROM runs WHERE exit_code IS NULL")
        return [(str(j), int(str(a)), json.loads(str(n))) for j, a, n, p in rows
                if any(same_process(pid, started) for pid, started in json.loads(str(p or "[]")))]

    def unfinished_attempts(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for job_id, attempt, _ in self._unfinished():
            found.setdefault(job_id, []).append(attempt)
        return found

    def busy_nodes(self) -> dict[str, str]:
        return {node_id: job_id for job_id, _, node_ids in self._unfinished() for node_id in node_ids}
