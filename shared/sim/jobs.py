"""What the simulator runs: jobs with a submit time, a duration and a node count, gathered in a workload."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SimJob:
    job_id: str
    submit_seconds: float  # from the start of the workload
    duration_seconds: float  # of one attempt; a preempted attempt restarts from the beginning
    node_count: int


@dataclass(frozen=True)
class Workload:
    name: str
    jobs: tuple[SimJob, ...]  # in submit order
    notes: tuple[str, ...] = ()  # how the workload was built: sources, caps, rows left out and why

    @property
    def node_seconds(self) -> float:
        return sum(j.node_count * j.duration_seconds for j in self.jobs)

    def with_note(self, note: str) -> Workload:
        return replace(self, notes=(*self.notes, note))


def make_workload(name: str, jobs: list[SimJob], notes: list[str] | None = None) -> Workload:
    """Jobs sorted by submit time (then id), times rounded to microseconds as the domain's datetimes are."""
    rounded = [replace(j, submit_seconds=round(j.submit_seconds, 6), duration_seconds=round(j.duration_seconds, 6))
               for j in jobs]
    rounded.sort(key=lambda j: (j.submit_seconds, j.job_id))
    return Workload(name=name, jobs=tuple(rounded), notes=tuple(notes or ()))


def cap_node_counts(workload: Workload, max_nodes: int) -> Workload:
    """Jobs wider than the cluster would be rejected at submit; the simulator narrows them to max_nodes instead."""
    wide = sum(1 for j in workload.jobs if j.node_count > max_nodes)
    if not wide:
        return workload
    jobs = tuple(replace(j, node_count=max_nodes) if j.node_count > max_nodes else j for j in workload.jobs)
    return replace(workload, jobs=jobs).with_note(f"{wide} job(s) wider than max_nodes={max_nodes} capped to it")
