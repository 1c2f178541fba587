"""A job that fits the cluster is never starved forever: every accepted job ends or waits for something that will
come, and says what."""

from __future__ import annotations

from pathlib import Path

from tests.reliability.world import World


def test_jobs_queued_behind_a_running_gang_run_once_it_ends(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.create("gangs", max_nodes=2, idle=30)
    world.submit("gangs", "pair", seconds=20, node_count=2)
    world.submit("gangs", "single", seconds=3)
    world.settle(120)
    assert {j.state.value for j in world.jobs().values()} == {"Completed"}
    assert world.broken_promises(settled=True) == []


def test_lowering_max_nodes_does_not_starve_the_jobs_that_still_fit(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.create("shrinks", max_nodes=2, idle=30)
    world.settle(5)
    world.submit("shrinks", "long", seconds=None)
    world.settle(5)
    world.submit("shrinks", "pair", seconds=3, node_count=2)
    world.submit("shrinks", "single", seconds=3)
    world.settle(1)
    world.update("shrinks", "shrink", max_nodes=1)
    world.settle(120)  # the second node idles out meanwhile
    world.provider.finish("long")
    world.settle(600)
    jobs = world.jobs()
    assert jobs["single"].state.value == "Completed"
    assert jobs["pair"].state.value == "Failed" and "max_nodes" in (jobs["pair"].reason or "")
