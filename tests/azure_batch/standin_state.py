"""The state behind the Azure Batch stand-in: pools that resize over time, nodes that boot, tasks that really run.

Time is the wall clock (``time.monotonic``); ``tick()`` moves everything forward and is called by a background
thread and around every request. Tasks run as real subprocesses on the machine; a node is a record with a state.
What the real service does that this does not is listed in tests/azure_batch/README.md.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


_etags = itertools.count(0x8D9F76BF3F78568)


def new_etag() -> str:
    return f"0x{next(_etags):X}"


@dataclass
class Fault:
    """An answer the stand-in gives instead of the real one, ``times`` times, to requests matching ``method`` and
    the ``path`` regular expression."""

    method: str
    path: str
    status: int
    code: str
    message: str
    times: int = 1
    retry_after: float | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and method == self.method and re.search(self.path, path) is not None


@dataclass
class Node:
    id: str
    dedicated: bool
    ip: str
    allocated_at: float
    allocation_time: str
    state: str = "creating"
    state_time: str = field(default_factory=iso_now)
    task: str | None = None  # "job/task" running here
    leave_at: float | None = None
    total_tasks: int = 0

    def set_state(self, state: str) -> None:
        if state != self.state:
            self.state, self.state_time = state, iso_now()


@dataclass
class Pool:
    name: str
    body: dict[str, Any]  # the management-plane resource as stored (properties, tags, identity)
    etag: str = field(default_factory=new_etag)
    nodes: dict[str, Node] = field(default_factory=dict)
    resizing_until: float | None = None
    resize_errors: list[dict[str, str]] = field(default_factory=list)
    allocation_time: str = field(default_factory=iso_now)
    created: str = field(default_factory=iso_now)

    @property
    def targets(self) -> tuple[int, int]:
        fixed = self.body["properties"].get("scaleSettings", {}).get("fixedScale", {})
        return int(fixed.get("targetDedicatedNodes", 0)), int(fixed.get("targetLowPriorityNodes", 0))

    def live_nodes(self, dedicated: bool) -> list[Node]:
        return [n for n in self.nodes.values() if n.dedicated == dedicated and n.state != "leavingpool"]


@dataclass
class Task:
    job: str
    body: dict[str, Any]
    state: str = "active"
    created: str = field(default_factory=iso_now)
    state_time: str = field(default_factory=iso_now)
    previous_state: str | None = None
    etag: str = field(default_factory=new_etag)
    nodes: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    exit_code: int | None = None
    start_time: str | None = None
    end_time: str | None = None
    failure: dict[str, str] | None = None
    directory: Path | None = None
    requeues: int = 0

    @property
    def id(self) -> str:
        return str(self.body["id"])

    def set_state(self, state: str) -> None:
        self.previous_state, self.state, self.state_time = self.state, state, iso_now()


class BatchWorld:
    """Pools, nodes, jobs and tasks of one Batch account, plus what the tests inject."""

    def __init__(self, work_dir: Path, *, boot_seconds: float = 0.6, resize_seconds: float = 0.3,
                 leave_seconds: float = 0.2) -> None:
        self.lock = threading.RLock()
        self.work_dir = work_dir
        self.boot_seconds, self.resize_seconds, self.leave_seconds = boot_seconds, resize_seconds, leave_seconds
        self.pools: dict[str, Pool] = {}
        self.deleted_pools: list[str] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, Task] = {}  # "job/task"
        self.identities: dict[str, dict[str, Any]] = {}
        self.locks: dict[str, str] = {}  # name -> level
        self.faults: list[Fault] = []
        self.core_quota: dict[str, int] = {"dedicated": 10_000, "lowpriority": 10_000}  # nodes, for resize errors
        self.bearer_tokens: list[tuple[str, str]] = []  # (path, token) of every request
        # Blob Storage as nodes reach it for resource files: (URL, identity resource id or None) -> bytes or None.
        self.blob_reader: Callable[[str, str | None], bytes | None] | None = None
        self._ips = itertools.count(4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="batch-standin")
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self.lock:
            for task in self.tasks.values():
                _kill(task)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.tick()

    # --- test controls ---------------------------------------------------------------------------------------------
    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    return fault
        return None

    def preempt(self, pool: str, node_id: str) -> None:
        """Azure takes a low-priority node back: it goes to ``preempted`` and its task is requeued."""
        with self.lock:
            node = self.pools[pool].nodes[node_id]
            assert not node.dedicated, "only low-priority nodes are preempted"
            if node.task:
                task = self.tasks[node.task]
                _kill(task)
                task.set_state("active")
                task.requeues += 1
                for other in task.nodes:
                    if other in self.pools[pool].nodes:
                        self.pools[pool].nodes[other].task = None
                        if self.pools[pool].nodes[other].state == "running":
                            self.pools[pool].nodes[other].set_state("idle")
                task.nodes, task.process = [], None
            node.task = None
            node.set_state("preempted")

    # --- pools -------------------------------------------------------------------------------------------------------
    def start_resize(self, pool: Pool) -> None:
        pool.resizing_until = time.monotonic() + self.resize_seconds
        pool.resize_errors = []
        pool.allocation_time = iso_now()

    def remove_nodes(self, pool: Pool, node_ids: list[str]) -> None:
        ded, low = pool.targets
        for node_id in node_ids:
            node = pool.nodes[node_id]
            if node.state == "leavingpool":
                continue
            if node.dedicated:
                ded -= 1
            else:
                low -= 1
            node.set_state("leavingpool")
            node.leave_at = time.monotonic() + self.leave_seconds
        fixed = pool.body["properties"].setdefault("scaleSettings", {}).setdefault("fixedScale", {})
        fixed["targetDedicatedNodes"], fixed["targetLowPriorityNodes"] = max(ded, 0), max(low, 0)
        pool.etag = new_etag()
        pool.resizing_until = time.monotonic() + self.leave_seconds

    def tick(self) -> None:
        with self.lock:
            now = time.monotonic()
            for pool in self.pools.values():
                self._tick_pool(pool, now)
            for task in self.tasks.values():
                self._tick_task(task)
            for task in self.tasks.values():
                if task.state == "active":
                    self._schedule(task)

    def _tick_pool(self, pool: Pool, now: float) -> None:
        for node in list(pool.nodes.values()):
            if node.state == "leavingpool" and node.leave_at is not None and now >= node.leave_at \
                    and node.task is None:
                del pool.nodes[node.id]
            elif node.state == "creating" and now >= node.allocated_at + self.boot_seconds / 2:
                node.set_state("starting")
            elif node.state == "starting" and now >= node.allocated_at + self.boot_seconds:
                node.set_state("idle")
        if pool.resizing_until is None or now < pool.resizing_until:
            return
        pool.resizing_until = None
        for dedicated, target in ((True, pool.targets[0]), (False, pool.targets[1])):
            live = pool.live_nodes(dedicated)
            quota = self.core_quota["dedicated" if dedicated else "lowpriority"]
            held = sum(len(p.live_nodes(dedicated)) for p in self.pools.values())
            wanted = target - len(live)
            if wanted > 0:
                allowed = max(min(wanted, quota - held), 0)
                if allowed < wanted:
                    pool.resize_errors = [{
                        "code": "AccountCoreQuotaReached" if dedicated else "AccountLowPriorityCoreQuotaReached",
                        "message": "The specified account has reached VM core quota limit"
                                   if dedicated else "The specified account has reached low priority core quota limit"}]
                for _ in range(allowed):
                    self._add_node(pool, dedicated, now)
            elif wanted < 0:  # Batch chooses: nodes that are not running a task, the newest first
                spare = sorted((n for n in live if n.task is None), key=lambda n: -n.allocated_at)
                for node in spare[:-wanted]:
                    node.set_state("leavingpool")
                    node.leave_at = now + self.leave_seconds

    def _add_node(self, pool: Pool, dedicated: bool, now: float) -> None:
        node_id = f"tvmps_{uuid.uuid4().hex}{uuid.uuid4().hex}_{'d' if dedicated else 'p'}"
        pool.nodes[node_id] = Node(id=node_id, dedicated=dedicated, ip=f"10.0.0.{next(self._ips) % 250 + 4}",
                                   allocated_at=now, allocation_time=iso_now())

    # --- tasks -------------------------------------------------------------------------------------------------------
    def _schedule(self, task: Task) -> None:
        pool = self.pools.get(self.jobs[task.job]["poolInfo"]["poolId"])
        if pool is None:
            return
        idle = [n for n in pool.nodes.values() if n.state == "idle" and n.task is None]
        wanted = int((task.body.get("multiInstanceSettings") or {}).get("numberOfInstances", 1))
        affinity = (task.body.get("affinityInfo") or {}).get("affinityId", "").removeprefix("TVM:")
        idle.sort(key=lambda n: n.id != affinity)
        if len(idle) < wanted:
            return
        chosen = idle[:wanted]
        task.nodes = [n.id for n in chosen]
        for node in chosen:
            node.task = f"{task.job}/{task.id}"
            node.total_tasks += 1
            node.set_state("running")
        task.set_state("running")
        task.start_time, task.exit_code, task.failure = iso_now(), None, None
        environment = {s["name"]: s["value"] for s in task.body.get("environmentSettings") or []}
        environment |= {"PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
                        "AZ_BATCH_TASK_ID": task.id, "AZ_BATCH_JOB_ID": task.job,
                        "AZ_BATCH_HOST_LIST": ",".join(n.ip for n in chosen), "PYTHONUNBUFFERED": "1"}
        multi: dict[str, Any] = task.body.get("multiInstanceSettings") or {}
        node_envs = [self._task_directories(pool, node, task, environment, bool(multi)) for node in chosen]
        task.directory = Path(node_envs[0]["AZ_BATCH_TASK_DIR"])  # the primary's: its stdout.txt and stderr.txt
        with open(task.directory / "stdout.txt", "wb") as out, open(task.directory / "stderr.txt", "wb") as err:
            failure = self._download(pool, task.body.get("resourceFiles") or [],
                                     node_envs[0]["AZ_BATCH_TASK_WORKING_DIR"])
            for node_env in node_envs if multi else ():  # common resource files: every node, in its task directory
                failure = failure or self._download(pool, multi.get("commonResourceFiles") or [],
                                                    node_env["AZ_BATCH_TASK_DIR"])
            if failure is not None:
                err.write(f"{failure['message']}\n".encode())
                self._finish(task, None, failure)
                return
            for node_env in node_envs if multi.get("coordinationCommandLine") else ():
                # Batch runs the coordination command on every node and the command after all of them succeeded.
                done = subprocess.run(shlex.split(multi["coordinationCommandLine"]), env=node_env,
                                      cwd=node_env["AZ_BATCH_TASK_WORKING_DIR"], stdout=out, stderr=err,
                                      stdin=subprocess.DEVNULL, timeout=60, check=False)
                if done.returncode != 0:
                    self._finish(task, done.returncode, None)
                    return
            try:
                task.process = subprocess.Popen(shlex.split(task.body["commandLine"]),
                                                cwd=node_envs[0]["AZ_BATCH_TASK_WORKING_DIR"], env=node_envs[0],
                                                stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                                start_new_session=True)
            except OSError as error:
                err.write(f"{error}\n".encode())
                self._finish(task, None, {"category": "UserError", "code": "CommandProgramNotFound",
                                          "message": str(error)})

    def _task_directories(self, pool: Pool, node: Node, task: Task, environment: dict[str, str],
                          multi_instance: bool) -> dict[str, str]:
        """A node's directories for the task, as Batch lays them out under the node's root: ``tasks/<job>/<task>``
        with ``wd`` in it, ``shared``, and ``fsmounts`` holding the pool's blob mounts. Every node here is this one
        machine, so each gets a root of its own (on Batch ``AZ_BATCH_TASK_SHARED_DIR`` is one path on every node)."""
        root = self.work_dir / "nodes" / node.id
        task_dir = root / "tasks" / task.job / task.id
        (task_dir / "wd").mkdir(parents=True, exist_ok=True)
        mounts = root / "fsmounts"
        mounts.mkdir(parents=True, exist_ok=True)
        for mount in pool.body["properties"].get("mountConfiguration") or []:
            blob = mount.get("azureBlobFileSystemConfiguration") or {}
            container = self.work_dir / "blob-containers" / blob["accountName"] / blob["containerName"]
            container.mkdir(parents=True, exist_ok=True)  # every node mounts the same container
            link = mounts / blob["relativeMountPath"]
            if not link.exists():
                link.symlink_to(container, target_is_directory=True)
        (root / "shared").mkdir(exist_ok=True)
        node_env = {**environment, "AZ_BATCH_NODE_ID": node.id, "AZ_BATCH_NODE_ROOT_DIR": str(root),
                    "AZ_BATCH_NODE_SHARED_DIR": str(root / "shared"), "AZ_BATCH_NODE_MOUNTS_DIR": str(mounts),
                    "AZ_BATCH_TASK_DIR": str(task_dir), "AZ_BATCH_TASK_WORKING_DIR": str(task_dir / "wd")}
        if multi_instance:
            (task_dir / "shared").mkdir(exist_ok=True)
            node_env["AZ_BATCH_TASK_SHARED_DIR"] = str(task_dir / "shared")
        return node_env

    def _download(self, pool: Pool, resource_files: list[dict[str, Any]], directory: str) -> dict[str, str] | None:
        """Fetch a task's resource files into ``directory``, as the node agent does; the failure Batch reports,
        or None. A file fetched with an ``identityReference`` needs that identity on the pool."""
        on_pool = {i.lower() for i in ((pool.body.get("identity") or {}).get("userAssignedIdentities") or {})}
        for resource in resource_files:
            identity = (resource.get("identityReference") or {}).get("resourceId")
            if identity is not None and identity.lower() not in on_pool:
                return {"category": "UserError", "code": "ResourceFileIdentityNotOnPool",
                        "message": f"identity {identity} is not assigned to pool {pool.name}"}
            content = self.blob_reader(resource["httpUrl"], identity) if self.blob_reader else None
            if content is None:
                return {"category": "UserError", "code": "BlobNotFound",
                        "message": f"resource file {resource['httpUrl']} could not be downloaded"}
            target = Path(directory) / resource["filePath"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        return None

    def _tick_task(self, task: Task) -> None:
        if task.state == "running" and task.process is not None and task.process.poll() is not None:
            self._finish(task, task.process.returncode, None)

    def _finish(self, task: Task, exit_code: int | None, failure: dict[str, str] | None) -> None:
        task.exit_code, task.failure, task.end_time = exit_code, failure, iso_now()
        task.set_state("completed")
        pool = self.pools.get(self.jobs[task.job]["poolInfo"]["poolId"])
        for node_id in task.nodes:
            node = pool.nodes.get(node_id) if pool else None
            if node is not None and node.task == f"{task.job}/{task.id}":
                node.task = None
                if node.state == "running":
                    node.set_state("idle")

    def terminate(self, task: Task) -> None:
        if task.state == "completed":
            return
        _kill(task)
        self._finish(task, None, {"category": "UserError", "code": "TaskEnded",
                                  "message": "Task Was Ended by User Request"})


def _kill(task: Task) -> None:
    if task.process is not None and task.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(task.process.pid, signal.SIGKILL)
        task.process.wait(5)
