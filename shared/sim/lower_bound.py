"""Offline lower bounds on node-seconds: job work plus the boots (or warm idle gaps) no node management can avoid.

The core: given when runs occupy nodes (intervals of (start, end, nodes), nodes interchangeable) and a boot time B
(paid node time before a node is ready), the cheapest way to hold nodes for them. Let D(t) be the nodes busy at t and
split D into levels: level k is busy while D(t) >= k. Each time level k rises, its node was either kept warm since
the level was last busy, paying the idle gap g, or released and booted again, paying B; the cheaper is min(g, B). The
first rise of a level always pays B. So

    bound = busy node-seconds + sum over levels k, over rises of level k, of (B the first time, else min(g, B))

Why no policy pays less for the same runs: it pays for every node from request to release; a node is ready B after
its request, and ready nodes R(t) >= D(t). Count level by level: level k of R covers level k of D and each rise of
R through level k is a node becoming ready (B paid), so level k costs at least the cheapest cover of D's level k,
which is the bridging above.

Two bounds use it:

- ``lower_bound_node_seconds``, for a policy's own runs (every attempt it started, where and when it started them):
  the clairvoyant optimum for the same job start times. No simulated policy can be below its own bound (tested);
  ``node-hours / lower bound`` measures how well a policy manages nodes, its waits are reported beside it.
- ``ideal_node_seconds``, for the workload: every job starting the moment it is submitted (no waits at all, nodes
  booted ahead by a clairvoyant): job node-seconds plus one boot per job node that cannot reuse a warm node, and the
  idle gap for one that can. It is the reference a policy aims at. It is not a strict floor: a job that waited for a
  boot can end just as another arrives and hand it its node (two 1 s jobs 121 s apart with a 120 s boot: the ideal
  pays two boots, idle-timeout 0 pays one), and a full cluster queues jobs the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.sim.jobs import SimJob

BusyInterval = tuple[float, float, int]  # (start, end, nodes)


def lower_bound_node_seconds(intervals: Iterable[BusyInterval], boot_seconds: float) -> float:
    changes: dict[float, int] = {}
    work = 0.0
    for start, end, nodes in intervals:
        if end <= start or nodes <= 0:
            continue
        work += nodes * (end - start)
        changes[start] = changes.get(start, 0) + nodes
        changes[end] = changes.get(end, 0) - nodes
    overhead = 0.0
    level_idle_since: list[float | None] = []  # per level: when it last went idle (None: never busy yet)
    busy = 0
    for at in sorted(changes):
        delta = changes[at]
        if delta > 0:
            for level in range(busy, busy + delta):
                if level == len(level_idle_since):
                    level_idle_since.append(None)
                idle_since = level_idle_since[level]
                overhead += boot_seconds if idle_since is None else min(at - idle_since, boot_seconds)
        elif delta < 0:
            for level in range(busy + delta, busy):
                level_idle_since[level] = at
        busy += delta
    return work + overhead


def ideal_node_seconds(jobs: Iterable[SimJob], boot_seconds: float) -> float:
    return lower_bound_node_seconds(
        ((j.submit_seconds, j.submit_seconds + j.duration_seconds, j.node_count) for j in jobs), boot_seconds)
