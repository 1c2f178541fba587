"""Runs on Azure Batch: one job per cluster (bound to its pool), one task per attempt.

A job on several nodes is a multi-instance task, which Batch starts on all of its nodes or none; its command runs on
the primary node, with ``AZ_BATCH_HOST_LIST`` naming every node (MPI style), as AmlCompute runs distributed jobs. A
one-node task asks for the node ComputePlane chose through ``affinityInfo`` (a hint to Batch, not a promise). The
task's ``displayName`` carries the job id and attempt, so unfinished tasks map back to runs. Every command runs
through the node bootstrap, in the job's unpacked code and with its checkpoint directory (``node_code``).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from shared.adapters.azure_batch.calls import call_azure
from shared.adapters.azure_batch.node_code import task_with_code
from shared.adapters.azure_batch.pools import (
    CLUSTER_KEY,
    DEFAULT_IDENTITY_KEY,
    WORKSPACE_KEY,
    NodeMap,
    pool_id,
    task_id,
)
from shared.domain.cluster import Cluster, JobPhase
from shared.domain.observation import Observation, ObservedRun, RunStatus
from shared.ports import RunRequest

_FINISHED_TASK_STATES = frozenset({"completed"})
COULD_NOT_START = 127  # the exit code a shell gives a command it cannot run, as the local provider does


@dataclass(frozen=True)
class NodeFiles:
    """Where a task's code comes from and whether its pool mounts the checkpoint container (``node_code``)."""

    container_url: str | None  # the snapshot container
    identity: str | None  # the pool's user-assigned identity that fetches the code
    checkpoint_mounted: bool


class BatchRuns:
    def __init__(self, batch_client: Any) -> None:
        self._batch = batch_client
        self._job_of_task: dict[str, str] = {}  # a cache; the jobs' tasks are the truth
        self._cache_lock = threading.Lock()

    def observe(self, cluster: Cluster, pool: str, node_map: NodeMap, observation: Observation) -> None:
        """The cluster's running attempts, and the unfinished tasks on its nodes (for level-triggered stops)."""
        for entry in cluster.jobs:
            if entry.phase is JobPhase.RUNNING:
                observation.runs[(entry.job_id, entry.attempt)] = self._run_status(pool, entry.job_id,
                                                                                   entry.attempt)
        try:
            unfinished = call_azure(lambda: [dict(t) for t in self._batch.list_tasks(
                pool, filter="state ne 'completed'")])
        except ResourceNotFoundError:
            return
        for task in unfinished:
            job_id, attempt = _run_of(task)
            nodes = {node_map.node_of(n) for n in _task_nodes(task)} - {None}
            if job_id is not None and nodes:
                observation.unfinished_runs[(job_id, attempt)] = frozenset(n for n in nodes if n)

    def _run_status(self, job: str, job_id: str, attempt: int) -> ObservedRun:
        try:
            task = dict(call_azure(lambda: self._batch.get_task(job, task_id(job_id, attempt))))
        except ResourceNotFoundError:
            return ObservedRun(RunStatus.NOT_STARTED)
        if str(task.get("state")) not in _FINISHED_TASK_STATES:
            return ObservedRun(RunStatus.RUNNING)
        execution = task.get("executionInfo") or {}
        if execution.get("exitCode") is not None:
            return ObservedRun(RunStatus.FINISHED, int(execution["exitCode"]))
        failure = execution.get("failureInfo") or {}
        if failure and failure.get("code") != "TaskEnded":
            return ObservedRun(RunStatus.FINISHED, COULD_NOT_START)  # e.g. CommandProgramNotFound: the user's error
        return ObservedRun(RunStatus.LOST)  # ended without an exit code: terminated, or its node went away

    def start_run(self, node_ids: Sequence[str], run: RunRequest, node_map: NodeMap, files: NodeFiles) -> None:
        """The attempt as a task of the cluster's job (created on first use); ``node_map`` is the pool's. The
        command runs in the job's unpacked code, with its checkpoint directory (``node_code``)."""
        pool = pool_id(run.workspace, run.cluster)
        with contextlib.suppress(ResourceExistsError):  # one job per cluster, its tasks are the attempts
            call_azure(lambda: self._batch.create_job({
                "id": pool, "poolInfo": {"poolId": pool}, "onAllTasksComplete": "noaction",
                "metadata": [{"name": WORKSPACE_KEY, "value": run.workspace},
                             {"name": CLUSTER_KEY, "value": run.cluster}]}))
        environment = {**run.environment, "COMPUTEPLANE_NODE_COUNT": str(len(node_ids))}
        default_identity = node_map.value(DEFAULT_IDENTITY_KEY)
        if default_identity:
            environment["DEFAULT_IDENTITY_CLIENT_ID"] = default_identity
        task: dict[str, Any] = {
            "id": task_id(run.job_id, run.attempt),
            "displayName": json.dumps({"job_id": run.job_id, "attempt": run.attempt}),
            "environmentSettings": [{"name": k, "value": v} for k, v in sorted(environment.items())],
            "constraints": {"maxTaskRetryCount": 0},
        }
        if len(node_ids) > 1:
            task["multiInstanceSettings"] = {"numberOfInstances": len(node_ids)}
        else:
            batch_node = node_map.batch_node(node_ids[0]) if node_ids else None
            if batch_node:
                task["affinityInfo"] = {"affinityId": f"TVM:{batch_node}"}
        task = task_with_code(task, run.command, workspace=run.workspace, job_id=run.job_id, code=run.code,
                              container_url=files.container_url, identity=files.identity,
                              checkpoint_mounted=files.checkpoint_mounted)
        try:
            call_azure(lambda: self._batch.create_task(pool, task))
        except ResourceExistsError:
            return  # started before: starting again would run the job twice
        with self._cache_lock:
            self._job_of_task[task["id"]] = pool

    def stop_run(self, job_id: str, attempt: int) -> None:
        job = self._find_job_of(task_id(job_id, attempt))
        if job is None:
            return
        try:
            call_azure(lambda: self._batch.terminate_task(job, task_id(job_id, attempt)))
        except (ResourceNotFoundError, ResourceExistsError):
            pass  # gone, or completed already
        except HttpResponseError as error:
            if error.status_code != 409:
                raise

    def read_logs(self, job_id: str, attempt: int) -> str | None:
        task = task_id(job_id, attempt)
        job = self._find_job_of(task)
        if job is None:
            return None
        parts = []
        for name in ("stdout.txt", "stderr.txt"):
            try:
                content = self._download(job, task, name)
            except ResourceNotFoundError:
                continue
            if content:
                parts.append(content.decode(errors="replace"))
        return "".join(parts) if parts else None

    def _download(self, job: str, task: str, name: str) -> bytes:
        return call_azure(lambda: b"".join(self._batch.download_task_file(job, task, name)))

    def _has_task(self, job: str, task: str) -> bool:
        try:
            call_azure(lambda: self._batch.get_task(job, task))
        except ResourceNotFoundError:
            return False
        return True

    def _find_job_of(self, task: str) -> str | None:
        with self._cache_lock:
            cached = self._job_of_task.get(task)
        if cached is not None:
            return cached
        jobs: list[dict[str, Any]] = call_azure(lambda: [dict(j) for j in self._batch.list_jobs()])
        for job in jobs:
            if not str(job["id"]).startswith("cp-") or not self._has_task(str(job["id"]), task):
                continue
            with self._cache_lock:
                self._job_of_task[task] = str(job["id"])
            return str(job["id"])
        return None


def _run_of(task: dict[str, Any]) -> tuple[str | None, int]:
    try:
        names = json.loads(task.get("displayName") or "{}")
        return str(names["job_id"]), int(names["attempt"])
    except (ValueError, KeyError, TypeError):
        return None, 0


def _task_nodes(task: dict[str, Any]) -> Iterable[str]:
    node = (task.get("nodeInfo") or {}).get("nodeId")
    return [node] if node else []
