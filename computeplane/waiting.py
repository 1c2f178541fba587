"""Waiting for a cluster or a job, with a progress callback and a timeout (as the v1 SDK's wait_for_completion).

The callback gets every body read (one a poll), so a caller can show each change as it happens.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from computeplane.errors import NotFoundError, OperationFailed, WaitTimeout

if TYPE_CHECKING:
    from computeplane.client import ComputePlaneClient

ProgressCallback = Callable[[dict[str, Any]], None]
OutputCallback = Callable[[int, str], None]  # (attempt, text added to its log)

DEFAULT_WAIT_TIMEOUT_SECONDS = 25 * 60.0  # the SDK's timeout_in_minutes=25
DEFAULT_POLL_SECONDS = 0.5
CLUSTER_FAILED_STATES = frozenset({"Failed", "Canceled"})
CLUSTER_SETTLED_STATES = frozenset({"Succeeded", "Updating"})  # where AmlCompute reports a status
JOB_FAILED_STATES = frozenset({"Failed", "Canceled"})
JOB_TERMINAL_STATES = JOB_FAILED_STATES | {"Completed"}


def cluster_min_node_count(cluster: dict[str, Any], min_node_count: int | None = None) -> int:
    """The node count a wait asks for: the one given, else the cluster's ``min_nodes`` (as AmlCompute)."""
    if min_node_count is not None:
        return min_node_count
    return int((cluster.get("scale_settings") or {}).get("min_nodes") or 0)


def ready_node_count(cluster: dict[str, Any]) -> int:
    """Nodes that can take work now (idle or running); booting, leaving or lost nodes do not count."""
    counts = cluster.get("node_state_counts")
    if not isinstance(counts, dict):
        return int(cluster.get("current_node_count") or 0)
    return int(counts.get("idle") or 0) + int(counts.get("running") or 0)


def cluster_is_ready(cluster: dict[str, Any], min_node_count: int | None = None) -> bool:
    """Provisioned, with at least ``min_node_count`` (default: min_nodes) nodes ready."""
    return (cluster.get("provisioning_state") in CLUSTER_SETTLED_STATES
            and ready_node_count(cluster) >= cluster_min_node_count(cluster, min_node_count))


def wait_for_cluster(client: ComputePlaneClient, name: str, *, min_node_count: int | None = None,
                     timeout: float = DEFAULT_WAIT_TIMEOUT_SECONDS, poll_interval: float = DEFAULT_POLL_SECONDS,
                     on_progress: ProgressCallback | None = None, raise_on_error: bool = True) -> dict[str, Any]:
    """Poll until the cluster is provisioned with at least ``min_node_count`` nodes (default: its min_nodes).

    Stops early, as AmlCompute does, on Failed/Canceled or when the cluster reports errors before it is ready:
    raises OperationFailed then (or returns the body when ``raise_on_error`` is False). Raises WaitTimeout.
    """
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while True:
        last = client.get_cluster(name)
        if on_progress:
            on_progress(last)
        if cluster_is_ready(last, min_node_count):
            return last
        failure = _cluster_failure(last)
        if failure:
            if raise_on_error:
                raise OperationFailed(failure[0], failure[1], last)
            return last
        _sleep_or_time_out(deadline, poll_interval, f"cluster '{name}' to be ready", timeout, last)


def wait_for_cluster_deletion(client: ComputePlaneClient, name: str, *,
                              timeout: float = DEFAULT_WAIT_TIMEOUT_SECONDS,
                              poll_interval: float = DEFAULT_POLL_SECONDS,
                              on_progress: ProgressCallback | None = None) -> None:
    """Poll until the cluster is gone (GET answers 404)."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while True:
        try:
            last = client.get_cluster(name)
        except NotFoundError:
            return
        if on_progress:
            on_progress(last)
        _sleep_or_time_out(deadline, poll_interval, f"cluster '{name}' to be deleted", timeout, last)


def wait_for_job(client: ComputePlaneClient, job_id: str, *, timeout: float = DEFAULT_WAIT_TIMEOUT_SECONDS,
                 poll_interval: float = DEFAULT_POLL_SECONDS, on_progress: ProgressCallback | None = None,
                 on_output: OutputCallback | None = None, first_attempt: int = 1,
                 raise_on_error: bool = True) -> dict[str, Any]:
    """Poll until the job is Completed, Failed or Canceled; raise OperationFailed for the last two (unless
    ``raise_on_error`` is False) and WaitTimeout when ``timeout`` passes first.

    With ``on_output``, the job's log is followed: each poll passes the text added since the last one, attempt by
    attempt from ``first_attempt`` (a retried job starts a new log), and the last text is read after the job ends.
    """
    deadline = time.monotonic() + timeout
    cursor = _LogCursor(attempt=max(first_attempt, 1))
    while True:
        job = client.get_job(job_id)
        if on_progress:
            on_progress(job)
        if on_output:
            cursor.read_new_output(client, job_id, latest_attempt=int(job.get("attempts") or 0), emit=on_output)
        state = job.get("state")
        if state in JOB_TERMINAL_STATES:
            if state in JOB_FAILED_STATES and raise_on_error:
                reason = f": {job['reason']}" if job.get("reason") else ""
                raise OperationFailed(f"Job{state}", f"job '{job_id}' {str(state).lower()}{reason}", job)
            return job
        _sleep_or_time_out(deadline, poll_interval, f"job '{job_id}' to finish", timeout, job)


@dataclass
class _LogCursor:
    """Where a follower is in a job's logs: which attempt, and how much of each node's log was passed on.

    A job on several nodes has one log per node, served one after the other under ``===== node-N =====`` lines;
    each grows on its own, so an offset into the whole text would cut into the middle of another node's lines."""

    attempt: int
    offsets: dict[str, int] = field(default_factory=dict)  # node ("" for a single node's log) -> characters passed on
    section: str | None = None  # the node whose output was passed on last

    def read_new_output(self, client: ComputePlaneClient, job_id: str, latest_attempt: int,
                        emit: OutputCallback) -> None:
        while True:
            sections = log_sections(str(client.job_logs(job_id, attempt=self.attempt).get("logs") or ""))
            if "" in self.offsets and "" not in sections and sections:  # a second node's log appeared
                self.offsets[next(iter(sections))] = self.offsets.pop("")
                self.section = next(iter(sections))
            for node, text in sections.items():
                passed = self.offsets.get(node, 0)
                if len(text) > passed:
                    header = f"===== {node} =====\n" if node and node != self.section else ""
                    emit(self.attempt, header + text[passed:])
                    self.offsets[node], self.section = len(text), node
            if self.attempt >= latest_attempt:
                return
            self.attempt, self.offsets, self.section = self.attempt + 1, {}, None


_NODE_HEADER = re.compile(r"^===== (\S+) =====\n", re.MULTILINE)


def log_sections(logs: str) -> dict[str, str]:
    """A job's log as {node: its output}, in the order served; a single node's log (no header) as {"": logs}."""
    heads = list(_NODE_HEADER.finditer(logs))
    if not heads or heads[0].start() != 0:
        return {"": logs}
    ends = [head.start() for head in heads[1:]] + [len(logs)]
    return {head.group(1): logs[head.end():end] for head, end in zip(heads, ends, strict=True)}


def _cluster_failure(cluster: dict[str, Any]) -> tuple[str, str] | None:
    name, state = cluster.get("name"), cluster.get("provisioning_state")
    errors = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in cluster.get("errors") or [])
    if state in CLUSTER_FAILED_STATES:
        return f"Cluster{state}", f"cluster '{name}' is {state}" + (f": {errors}" if errors else "")
    if errors:
        return "ClusterErrors", f"cluster '{name}' reported errors: {errors}"
    return None


def _sleep_or_time_out(deadline: float, poll_interval: float, what: str, timeout: float,
                       last: dict[str, Any] | None) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise WaitTimeout(what, timeout, last)
    time.sleep(min(poll_interval, remaining))
