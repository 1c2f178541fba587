"""Local nodes: virtual machines that boot after a delay and run jobs as real subprocesses.

State lives in SQLite (``provider.db``) so every worker process sees the same nodes and runs. A node is ready when
its boot delay has passed (a scheduled ``node.ready`` event tells the cluster); a run is one process per node, in
its own working directory (outside the data directory), with only the environment it is given, in the job sandbox
when this machine allows it (shared/adapters/job_sandbox.py: the data directory hidden, other processes' /proc
entries out of reach). Processes die with the control plane that started them (PR_SET_PDEATHSIG), so a crash leaves
no orphan: the run shows as lost and the job is requeued.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random

from computeplane.snapshot_archive import SnapshotRejected, unpack_archive
from shared.adapters.job_sandbox import JobSandbox, JobSandboxUnavailable, choose_sandbox
from shared.adapters.sqlite_connections import ConnectionPerThread
from shared.config import JobSandboxMode
from shared.domain.cluster import Cluster, JobPhase
from shared.domain.events import JOB_FINISHED, NODE_PREEMPTED, NODE_READY, CloudEvent, new_event
from shared.domain.identity import LOCAL_RESOURCE_GROUP
from shared.domain.observation import (
    LockLevel,
    NodeStatus,
    Observation,
    ObservedNode,
    ObservedRun,
    ResourceLock,
    RunStatus,
)
from shared.domain.utc import format_utc
from shared.ports import Clock, RunRequest, SnapshotStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    node_id TEXT PRIMARY KEY, workspace TEXT NOT NULL, cluster TEXT NOT NULL, created_at TEXT NOT NULL,
    ready_at TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'ok', reason TEXT, checked_at TEXT, priority TEXT);
CREATE TABLE IF NOT EXISTS locks (
    name TEXT PRIMARY KEY, level TEXT NOT NULL, scope TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    job_id TEXT NOT NULL, attempt INTEGER NOT NULL, node_ids TEXT NOT NULL, owner TEXT NOT NULL,
    processes TEXT, started_at TEXT NOT NULL, exit_code INTEGER, finished_at TEXT, PRIMARY KEY (job_id, attempt));
"""

Publish = Callable[[CloudEvent, datetime | None], None]
_PREEMPTIBLE = "(priority IS NULL OR priority='lowpriority')"  # dedicated nodes are never preempted
KILL_GRACE_SECONDS = 5.0


class LocalNodeProvider:
    def __init__(self, data_dir: Path, runs_dir: Path, clock: Clock, publish: Publish, boot_delay: timedelta,
                 fail_provisioning: bool = False, resource_group: str = LOCAL_RESOURCE_GROUP,
                 preemption_rate_per_node_hour: float = 0.0, seed: int | None = None,
                 job_sandbox: JobSandboxMode = "auto", snapshots: SnapshotStore | None = None) -> None:
        """``runs_dir`` holds the runs' working directories and must lie outside ``data_dir``, which the job
        sandbox hides. ``preemption_rate_per_node_hour`` makes low-priority nodes disappear at random, as Azure may
        (the preemption traces in shared/data show 0.3-0.7 losses per running hour for spot GPUs)."""
        if runs_dir.resolve().is_relative_to(data_dir.resolve()):
            raise ValueError(f"the runs directory {runs_dir} must be outside the data directory {data_dir}")
        self.resource_group = resource_group
        self._preemption_rate = preemption_rate_per_node_hour
        self._random = random.Random(seed)
        self._data_dir, self._runs_dir = data_dir, runs_dir
        self._sandbox_mode = job_sandbox
        self._snapshots = snapshots
        self._sandbox: JobSandbox | None = None
        self._sandbox_chosen = False
        self._sandbox_lock = threading.Lock()
        self._path = data_dir / "provider.db"
        self._clock, self._publish = clock, publish
        self._boot_delay, self._fail_provisioning = boot_delay, fail_provisioning
        self._conn = ConnectionPerThread(self._path)
        self._conn().executescript(SCHEMA)
        columns = {row[1] for row in self._conn().execute("PRAGMA table_info(nodes)")}
        for column in ("checked_at", "priority"):  # data dirs of an older version
            if column not in columns:
                self._conn().execute(f"ALTER TABLE nodes ADD COLUMN {column} TEXT")
        self._children: dict[tuple[str, int], list[subprocess.Popen[bytes]]] = {}
        self._children_lock = threading.Lock()
        self._shutting_down = threading.Event()

    # --- nodes -------------------------------------------------------------------------------------------------
    def provision(self, workspace: str, cluster: str, node_id: str, priority: str | None = None) -> datetime | None:
        """``priority`` is recorded: only low-priority nodes (or nodes of an unknown priority, from an older data
        directory) are ever preempted."""
        now = self._clock.now()
        ready_at = now + self._boot_delay
        status = "failed" if self._fail_provisioning else "ok"
        inserted = self._conn().execute(
            "INSERT OR IGNORE INTO nodes (node_id, workspace, cluster, created_at, ready_at, status, reason, "
            "priority) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (node_id, workspace, cluster, format_utc(now), format_utc(ready_at), status,
             "local provider is set to fail provisioning" if self._fail_provisioning else None,
             priority)).rowcount
        if inserted and not self._fail_provisioning:
            self._publish(new_event(NODE_READY, workspace, cluster, {"node_id": node_id},
                                    event_id=f"node-ready-{node_id}"), ready_at)
        return ready_at

    def release(self, node_id: str) -> None:
        self._conn().execute("DELETE FROM nodes WHERE node_id=?", (node_id,))

    def preempt(self, node_id: str) -> bool:
        """Take a node away as Azure does with low-priority capacity: its runs die, the cluster is told."""
        row = self._conn().execute(f"SELECT workspace, cluster FROM nodes WHERE node_id=? AND status='ok' AND "
                                   f"{_PREEMPTIBLE}", (node_id,)).fetchone()
        if row is None:
            return False
        self._conn().execute("UPDATE nodes SET status='preempted', reason='preempted by the provider' "
                             "WHERE node_id=?", (node_id,))
        for job_id, attempt, node_ids in self._conn().execute(
                "SELECT job_id, attempt, node_ids FROM runs WHERE exit_code IS NULL").fetchall():
            if node_id in json.loads(node_ids):
                self.stop_run(job_id, attempt)
        self._publish(new_event(NODE_PREEMPTED, row[0], row[1], {"node_id": node_id},
                                event_id=f"node-preempted-{node_id}"), None)
        return True

    # --- runs --------------------------------------------------------------------------------------------------
    def job_sandbox(self) -> JobSandbox | None:
        """The sandbox runs start in, or None. Chosen on first use (the local host asks at start), since probing
        starts a process: a container that never runs a job never probes. Raises JobSandboxUnavailable when the
        sandbox is required and cannot work here."""
        with self._sandbox_lock:
            if not self._sandbox_chosen:
                self._sandbox = choose_sandbox(self._sandbox_mode, self._data_dir)
                self._sandbox_chosen = True
            return self._sandbox

    def start_run(self, node_ids: Sequence[str], run: RunRequest) -> None:
        claimed = self._conn().execute(
            "INSERT OR IGNORE INTO runs (job_id, attempt, node_ids, owner, started_at) VALUES (?, ?, ?, ?, ?)",
            (run.job_id, run.attempt, json.dumps(list(node_ids)), _OWNER,
             format_utc(self._clock.now()))).rowcount
        if not claimed:
            return  # started before: starting again would run the job twice
        # One thread per run spawns and waits: PR_SET_PDEATHSIG fires when the *thread* that forked exits, so the
        # processes must belong to a thread that lives exactly as long as they do. It runs in a copy of the
        # caller's context: the job-finished event it publishes carries on the trace of the handler that started
        # the run (as a node's readiness carries the trace that asked for it), so the trace sampled at the submit
        # is kept or dropped to the job's end.
        threading.Thread(target=contextvars.copy_context().run, args=(self._run, run, len(node_ids)), daemon=True,
                         name=f"run-{run.job_id}-{run.attempt}").start()

    def _run(self, run: RunRequest, node_count: int) -> None:
        if self._shutting_down.is_set():
            return  # claimed but never started: after the restart it shows as lost and is requeued
        code = self._code_archive(run)
        processes = [self._spawn(run, rank, node_count, code) for rank in range(node_count)]
        with self._children_lock:
            self._children[(run.job_id, run.attempt)] = [p for p in processes if p is not None]
        self._conn().execute("UPDATE runs SET processes=? WHERE job_id=? AND attempt=?",
                             (json.dumps([_identity_of(p) for p in processes if p is not None]), run.job_id,
                              run.attempt))
        self._wait_for_run(run, processes)

    def _code_archive(self, run: RunRequest) -> bytes | str | None:
        """The job's code snapshot (read once for all its nodes), the reason it is missing, or None (no code)."""
        if run.code is None:
            return None
        archive = self._snapshots.get(run.workspace, run.code) if self._snapshots is not None else None
        return archive if archive is not None else f"code snapshot {run.code} not found in this workspace"

    def _spawn(self, run: RunRequest, rank: int, node_count: int,
               code: bytes | str | None = None) -> subprocess.Popen[bytes] | None:
        self._runs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # logs may hold what jobs print
        workdir = self.run_dir(run.job_id, run.attempt) / f"node-{rank}"
        workdir.mkdir(parents=True, exist_ok=True)
        problem = code if isinstance(code, str) else None
        if isinstance(code, bytes):
            try:
                unpack_archive(code, workdir)  # checked again here: an archive is never trusted
            except SnapshotRejected as exc:
                problem = f"cannot unpack code snapshot {run.code}: {exc}"
        (workdir / "tmp").mkdir(parents=True, exist_ok=True)
        checkpoints = self.checkpoint_dir(run.job_id)
        checkpoints.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = base_environment(workdir) | run.environment | {
            "COMPUTEPLANE_NODE_RANK": str(rank), "COMPUTEPLANE_NODE_COUNT": str(node_count),
            "COMPUTEPLANE_CHECKPOINT_DIR": str(checkpoints)}
        with open(workdir / "output.log", "ab") as log:
            if problem is not None:
                log.write(f"computeplane: {problem}\n".encode())
                return None
            # Entering the sandbox in the child fails now and then when many runs start at once (unshare says
            # EINVAL; seen with four workers in one process on a loaded machine): the child wrote why to the log,
            # and starting it again succeeds. A command that cannot be found (OSError) is not tried again.
            starting = Retrying(retry=retry_if_exception_type(subprocess.SubprocessError), stop=stop_after_attempt(3),
                                wait=wait_random(0.05, 0.3), reraise=True)
            def start() -> subprocess.Popen[bytes]:
                return subprocess.Popen(list(run.command), cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=_before_exec(self.job_sandbox()))

            try:
                return starting(start)
            except (OSError, subprocess.SubprocessError, JobSandboxUnavailable) as exc:
                # A sandbox that fails in the child has written its reason to this log already.
                log.write(f"computeplane: cannot start {run.command[0]!r}: {exc}\n".encode())
                return None

    def _wait_for_run(self, run: RunRequest, processes: list[subprocess.Popen[bytes] | None]) -> None:
        codes = [127 if p is None else p.wait() for p in processes]
        if self._shutting_down.is_set():
            return  # killed by our own shutdown: no exit code, so the run shows as lost and is requeued
        exit_code = next((c for c in codes if c != 0), 0)
        with self._children_lock:
            self._children.pop((run.job_id, run.attempt), None)
        self._conn().execute("UPDATE runs SET exit_code=?, finished_at=? WHERE job_id=? AND attempt=? "
                             "AND exit_code IS NULL",
                             (exit_code, format_utc(self._clock.now()), run.job_id, run.attempt))
        self._publish(new_event(JOB_FINISHED, run.workspace, run.cluster,
                                {"job_id": run.job_id, "attempt": run.attempt, "exit_code": exit_code},
                                event_id=f"job-finished-{run.job_id}-{run.attempt}"), None)

    def stop_run(self, job_id: str, attempt: int) -> None:
        # Stopped before it started (a cancel between the save that placed it and its start, by another worker): the
        # attempt is recorded as ended, so the start that comes after finds it taken and runs nothing. Only an
        # attempt no saved decision runs any more is stopped, so no later start of it is lost.
        now = format_utc(self._clock.now())
        self._conn().execute(
            "INSERT OR IGNORE INTO runs (job_id, attempt, node_ids, owner, started_at, exit_code, finished_at) "
            "VALUES (?, ?, '[]', ?, ?, ?, ?)", (job_id, attempt, _OWNER, now, -signal.SIGTERM, now))
        row = self._conn().execute("SELECT processes FROM runs WHERE job_id=? AND attempt=?",
                                   (job_id, attempt)).fetchone()
        for pid, started in json.loads(row[0]) if row and row[0] else []:
            if same_process(pid, started):
                _signal_group(pid, signal.SIGTERM)
                killer = threading.Timer(KILL_GRACE_SECONDS, _signal_group, args=(pid, signal.SIGKILL))
                killer.daemon = True  # never keeps the control plane from exiting
                killer.start()

    def begin_shutdown(self) -> None:
        """From now on a run that ends was ended by our shutdown: it records no exit code (it is requeued)."""
        self._shutting_down.set()

    def stop_all(self) -> None:
        """On shutdown: end every run this process started (they are requeued when the control plane returns)."""
        self._shutting_down.set()
        with self._children_lock:
            processes = [p for group in self._children.values() for p in group]
        for p in processes:
            _signal_group(p.pid, signal.SIGTERM)
        for p in processes:
            try:
                p.wait(timeout=KILL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(p.pid, signal.SIGKILL)

    def _preempt_at_random(self, node_ids: list[str]) -> None:
        """Each ready node is lost with probability 1 - exp(-rate * hours since it was last looked at)."""
        now = self._clock.now()
        for node_id, ready_at, checked_at in self._select_in(
                f"SELECT node_id, ready_at, checked_at FROM nodes WHERE status='ok' AND {_PREEMPTIBLE} AND node_id IN",
                node_ids):
            since = datetime.fromisoformat(checked_at or ready_at)
            hours = max((now - since).total_seconds(), 0.0) / 3600
            if since > now or hours == 0:
                continue
            self._conn().execute("UPDATE nodes SET checked_at=? WHERE node_id=?", (format_utc(now), node_id))
            if self._random.random() < 1 - math.exp(-self._preemption_rate * hours):
                self.preempt(node_id)

    # --- resource locks (what Azure users put on resource groups; simulated here) ----------------------------
    def add_lock(self, name: str, level: LockLevel) -> ResourceLock:
        self._conn().execute("INSERT OR REPLACE INTO locks (name, level, scope, created_at) VALUES (?, ?, ?, ?)",
                             (name, level.value, self._scope(), format_utc(self._clock.now())))
        return ResourceLock(name, level, self._scope())

    def remove_lock(self, name: str) -> bool:
        return bool(self._conn().execute("DELETE FROM locks WHERE name=?", (name,)).rowcount)

    def locks(self) -> list[ResourceLock]:
        return [ResourceLock(n, LockLevel(level), scope) for n, level, scope in self._conn().execute(
            "SELECT name, level, scope FROM locks ORDER BY created_at")]

    def _scope(self) -> str:
        return f"resource group '{self.resource_group}'"

    # --- observation -------------------------------------------------------------------------------------------
    def observe(self, cluster: Cluster) -> Observation:
        if self._preemption_rate > 0 and cluster.spec.vm_priority == "lowpriority":
            self._preempt_at_random([n.node_id for n in cluster.nodes])
        now = format_utc(self._clock.now())
        observation = Observation()
        ids = [n.node_id for n in cluster.nodes]
        for node_id, ready_at, status, reason in self._select_in(
                "SELECT node_id, ready_at, status, reason FROM nodes WHERE node_id IN", ids):
            if status == "preempted":
                observation.nodes[node_id] = ObservedNode(NodeStatus.PREEMPTED, reason)
            elif status == "failed":
                observation.nodes[node_id] = ObservedNode(NodeStatus.FAILED, reason)
            elif ready_at <= now:
                observation.nodes[node_id] = ObservedNode(NodeStatus.READY, private_ip="127.0.0.1")
            else:
                observation.nodes[node_id] = ObservedNode(NodeStatus.BOOTING)
        locks = self.locks()
        if locks:  # the strictest lock decides
            observation.lock = max(locks, key=lambda lock: lock.level is LockLevel.READ_ONLY)
        node_ids = {n.node_id for n in cluster.nodes}
        for job_id, attempt, run_nodes, owner, processes in self._conn().execute(
                "SELECT job_id, attempt, node_ids, owner, processes FROM runs WHERE exit_code IS NULL").fetchall():
            on_our_nodes = node_ids & set(json.loads(run_nodes))
            if on_our_nodes and _run_status((owner, processes, None)).status is RunStatus.RUNNING:
                observation.unfinished_runs[(job_id, attempt)] = frozenset(on_our_nodes)
        running = [(j.job_id, j.attempt) for j in cluster.jobs if j.phase is JobPhase.RUNNING]
        for job_id, attempt in running:
            row = self._conn().execute("SELECT owner, processes, exit_code FROM runs WHERE job_id=? AND attempt=?",
                                       (job_id, attempt)).fetchone()
            observation.runs[(job_id, attempt)] = _run_status(row)
        return observation

    def _select_in(self, sql: str, ids: list[str]) -> list[tuple[Any, ...]]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return list(self._conn().execute(f"{sql} ({marks})", ids))

    # --- logs --------------------------------------------------------------------------------------------------
    def run_dir(self, job_id: str, attempt: int) -> Path:
        return self._runs_dir / job_id / f"attempt-{attempt}"

    def checkpoint_dir(self, job_id: str) -> Path:
        """Beside the job's attempt directories, shared by all of them: where an attempt resumes from."""
        return self._runs_dir / job_id / "checkpoints"

    def read_logs(self, job_id: str, attempt: int) -> str | None:
        logs = sorted(self.run_dir(job_id, attempt).glob("node-*/output.log"))
        if not logs:
            return None
        if len(logs) == 1:
            return logs[0].read_text(errors="replace")
        return "".join(f"===== {p.parent.name} =====\n{p.read_text(errors='replace')}" for p in logs)


def base_environment(workdir: Path) -> dict[str, str]:
    """A clean environment: nothing of the control plane's own (keys, connection strings) reaches a job.
    The interpreter's directory comes first on PATH so ``python`` is the one ComputePlane runs with."""
    path = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    return {"PATH": path, "HOME": str(workdir), "TMPDIR": str(workdir / "tmp"), "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "PYTHONUNBUFFERED": "1"}


def _run_status(row: tuple[str, str | None, int | None] | None) -> ObservedRun:
    if row is None:
        return ObservedRun(RunStatus.NOT_STARTED)
    owner, processes, exit_code = row
    if exit_code is not None:
        return ObservedRun(RunStatus.FINISHED, exit_code)
    if any(same_process(pid, started) for pid, started in json.loads(processes or "[]")):
        return ObservedRun(RunStatus.RUNNING)
    pid, _, started = owner.partition(":")
    if same_process(int(pid), started):
        return ObservedRun(RunStatus.RUNNING)  # its owner is still spawning it, or about to record the exit code
    return ObservedRun(RunStatus.LOST)


_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _before_exec(sandbox: JobSandbox | None) -> Callable[[], None]:
    """What the child runs between fork and exec. The parent-death signal comes last: entering the sandbox changes
    the child's credentials, which clears it."""
    if sandbox is None:
        return _die_with_parent

    def enter_sandbox_then_die_with_parent() -> None:
        sandbox.enter()
        _die_with_parent()

    return enter_sandbox_then_die_with_parent


def _identity_of(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    return process.pid, _start_time(process.pid) or ""


def _start_time(pid: int) -> str | None:
    """The process start time from /proc, so a recycled pid is not mistaken for our process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def same_process(pid: int, started: str) -> bool:
    """Whether ``pid`` is still the process that started at ``started`` (and not a zombie)."""
    current = _start_time(pid)
    return current is not None and current == started and not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


_OWNER = f"{os.getpid()}:{_start_time(os.getpid())}"
