"""Workloads the fault tests replay, each a list of steps on a ``World``: send some events, let time pass."""

from __future__ import annotations

from collections.abc import Callable

from tests.reliability.world import World

Step = Callable[[World], None]
PERIOD = 60.0  # one reconcile period: each step is given this long to settle


def _clusters(world: World) -> None:
    world.create("alpha", max_nodes=2)
    world.create("beta", max_nodes=3, min_nodes=1, idle=300)
    world.create("gamma", max_nodes=1)


def _submits(world: World) -> None:
    for i in range(4):
        world.submit("alpha", f"a{i}", seconds=5 + i)
    for i in range(3):
        world.submit("beta", f"b{i}", seconds=3, exit_code=1 if i == 1 else 0, max_retries=0)
    world.submit("beta", "b-long", seconds=None)  # runs until it is canceled
    world.submit("gamma", "g-long", seconds=None)  # runs until its cluster is deleted


def _cancel_and_update(world: World) -> None:
    world.cancel("beta", "b-long")
    world.update("alpha", "update-alpha-1", min_nodes=1)
    world.submit("alpha", "a-late", seconds=2)


def _scale_down_and_delete(world: World) -> None:
    world.update("beta", "update-beta-1", min_nodes=0, idle_seconds_before_scaledown=30)
    world.delete("gamma")


BUSY_DAY: list[Step] = [_clusters, _submits, _cancel_and_update, _scale_down_and_delete]
"""Three clusters, ten jobs (one fails, one is canceled while it runs, one ends with its cluster), scale settings
changed, idle nodes released, a busy cluster deleted."""


def play(world: World, steps: list[Step], period: float = PERIOD, tail: float = 900.0) -> None:
    """Each step, then one reconcile period; then ``tail`` seconds for idle nodes to go."""
    for step in steps:
        step(world)
        world.settle(period)
    world.settle(tail)
