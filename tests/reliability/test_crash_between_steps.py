"""The process killed between any two steps of a handler: just before or just after each write, publish or
provider call of a whole day's work. The next delivery (the message's lock runs out) or the timer's sweep must
converge within one reconcile period, and the day must end as it would have without the crash.

Two windows used to break that promise (a stop decided but not carried out; a run started but not yet said to be
Running); each still has its own test below, and the main test holds every crash point to it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import azure.functions as func
import pytest

from shared.adapters.sqlite_connections import connect
from shared.bootstrap import Container, build
from shared.config import Settings
from shared.domain import events as ev
from shared.domain.events import new_event
from shared.handlers.deps import Deps
from shared.handlers.messages import handle_message
from shared.local.host import LocalFunctionsHost, QueueFunction
from tests.fakes.clock import FakeClock
from tests.reliability.faults import CallLog, Crash, CrashPoint, FaultPlan, FaultyProvider, FaultyStore, is_mutating
from tests.reliability.invariants import LocalProviderView, check_invariants
from tests.reliability.scenarios import BUSY_DAY, play
from tests.reliability.world import RESYNC, World


@dataclass(frozen=True)
class CrashOutcome:
    point: CrashPoint
    handling: str  # the message being handled when the process died, or "sweep"
    problems: list[str]


@dataclass(frozen=True)
class CrashMatrix:
    outcomes: list[CrashOutcome]
    trace: CallLog  # the clean run's calls, to name the windows

    def between_a_stop_decision_and_the_stop(self, o: CrashOutcome) -> bool:
        """A cancel or delete is saved (the cluster forgets the run), the run is not stopped yet."""
        return o.handling.startswith(("cancel-", "delete-")) and (
            (o.point.when, o.point.call) in {("after", "store.replace_cluster"), ("before", "provider.stop_run"),
                                             ("after", "store.replace_cluster_with_jobs"),
                                             ("after", "store.delete_cluster")})

    def between_a_start_and_its_projection(self, o: CrashOutcome) -> bool:
        """A run is started, the job document does not say Running yet."""
        if (o.point.when, o.point.call) == ("after", "provider.start_run"):
            return True
        calls = self.trace.calls
        for i, call in enumerate(calls):
            if call[0] == "provider.start_run":
                following = next((c for c in calls[i + 1:] if is_mutating(c[0])), None)
                if following == (o.point.call, o.point.nth) and o.point.when == "before":
                    return True
        return False


def _crash_run(root: Path, point: CrashPoint, expected: dict[str, object]) -> CrashOutcome:
    world = World(root, plan=FaultPlan(crash_at=point))
    play(world, BUSY_DAY)
    world.settle(RESYNC.total_seconds())  # so that a crash late in the day is also given its period
    if world.plan.crashes_injected != 1:
        return CrashOutcome(point, "", ["the crash point was never reached"])
    problems = [f"one period after the crash: {p}" for p in world.one_period_after_crash or []]
    problems += [f"at the end: {p}" for p in world.broken_promises(settled=True, scaled_down=True)]
    if world.outcome() != expected:
        problems.append(f"the day ended differently:\n  {world.outcome()}\n  expected {expected}")
    return CrashOutcome(point, world.crashed_in or "", problems)


@pytest.fixture(scope="module")
def crash_matrix(tmp_path_factory: pytest.TempPathFactory) -> CrashMatrix:
    root = tmp_path_factory.mktemp("crashes")
    clean = World(root / "clean")
    play(clean, BUSY_DAY)
    points = clean.plan.log.crash_points()
    assert len(points) > 100  # every handler of the day, each mutating call, before and after
    return CrashMatrix([_crash_run(root / f"crash-{n}", p, clean.outcome()) for n, p in enumerate(points)],
                       clean.plan.log)


def _report(outcomes: list[CrashOutcome]) -> str:
    return "\n".join(f"{o.point} (handling {o.handling}): {p}" for o in outcomes for p in o.problems)


def test_a_clean_day_keeps_every_promise_at_every_quiet_point(tmp_path: Path) -> None:
    world = World(tmp_path)
    for step in BUSY_DAY:
        step(world)
        for _ in range(6):
            world.settle(10)
            assert world.broken_promises(settled=True) == []
    world.settle(900)
    assert world.broken_promises(settled=True, scaled_down=True) == []


def test_a_crash_just_before_or_after_any_write_converges_within_one_reconcile_period(
        crash_matrix: CrashMatrix) -> None:
    failed = [o for o in crash_matrix.outcomes if o.problems]
    assert not failed, f"{len(failed)} of {len(crash_matrix.outcomes)} crash points broke a promise:\n" + _report(
        failed)


def test_a_crash_between_saving_a_cancel_or_delete_and_stopping_the_run_still_stops_it(
        crash_matrix: CrashMatrix) -> None:
    window = [o for o in crash_matrix.outcomes if crash_matrix.between_a_stop_decision_and_the_stop(o)]
    assert window, "the day must cancel a running job and delete a busy cluster"
    failed = [o for o in window if o.problems]
    assert not failed, _report(failed)


def test_a_crash_between_starting_a_run_and_saying_so_is_healed_within_one_period(
        crash_matrix: CrashMatrix) -> None:
    window = [o for o in crash_matrix.outcomes if crash_matrix.between_a_start_and_its_projection(o)]
    assert window
    failed = [o for o in window if o.problems]
    assert not failed, _report(failed)


def test_a_busy_cluster_still_heals_a_job_document_left_stale_by_a_crash(tmp_path: Path) -> None:
    world = World(tmp_path, plan=FaultPlan(crash_at=CrashPoint("provider.start_run", 1, "after")))
    world.create("busy", max_nodes=1)
    world.settle(60)
    world.submit("busy", "long", seconds=None)
    for n in range(10):  # a wake-up every 30 s, as a busy cluster's own events would do
        world.settle(30)
        world.send("computeplane.scale.request", "busy", {"reason": "poke"}, f"poke-{n}")
    assert world.plan.crashes_injected == 1
    assert world.jobs()["long"].state.value == "Running"


def test_a_job_whose_submit_is_being_redelivered_says_why_it_waits(tmp_path: Path) -> None:
    world = World(tmp_path, plan=FaultPlan(crash_at=CrashPoint("store.create_job", 1, "after")))
    world.create("waits")
    world.settle(5)
    world.submit("waits", "j", seconds=3)
    world.settle(1)
    assert world.plan.crashes_injected == 1
    job = world.jobs()["j"]
    assert job.state.value == "Queued" and job.reason


# --- the same, with the real pieces: embedded queue, local host, local provider running real processes ------------
def _pump(container: Container, deps: Deps, clock: FakeClock, until: Callable[[], bool], seconds: float) -> int:
    """Deliver through the local host on a fake clock; a Crash leaves the message locked, as a dead process does.
    Real time passes a little between rounds so that job processes can end. Returns the crashes seen."""
    assert container.queue is not None
    host = LocalFunctionsHost(func.FunctionApp(), container.queue)
    functions = [QueueFunction(q, q, _trigger(q, deps)) for q in ev.QUEUE_NAMES]
    crashes = 0
    deadline = time.monotonic() + seconds
    while not until() and time.monotonic() < deadline:
        for fn in functions:
            while (message := container.queue.receive(fn.queue)) is not None:
                try:
                    host.deliver(fn, message)
                except Crash:
                    crashes += 1
        clock.advance(timedelta(seconds=1))
        time.sleep(0.01)
    return crashes


def _trigger(queue: str, deps: Deps) -> Callable[[func.ServiceBusMessage], None]:
    def call(msg: func.ServiceBusMessage) -> None:
        handle_message(queue, msg.message_id or "", msg.get_body(), deps)

    return call


@pytest.mark.parametrize("point", [
    CrashPoint("provider.start_run", 1, "before"),  # the placement is saved, the process never started
    CrashPoint("provider.provision", 1, "before"),  # the scale-up is saved, the node never asked for
    CrashPoint("store.replace_cluster", 1, "before"),  # nothing saved at all
], ids=str)
def test_a_crash_on_the_real_runtime_is_healed_by_the_redelivery(tmp_path: Path, point: CrashPoint) -> None:
    clock = FakeClock()
    container = build(Settings(data_dir=tmp_path, node_boot_seconds=2), clock=clock)
    plan = FaultPlan(crash_at=point)
    deps = dataclasses.replace(container.deps, store=FaultyStore(container.deps.store, plan),
                               provider=FaultyProvider(container.deps.provider, plan))
    assert container.queue is not None
    container.queue.publish(new_event(ev.CLUSTER_CREATE, "ws", "real", {
        "name": "real", "vm_size": "STANDARD_D2_V2", "max_nodes": 1, "idle_seconds_before_scaledown": 60},
        event_id="create-real"))
    container.queue.publish(new_event(ev.JOB_SUBMIT, "ws", "real", {"job_id": "j", "command": ["true"]},
                                      event_id="submit-j"))

    def completed() -> bool:
        job = container.deps.store.get_job("ws", "j")
        return job is not None and job.state.value == "Completed"

    assert _pump(container, deps, clock, completed, seconds=30) == 1
    assert completed()
    view = LocalProviderView(tmp_path)
    assert check_invariants(container.deps.store, view, "ws", settled=True) == []
    with connect(tmp_path / "provider.db") as runs:
        assert runs.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1  # ran once
