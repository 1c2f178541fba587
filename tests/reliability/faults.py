"""Fault-injecting wrappers around the ports. Every fault is planned (which call, which error), never left to timing.

The hostile broker (``DuplicatingBus``: copies, reordering, late scheduled messages) is in ``broker.py``.

One ``FaultPlan`` is shared by the wrappers of a run, so it sees every port call in order: the crash matrix is built
from that trace (``CallLog``), and a ``CrashPoint`` names one call in it ("the 2nd ``store.replace_cluster``, after it
returned").
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, ParamSpec, TypeVar

from shared.domain.cluster import Cluster
from shared.domain.errors import TransientError
from shared.domain.observation import NodeStatus, Observation, ObservedNode, ResourceLock
from shared.ports import EventBus, NodeProvider, Store
from shared.telemetry.log_context import current_log_ids

_P = ParamSpec("_P")
_R = TypeVar("_R")

Phase = Literal["before", "after"]

# Calls that change the world: a crash just before or just after one of them is a distinct point of a handler.
_MUTATING_VERBS = ("create", "replace", "delete", "save", "put", "upsert", "book", "publish", "dead_letter",
                   "provision", "release", "start_run", "stop_run", "preempt")


def is_mutating(call: str) -> bool:
    """``store.replace_cluster`` yes, ``store.get_cluster`` no; ports that grow new writes are covered by their verb."""
    return call.partition(".")[2].startswith(_MUTATING_VERBS)


class Crash(BaseException):
    """The process died at this point: nothing after it ran. A BaseException, so no ``except Exception`` stops it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        # The event being handled when it died (its id is on every log record then), None outside a handler.
        self.event_id = current_log_ids().get("event")


class StoreUnavailable(TransientError):
    """What a store adapter raises for 429 / 503 / a timeout (transient: the message is redelivered)."""


class ProviderUnavailable(TransientError):
    """The node provider's API failed (transient)."""


@dataclass(frozen=True)
class CrashPoint:
    call: str  # "store.replace_cluster", "provider.start_run", "bus.publish", ...
    nth: int = 1  # the n-th call of it in the run (1-based)
    when: Phase = "after"

    def __str__(self) -> str:
        return f"{self.when} {self.call}#{self.nth}"


@dataclass
class CallLog:
    """Every call through the wrappers, in order, with its number among calls of the same name."""

    calls: list[tuple[str, int]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def record(self, name: str) -> int:
        self.counts[name] += 1
        self.calls.append((name, self.counts[name]))
        return self.counts[name]

    def crash_points(self, wanted: Callable[[str], bool] = is_mutating) -> list[CrashPoint]:
        """Every point between two steps: just before and just after each mutating call of the trace."""
        return [CrashPoint(name, nth, when) for name, nth in self.calls if wanted(name)
                for when in ("before", "after")]


class FaultPlan:
    """Decides, at each call through a wrapper, whether it fails: planned failures (``fail_on``), a planned crash
    (``crash_at``, once: the process restarts after it) and random ones (``fail_rate``/``crash_rate``, seeded)."""

    def __init__(self, *, crash_at: CrashPoint | None = None, fail_on: Mapping[str, Iterable[int]] | None = None,
                 error: Callable[[str], Exception] = StoreUnavailable, fail_rate: float = 0.0,
                 crash_rate: float = 0.0, seed: int = 0, fail_calls: Callable[[str], bool] = is_mutating,
                 crash_calls: Callable[[str], bool] = is_mutating,
                 fails_when: Callable[[str], bool] | None = None) -> None:
        self.log = CallLog()
        self.crash_at = crash_at
        self.fail_on = {name: frozenset(ns) for name, ns in (fail_on or {}).items()}
        self.error = error
        self.fail_rate, self.crash_rate = fail_rate, crash_rate
        self.fail_calls, self.crash_calls = fail_calls, crash_calls  # which calls random faults may hit
        self.rng = random.Random(seed)
        self.fails_when = fails_when  # e.g. an outage: every store call while the clock is in a window
        self.enabled = True
        self.faults_injected = 0
        self.crashes_injected = 0

    def before(self, name: str) -> int:
        nth = self.log.record(name)
        if not self.enabled:
            return nth
        self._maybe_crash(name, nth, "before")
        if nth in self.fail_on.get(name, ()) or (self.fails_when is not None and self.fails_when(name)) or (
                self.fail_rate and self.fail_calls(name) and self.rng.random() < self.fail_rate):
            self.faults_injected += 1
            raise self.error(f"injected fault on {name}#{nth} (429/503/timeout)")
        return nth

    def after(self, name: str, nth: int) -> None:
        if self.enabled:
            self._maybe_crash(name, nth, "after")

    def _maybe_crash(self, name: str, nth: int, when: Phase) -> None:
        point = self.crash_at
        planned = point is not None and (point.call, point.nth, point.when) == (name, nth, when)
        chance = self.crash_rate > 0 and self.crash_calls(name) and self.rng.random() < self.crash_rate
        if planned or chance:
            if planned:
                self.crash_at = None  # the process restarts; the same point is not hit again
            self.crashes_injected += 1
            raise Crash(f"process killed {when} {name}#{nth}")

    def call(self, name: str, fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        nth = self.before(name)
        result = fn(*args, **kwargs)
        self.after(name, nth)
        return result


class _Proxy:
    """Calls the port grows later (not listed in a wrapper yet) still go through the plan, under ``port.name``."""

    port = ""

    def __init__(self, wrapped: object, plan: FaultPlan) -> None:
        self._wrapped, self.plan = wrapped, plan

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._wrapped, name)
        if not callable(target):
            return target
        return functools.partial(self.plan.call, f"{self.port}.{name}", target)


# --- the store ----------------------------------------------------------------------------------------------------
class FaultyStore(_Proxy):
    """A Store whose calls go through a FaultPlan (``_Proxy`` forwards every call under ``store.<name>``). The two
    streaming queries are read whole inside the plan, so a fault hits the call, not a later row."""

    port = "store"

    def __init__(self, inner: Store, plan: FaultPlan) -> None:
        super().__init__(inner, plan)
        self.inner = inner

    def due_clusters(self, now: datetime) -> Iterator[tuple[str, str]]:
        return iter(self.plan.call("store.due_clusters", lambda: list(self.inner.due_clusters(now))))

    def unscheduled_jobs(self, submitted_before: datetime) -> Iterator[tuple[str, str]]:
        return iter(self.plan.call("store.unscheduled_jobs",
                                   lambda: list(self.inner.unscheduled_jobs(submitted_before))))


class FlakyStore(FaultyStore):
    """A store that answers 429/503/timeouts (``error``) on the listed calls, e.g. ``{"replace_cluster": [2, 5]}``."""

    def __init__(self, store: Store, fail_on: Mapping[str, Iterable[int]],
                 error: Callable[[str], Exception] = StoreUnavailable) -> None:
        super().__init__(store, FaultPlan(fail_on={f"store.{k}": v for k, v in fail_on.items()}, error=error))


# --- the bus ------------------------------------------------------------------------------------------------------
class FaultyBus(_Proxy):
    port = "bus"

    def __init__(self, inner: EventBus, plan: FaultPlan) -> None:
        super().__init__(inner, plan)
        self.inner = inner

    # publish and dead_letter go through the plan by ``_Proxy``.


# --- the node provider --------------------------------------------------------------------------------------------
class FaultyProvider(_Proxy):
    port = "provider"

    def __init__(self, inner: NodeProvider, plan: FaultPlan) -> None:
        super().__init__(inner, plan)
        self.inner = inner

    # Written out for FailingProvider's super() calls; release, start_run, stop_run, preempt and the locks go
    # through the plan by ``_Proxy``. read_logs and locks skip it: reading never fails in these tests.
    def provision(self, workspace: str, cluster: str, node_id: str, priority: str | None = None) -> datetime | None:
        return self.plan.call("provider.provision", self.inner.provision, workspace, cluster, node_id, priority)

    def observe(self, cluster: Cluster) -> Observation:
        return self.plan.call("provider.observe", self.inner.observe, cluster)

    def read_logs(self, job_id: str, attempt: int) -> str | None:
        return self.inner.read_logs(job_id, attempt)

    def locks(self) -> list[ResourceLock]:
        return self.inner.locks()


class FailingProvider(FaultyProvider):
    """A provider whose nodes go wrong: the n-th provision call raises (the cloud API failed), or the node of the
    n-th distinct provision is reported failed, or it never becomes ready (it boots forever)."""

    def __init__(self, inner: NodeProvider, *, api_errors_on: Iterable[int] = (),
                 broken: Iterable[int] | Callable[[int], bool] = (), never_ready: Iterable[int] = (),
                 reason: str = "AllocationFailed: no capacity for the VM size") -> None:
        super().__init__(inner, FaultPlan(fail_on={"provider.provision": api_errors_on}, error=ProviderUnavailable))
        self._broken = broken if callable(broken) else frozenset(broken).__contains__
        self._never_ready = frozenset(never_ready)
        self.reason = reason
        self.node_numbers: dict[str, int] = {}

    def provision(self, workspace: str, cluster: str, node_id: str, priority: str | None = None) -> datetime | None:
        ready_at = super().provision(workspace, cluster, node_id, priority)
        self.node_numbers.setdefault(node_id, len(self.node_numbers) + 1)
        return ready_at

    def observe(self, cluster: Cluster) -> Observation:
        seen = super().observe(cluster)
        for node_id, number in self.node_numbers.items():
            if node_id not in seen.nodes or seen.nodes[node_id].status is NodeStatus.GONE:
                continue
            if self._broken(number):
                seen.nodes[node_id] = ObservedNode(NodeStatus.FAILED, self.reason)
            elif number in self._never_ready and seen.nodes[node_id].status is NodeStatus.READY:
                seen.nodes[node_id] = ObservedNode(NodeStatus.BOOTING)
        return seen
