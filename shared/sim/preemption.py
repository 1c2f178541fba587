"""When a low-priority node is taken away: never, at a rate per node-hour, or replayed from a spot availability trace.

A trace (skypilot-org/spot-traces) is a count of live spot instances sampled every ``gap_seconds``; a drop in the
count is a preemption. Each node replays the trace from its own random phase (seeded), so nodes are preempted
independently at the trace's empirical times; the trace repeats when a node outlives it. Periods when the trace shows
no capacity do not delay provisioning (the simulator models losses, not stock-outs).
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from typing import Protocol


class PreemptionModel(Protocol):
    @property
    def label(self) -> str: ...

    def preemption_after(self, ready_at: float, rng: random.Random) -> float | None:
        """The time a node that became ready at ``ready_at`` is preempted (None: never)."""
        ...


@dataclass(frozen=True)
class NoPreemption:
    label: str = "none"

    def preemption_after(self, ready_at: float, rng: random.Random) -> float | None:
        return None


@dataclass(frozen=True)
class RatePreemption:
    """Memoryless losses: each node is preempted after an exponential time with ``per_node_hour`` losses an hour."""

    per_node_hour: float

    @property
    def label(self) -> str:
        return f"{self.per_node_hour:g} per node-hour"

    def preemption_after(self, ready_at: float, rng: random.Random) -> float | None:
        if self.per_node_hour <= 0:
            return None
        return ready_at + rng.expovariate(self.per_node_hour / 3600.0)


@dataclass(frozen=True)
class AvailabilityTrace:
    name: str
    gap_seconds: float
    counts: tuple[int, ...]

    @property
    def span_seconds(self) -> float:
        return len(self.counts) * self.gap_seconds

    def drop_times(self) -> list[float]:
        """Trace times (from its start) of every tick where the count fell."""
        return [i * self.gap_seconds for i in range(1, len(self.counts)) if self.counts[i] < self.counts[i - 1]]

    def losses_per_available_hour(self) -> float:
        up_hours = sum(1 for c in self.counts if c > 0) * self.gap_seconds / 3600.0
        return len(self.drop_times()) / up_hours if up_hours else 0.0


class TracePreemption:
    """Replays an availability trace: a node is preempted at the first drop after its (random) phase."""

    def __init__(self, trace: AvailabilityTrace) -> None:
        self.trace = trace
        self._drops = trace.drop_times()
        self.label = f"replay of {trace.name} ({trace.losses_per_available_hour():.2f} losses per hour up)"

    def preemption_after(self, ready_at: float, rng: random.Random) -> float | None:
        if not self._drops:
            return None
        span = self.trace.span_seconds
        phase = rng.uniform(0.0, span)
        i = bisect.bisect_right(self._drops, phase)
        next_drop = self._drops[i] if i < len(self._drops) else self._drops[0] + span
        return ready_at + (next_drop - phase)
