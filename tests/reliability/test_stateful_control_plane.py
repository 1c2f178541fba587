"""A stateful property test: random sequences of create / update / delete / submit / cancel / finish / preempt /
node failure / duplicate delivery / time passing, driven through ``handle_message`` with CloudEvents, with every
promise checked after every step, and at the end: every job ends, nodes go back to min_nodes.

The node provider is the in-memory fake (finish and preempt are driven by the machine); the store is the real
SQLite one. Set COMPUTEPLANE_PROPERTY_RANDOM=1 to explore new random sequences instead of the fixed ones.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shared.domain.cluster import NodeState
from tests.reliability.world import WORKSPACE, World

NAMES = ("alpha", "beta", "gamma")
IDLE_MAX = 120


class ControlPlaneMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        logging.disable(logging.WARNING)  # sweeps log what fails on purpose
        self.root = Path(tempfile.mkdtemp(prefix="computeplane-stateful-"))
        self.world = World(self.root)
        self.count = 0
        self.jobs: list[tuple[str, str]] = []  # (cluster, job id)

    def _id(self, kind: str) -> str:
        self.count += 1
        return f"{kind}-{self.count}"

    # --- what users and other systems do -----------------------------------------------------------------------
    @rule(name=st.sampled_from(NAMES), max_nodes=st.integers(1, 3), min_nodes=st.integers(0, 1),
          idle=st.sampled_from([30, IDLE_MAX]), priority=st.sampled_from(["dedicated", "lowpriority"]))
    def create(self, name: str, max_nodes: int, min_nodes: int, idle: int, priority: str) -> None:
        self.world.create(name, max(max_nodes, min_nodes), min_nodes, idle, priority, event_id=self._id("create"))
        self.world.settle(0)

    @rule(name=st.sampled_from(NAMES), min_nodes=st.none() | st.integers(0, 2), max_nodes=st.none() | st.integers(1, 3))
    def update(self, name: str, min_nodes: int | None, max_nodes: int | None) -> None:
        changes = {k: v for k, v in {"min_nodes": min_nodes, "max_nodes": max_nodes}.items() if v is not None}
        self.world.update(name, self._id("update"), **changes)
        self.world.settle(0)

    @rule(name=st.sampled_from(NAMES))
    def delete(self, name: str) -> None:
        self.world.delete(name, event_id=self._id("delete"))
        self.world.settle(0)

    @rule(name=st.sampled_from(NAMES), node_count=st.integers(1, 2), seconds=st.none() | st.sampled_from([3, 20]),
          exit_code=st.sampled_from([0, 0, 1]), max_retries=st.integers(0, 2))
    def submit(self, name: str, node_count: int, seconds: int | None, exit_code: int, max_retries: int) -> None:
        job_id = self._id("job")
        self.world.submit(name, job_id, seconds, exit_code, node_count, max_retries)
        self.jobs.append((name, job_id))
        self.world.settle(0)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        name, job_id = data.draw(st.sampled_from(self.jobs))
        self.world.cancel(name, job_id, event_id=self._id("cancel"))
        self.world.settle(0)

    # --- what the provider does --------------------------------------------------------------------------------
    @precondition(lambda self: self.world.provider.unfinished_runs())
    @rule(data=st.data(), exit_code=st.sampled_from([0, 2]))
    def finish(self, data: st.DataObject, exit_code: int) -> None:
        run = data.draw(st.sampled_from(self.world.provider.unfinished_runs()))
        self.world.provider.finish(run.request.job_id, exit_code)
        self.world.settle(0)

    def _losable_nodes(self) -> list[str]:
        """Any node still there, gang members included (the surviving ranks are stopped, see test_provider_faults)."""
        return sorted(n for n, node in self.world.provider.nodes.items() if not node.lost)

    @precondition(lambda self: self._losable_nodes())
    @rule(data=st.data(), how=st.sampled_from(["preempt", "fail_node"]))
    def lose_a_node(self, data: st.DataObject, how: str) -> None:
        getattr(self.world.provider, how)(data.draw(st.sampled_from(self._losable_nodes())))
        self.world.settle(0)

    # --- what the broker and the clock do ----------------------------------------------------------------------
    def _redeliverable(self) -> list[str]:
        """Any event sent, creates and deletes included (a copy reaching a later incarnation is dropped, see
        test_duplicate_delivery)."""
        return sorted(self.world.sent)

    @precondition(lambda self: self._redeliverable())
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        self.world.redeliver(data.draw(st.sampled_from(self._redeliverable())))
        self.world.settle(0)

    @rule(seconds=st.sampled_from([1, 5, 30, 61, 200]))
    def tick(self, seconds: int) -> None:
        self.world.settle(seconds)

    # --- promises ----------------------------------------------------------------------------------------------
    @invariant()
    def every_promise_holds(self) -> None:
        assert self.world.broken_promises() == []

    def teardown(self) -> None:
        try:
            self._every_job_ends_and_nodes_go_back_to_min_nodes()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            logging.disable(logging.NOTSET)

    def _every_job_ends_and_nodes_go_back_to_min_nodes(self) -> None:
        world = self.world
        for _ in range(20):
            for run in world.provider.unfinished_runs():
                world.provider.finish(run.request.job_id)
            world.settle(61)
        world.settle(IDLE_MAX + 120)
        waiting = [j for j in world.jobs().values() if not j.state.is_terminal]
        blocked = {j.cluster for j in waiting if (c := world.store.get_cluster(WORKSPACE, j.cluster)) is not None
                   and j.spec.node_count > c.spec.max_nodes}
        for job in waiting:  # only a job that can never fit may wait, saying so
            assert job.cluster in blocked, (job.id, job.state, job.reason)
            assert job.state.value == "Queued" and job.reason
        assert world.broken_promises(settled=True) == []
        stuck = {j.cluster for j in waiting}
        for cluster in world.store.list_clusters(WORKSPACE):
            if cluster.name not in stuck:
                assert len(cluster.nodes) == cluster.spec.min_nodes, (cluster.name, cluster.node_state_counts())
                assert all(n.state is NodeState.IDLE for n in cluster.nodes)


ControlPlaneMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=40, deadline=None, derandomize=not os.environ.get(
        "COMPUTEPLANE_PROPERTY_RANDOM"), suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_random_event_sequences_keep_every_promise = ControlPlaneMachine.TestCase
