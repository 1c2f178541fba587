"""The offline lower bound on node-seconds: job work plus the boots (or warm idle gaps) no schedule can avoid.

Definition. Run every job at its submit time (no queueing) for its duration on ``node_count`` interchangeable nodes;
D(t) is the number of nodes busy at t. A clairvoyant autoscaler knows D in advance, boots each node ``boot`` seconds
before it is needed (a boot is paid node time) and releases it the instant it is no longer needed. Split D into
levels: level k is busy while D(t) >= k. Each time level k rises, its node either kept warm since its last use, paying
the idle gap g, or was released and boots again, paying ``boot``; the cheaper is min(g, boot); the first rise of a
level always pays ``boot``. So

    lower bound = sum over jobs of node_count x duration  +  sum over levels k, over rises of level k, of
                  (boot for the first rise, min(gap since level k was last busy, boot) otherwise)

i.e. job node-seconds plus one boot per job node that cannot reuse a warm node, and the idle gap for one that can.
This is the exact optimum for that schedule: any policy pays at least the node-seconds its ready nodes cover plus a
boot per node started, and counting level by level, every rise of level k needs a node start or a node kept through
the gap. Preemption reruns only add to a policy's cost. It bounds every policy whose jobs are not held back by
max_nodes or quota; when the cluster is full, a queued job can start later on a node freed by another, and a policy
with a short idle timeout can then pay slightly less than this bound (``node-hours / lower bound`` below 1 says so).
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.sim.jobs import SimJob


def lower_bound_node_seconds(jobs: Iterable[SimJob], boot_seconds: float) -> float:
    changes: dict[float, int] = {}
    work = 0.0
    for job in jobs:
        if job.duration_seconds <= 0 or job.node_count <= 0:
            continue
        work += job.node_count * job.duration_seconds
        start, end = job.submit_seconds, job.submit_seconds + job.duration_seconds
        changes[start] = changes.get(start, 0) + job.node_count
        changes[end] = changes.get(end, 0) - job.node_count
    overhead = 0.0
    level_last_busy: list[float | None] = []  # per level: when it last went idle (None: never busy yet)
    busy = 0
    for at in sorted(changes):
        delta = changes[at]
        if delta > 0:
            for level in range(busy, busy + delta):
                if level == len(level_last_busy):
                    level_last_busy.append(None)
                idle_since = level_last_busy[level]
                overhead += boot_seconds if idle_since is None else min(at - idle_since, boot_seconds)
        elif delta < 0:
            for level in range(busy + delta, busy):
                level_last_busy[level] = at
        busy += delta
    return work + overhead
