"""The node provider failing: a provision call that errors, a node reported failed, a node that never becomes ready,
a node lost under a running job. After the boot timeout a node is unusable and replaced, the cluster shows
``NodeProvisioningFailed``, and jobs still end."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.bootstrap import build
from shared.config import Settings
from shared.domain import events as ev
from shared.domain.cluster import NodeState
from shared.domain.events import new_event
from shared.handlers.messages import handle_message
from shared.ports import NodeProvider
from tests.fakes.clock import FakeClock
from tests.reliability.faults import FailingProvider
from tests.reliability.invariants import LocalProviderView, check_invariants
from tests.reliability.world import WORKSPACE, World

BOOT_TIMEOUT = 120.0


def _world(root: Path, **failures: Any) -> tuple[World, list[FailingProvider]]:
    made: list[FailingProvider] = []

    def wrap(provider: NodeProvider) -> NodeProvider:
        made.append(FailingProvider(provider, **failures))
        return made[0]

    return World(root, boot_seconds=5, boot_timeout_seconds=BOOT_TIMEOUT, wrap_provider=wrap), made


def _errors_seen(world: World, name: str, seconds: int) -> set[str]:
    """Settle second by second, collecting every error code the cluster showed meanwhile."""
    seen: set[str] = set()
    for _ in range(seconds):
        world.settle(1)
        cluster = world.store.get_cluster(WORKSPACE, name)
        seen |= {e.code for e in cluster.errors} if cluster else set()
    return seen


def test_a_node_that_never_becomes_ready_is_replaced_after_the_boot_timeout(tmp_path: Path) -> None:
    world, _ = _world(tmp_path, never_ready={1})
    world.create("stuck", max_nodes=1, idle=60)
    world.submit("stuck", "waits", seconds=3)
    world.settle(BOOT_TIMEOUT - 10)
    cluster = world.store.get_cluster(WORKSPACE, "stuck")
    assert cluster is not None and [n.state for n in cluster.nodes] == [NodeState.PREPARING]
    assert world.jobs()["waits"].reason  # Preparing, saying what it waits for
    assert "NodeProvisioningFailed" in _errors_seen(world, "stuck", 20)
    first = cluster.nodes[0].node_id
    assert first not in world.provider.nodes  # the unusable node was released
    world.settle(120)
    assert world.jobs()["waits"].state.value == "Completed"
    world.settle(300)
    assert world.broken_promises(settled=True, scaled_down=True) == []


def test_a_node_the_provider_reports_failed_is_replaced_at_once_and_the_cluster_says_why(tmp_path: Path) -> None:
    world, failing = _world(tmp_path, broken={1})
    world.create("flaky", max_nodes=1, idle=60)
    world.submit("flaky", "j", seconds=3)
    seen = _errors_seen(world, "flaky", 8)
    assert "NodeProvisioningFailed" in seen
    world.settle(60)
    assert world.jobs()["j"].state.value == "Completed"
    assert len(failing[0].node_numbers) == 2  # the failed node and its replacement
    world.settle(300)
    assert world.broken_promises(settled=True, scaled_down=True) == []


def test_a_provision_call_that_errors_is_retried_on_redelivery(tmp_path: Path) -> None:
    world, failing = _world(tmp_path, api_errors_on={1, 2})
    world.create("retries", max_nodes=2, idle=60)
    world.submit("retries", "j", seconds=3)
    world.settle(60)
    assert failing[0].plan.faults_injected == 2 and world.stats.handler_failures >= 2
    assert world.jobs()["j"].state.value == "Completed"
    world.settle(300)
    assert world.broken_promises(settled=True, scaled_down=True) == []


def _every_node_fails(n: int) -> bool:
    return True


def test_when_every_node_fails_the_job_waits_with_a_reason_and_no_node_leaks(tmp_path: Path) -> None:
    world, _ = _world(tmp_path, broken=_every_node_fails)
    world.create("doomed", max_nodes=2, idle=60)
    world.submit("doomed", "j", seconds=3)
    world.settle(90)
    cluster = world.store.get_cluster(WORKSPACE, "doomed")
    assert cluster is not None and [e.code for e in cluster.errors] == ["NodeProvisioningFailed"]
    assert "AllocationFailed" in cluster.errors[0].message
    job = world.jobs()["j"]
    assert job.state.value in ("Queued", "Preparing") and job.reason
    assert len(world.provider.nodes) <= 2
    assert world.broken_promises(settled=True) == []


def test_when_every_node_fails_replacements_are_rate_limited(tmp_path: Path) -> None:
    world, failing = _world(tmp_path, broken=_every_node_fails)
    world.create("doomed", max_nodes=2, idle=60)
    world.submit("doomed", "j", seconds=3)
    world.settle(180)
    assert len(failing[0].node_numbers) <= 12  # one attempt per 15 s at the very most


def test_a_preempted_low_priority_node_requeues_its_job_which_then_completes(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.create("cheap", max_nodes=1, idle=60, priority="lowpriority")
    world.submit("cheap", "j", seconds=30)
    world.settle(10)
    [node] = world.provider.nodes
    assert world.provider.preempt(node)
    world.settle(120)
    job = world.jobs()["j"]
    assert job.state.value == "Completed" and job.attempts == 2
    assert any("Preempted" in (h.reason or "") for h in job.history)
    world.settle(300)
    assert world.broken_promises(settled=True, scaled_down=True) == []


@pytest.mark.parametrize("loss", ["fail_node", "preempt"])
def test_losing_one_node_of_a_two_node_job_stops_the_rank_left_on_the_other(tmp_path: Path, loss: str) -> None:
    world = World(tmp_path)
    world.create("gang", max_nodes=3, idle=60, priority="lowpriority")
    world.submit("gang", "pair", seconds=40, node_count=2)
    world.settle(10)
    running = world.provider.unfinished_runs()
    assert len(running) == 1 and len(running[0].node_ids) == 2
    getattr(world.provider, loss)(running[0].node_ids[0])
    world.settle(120)
    assert world.broken_promises(settled=True) == []


def test_the_local_provider_failing_every_node_shows_on_the_cluster(tmp_path: Path) -> None:
    clock = FakeClock()
    container = build(Settings(data_dir=tmp_path, fail_provisioning=True, boot_timeout_seconds=BOOT_TIMEOUT),
                      clock=clock)
    deps = container.deps
    queue = container.queue
    assert queue is not None
    queue.publish(new_event(ev.CLUSTER_CREATE, WORKSPACE, "broken", {
        "name": "broken", "vm_size": "STANDARD_D2_V2", "max_nodes": 1}, event_id="create-broken"))
    queue.publish(new_event(ev.JOB_SUBMIT, WORKSPACE, "broken", {"job_id": "j", "command": ["true"]},
                            event_id="submit-j"))
    for _ in range(200):
        for name in ev.QUEUE_NAMES:
            while (message := queue.receive(name)) is not None:
                handle_message(name, message.message_id, message.body, deps)
                queue.complete(message)
        clock.advance(timedelta(seconds=1))
    cluster = deps.store.get_cluster(WORKSPACE, "broken")
    assert cluster is not None and [e.code for e in cluster.errors] == ["NodeProvisioningFailed"]
    assert "fail provisioning" in cluster.errors[0].message
    job = deps.store.get_job(WORKSPACE, "j")
    assert job is not None and job.state.value in ("Queued", "Preparing") and job.reason
    assert check_invariants(deps.store, LocalProviderView(tmp_path), WORKSPACE, settled=True) == []
