"""Workloads from trace files: the one module of ``shared.sim`` that reads files.

Formats
- ``philly``: ``philly_runtime.csv`` (one column ``runtime``, seconds), the empirical runtime distribution of
  Microsoft's Philly trace. Jobs are synthesized: Poisson arrivals (850 a day by default), runtimes drawn from the
  file with replacement, node counts from ``PHILLY_NODE_COUNT_PROBABILITIES`` (see ``philly_node_count_mix``).
- ``openb``: ``openb_pod_list_default.csv`` (Alibaba GPU cluster, 2023). One pod is one job: submitted at
  ``creation_time``, running ``scheduled_time``..``deletion_time``; see ``openb_workload`` for the GPU mapping and for
  pods left out (never scheduled, CPU only) or cut short (censored: still running at the trace end).
- ``csv``: any CSV with a header ``submit_time,duration,node_count`` (``node_count`` optional, default 1).
  ``submit_time`` is seconds or an ISO-8601 timestamp (made relative to the earliest); ``duration`` is seconds.

Paths: ``data_dir()`` is ``shared/data`` inside this package (the public traces ship with the repository, cited in
``shared/data/README.md``); every loader also takes an explicit path.
"""

from __future__ import annotations

import csv
import json
import math
import random
from datetime import datetime
from pathlib import Path

from shared.sim.jobs import SimJob, Workload, cap_node_counts, make_workload
from shared.sim.names import WorkloadFormat
from shared.sim.preemption import AvailabilityTrace

DAY = 86400.0
PHILLY_JOBS_PER_DAY = 850
PHILLY_MEAN_NODES = 1.93
PHILLY_NODE_SIZES = (1, 2, 4, 8, 16)
OPENB_TRACE_END = 12902960  # deletion_time of pods still running when the trace was cut
OPENB_CREATION, OPENB_SCHEDULED, OPENB_DELETION = "creation_time", "scheduled_time", "deletion_time"
OPENB_GPUS = "num_gpu"


def data_dir() -> Path:
    """The traces shipped inside the repository: ``shared/data`` (sources in its README)."""
    return Path(__file__).resolve().parents[1] / "data"


def shipped_workload(name: str) -> Path:
    return data_dir() / "workloads" / name


def detect_format(path: Path) -> WorkloadFormat:
    with path.open(newline="", encoding="utf-8") as f:
        header = {h.strip() for h in next(csv.reader(f), [])}
    if header == {"runtime"}:
        return WorkloadFormat.PHILLY
    if {OPENB_CREATION, OPENB_SCHEDULED, OPENB_DELETION, OPENB_GPUS} <= header:
        return WorkloadFormat.OPENB
    return WorkloadFormat.CSV


def load_workload(path: Path, workload_format: WorkloadFormat | None = None, *, max_nodes: int, seed: int = 0,
                  days: float | None = None, start_day: float = 0.0, gpus_per_node: int = 1,
                  jobs_per_day: float = PHILLY_JOBS_PER_DAY) -> Workload:
    """Any supported trace as a workload with node counts capped at ``max_nodes``.

    ``days``: for ``philly`` the length of the synthesized arrival period (default 1 day); for traces the window
    [start_day, start_day + days) of submissions, shifted to start at 0 (default: the whole trace)."""
    kind = workload_format or detect_format(path)
    if kind is WorkloadFormat.PHILLY:
        workload = synthesize_philly(read_runtimes(path), days=1.0 if days is None else days, seed=seed,
                                     jobs_per_day=jobs_per_day)
    elif kind is WorkloadFormat.OPENB:
        workload = openb_workload(path, gpus_per_node=gpus_per_node)
    else:
        workload = csv_workload(path)
    if kind is not WorkloadFormat.PHILLY and (days is not None or start_day):
        workload = window(workload, start_day * DAY, None if days is None else days * DAY)
    return cap_node_counts(workload, max_nodes)


def window(workload: Workload, start: float, length: float | None) -> Workload:
    end = math.inf if length is None else start + length
    kept = [j for j in workload.jobs if start <= j.submit_seconds < end]
    shifted = [SimJob(j.job_id, j.submit_seconds - start, j.duration_seconds, j.node_count) for j in kept]
    note = f"kept the {len(kept)} job(s) submitted in [{start / DAY:g}, {end / DAY:g}) days, shifted to start at 0"
    return make_workload(workload.name, shifted, [*workload.notes, note])


# --- Philly --------------------------------------------------------------------------------------------------------
def read_runtimes(path: Path) -> list[float]:
    with path.open(newline="", encoding="utf-8") as f:
        return [float(row["runtime"]) for row in csv.DictReader(f) if row.get("runtime", "").strip()]


def philly_node_count_mix(mean: float = PHILLY_MEAN_NODES,
                          sizes: tuple[int, ...] = PHILLY_NODE_SIZES) -> tuple[tuple[int, float], ...]:
    """A geometric mix over ``sizes``: P(size_i) proportional to r**i, with r fitted (bisection) so the mean is
    ``mean``. For the Philly figures (mean 1.93 GPUs a job, median 1) r = 0.38: P = 0.62, 0.24, 0.09, 0.03, 0.01
    over 1, 2, 4, 8, 16 nodes, so the median is 1. Larger jobs (the trace's maximum is 128 GPUs) are left out;
    one node stands for one GPU (a 1-GPU VM size)."""
    def mix_mean(r: float) -> float:
        weights = [r ** i for i in range(len(sizes))]
        return sum(s * w for s, w in zip(sizes, weights, strict=True)) / sum(weights)

    low, high = 0.0, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if mix_mean(mid) < mean else (low, mid)
    weights = [low ** i for i in range(len(sizes))]
    total = sum(weights)
    return tuple((s, w / total) for s, w in zip(sizes, weights, strict=True))


def synthesize_philly(runtimes: list[float], *, days: float, seed: int,
                      jobs_per_day: float = PHILLY_JOBS_PER_DAY) -> Workload:
    if not runtimes:
        raise ValueError("the runtime file has no runtimes")
    rng = random.Random(seed)
    mix = philly_node_count_mix()
    sizes, probabilities = [s for s, _ in mix], [p for _, p in mix]
    jobs: list[SimJob] = []
    at = rng.expovariate(jobs_per_day / DAY)
    while at < days * DAY:
        node_count = rng.choices(sizes, probabilities)[0]
        jobs.append(SimJob(f"philly-{len(jobs):06d}", at, rng.choice(runtimes), node_count))
        at += rng.expovariate(jobs_per_day / DAY)
    mix_text = ", ".join(f"{s}: {p:.3f}" for s, p in mix)
    return make_workload("philly", jobs, [
        f"Philly runtimes ({len(runtimes)} samples), Poisson arrivals at {jobs_per_day:g}/day for {days:g} day(s), "
        f"seed {seed}", f"node counts drawn from {{{mix_text}}} (mean {PHILLY_MEAN_NODES}, median 1)"])


# --- openb ---------------------------------------------------------------------------------------------------------
def openb_workload(path: Path, *, gpus_per_node: int) -> Workload:
    """Pods of the openb trace as jobs on nodes of a VM size with ``gpus_per_node`` GPUs.

    - node_count = ceil(num_gpu / gpus_per_node). A pod with a fraction of one GPU (gpu_milli < 1000) takes a whole
      node: AmlCompute never shares a node between jobs, so this pays for GPUs openb's cluster shared.
    - submitted at creation_time; duration = deletion_time - scheduled_time (what the pod ran).
    - censored pods (deletion_time == 12902960, still running when the trace was cut) are kept, truncated at the
      trace end; they are counted in the notes.
    - left out and counted: pods never scheduled (Pending at the end, no scheduled_time) and CPU-only pods
      (num_gpu == 0), which would not run on a GPU cluster.
    """
    if gpus_per_node < 1:
        raise ValueError("openb pods need GPUs: choose a GPU VM size (e.g. Standard_NC6s_v3)")
    jobs: list[SimJob] = []
    never_scheduled = cpu_only = censored = 0
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            gpus = int(row[OPENB_GPUS] or 0)
            if gpus == 0:
                cpu_only += 1
                continue
            if not row[OPENB_SCHEDULED].strip():
                never_scheduled += 1
                continue
            scheduled, deletion = int(row[OPENB_SCHEDULED]), int(row[OPENB_DELETION])
            if deletion >= OPENB_TRACE_END:
                censored += 1
                deletion = OPENB_TRACE_END
            jobs.append(SimJob(row["name"], float(row[OPENB_CREATION]), float(max(deletion - scheduled, 0)),
                               max(math.ceil(gpus / gpus_per_node), 1)))
    return make_workload("openb", jobs, [
        f"openb pods as jobs, {gpus_per_node} GPU(s) a node, fractional-GPU pods take a whole node",
        f"{censored} censored pod(s) still running at the trace end, truncated there",
        f"left out: {never_scheduled} pod(s) never scheduled, {cpu_only} CPU-only pod(s)"])


# --- any CSV -------------------------------------------------------------------------------------------------------
def csv_workload(path: Path) -> Workload:
    submits: list[str] = []
    durations: list[float] = []
    node_counts: list[int] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"submit_time", "duration"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: a job CSV needs the columns submit_time, duration[, node_count]; "
                             f"missing {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            try:
                durations.append(float(row["duration"]))
                node_counts.append(int(row.get("node_count") or 1))
            except ValueError as exc:
                raise ValueError(f"{path}:{line}: {exc}") from None
            submits.append(row["submit_time"].strip())
    seconds = _submit_seconds(submits, path)
    jobs = [SimJob(f"job-{i:06d}", at, duration, nodes)
            for i, (at, duration, nodes) in enumerate(zip(seconds, durations, node_counts, strict=True))]
    return make_workload(path.stem, jobs, [f"{len(jobs)} job(s) from {path.name}"])


def _submit_seconds(texts: list[str], path: Path) -> list[float]:
    """Seconds as given, or ISO-8601 timestamps as seconds after the earliest."""
    try:
        return [float(t) for t in texts]
    except ValueError:
        pass
    try:
        stamps = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in texts]
        origin = min(stamps)
        return [(s - origin).total_seconds() for s in stamps]
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: submit_time must be seconds or ISO-8601 timestamps throughout: {exc}") from None


# --- preemption traces ---------------------------------------------------------------------------------------------
def load_availability_trace(path: Path) -> AvailabilityTrace:
    document = json.loads(path.read_text(encoding="utf-8"))
    return AvailabilityTrace(name=path.stem, gap_seconds=float(document["metadata"]["gap_seconds"]),
                             counts=tuple(int(c) for c in document["data"]))
