"""The Batch provider's own wake-ups (wakeups.py): when, how often, and one per cluster and interval."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.adapters.azure_batch.wakeups import BatchWakeUps
from shared.domain.cluster import NodeState
from shared.domain.events import CloudEvent
from shared.domain.observation import NodeStatus, Observation, ObservedNode, ObservedRun, RunStatus
from tests.unit.builders import T0, add_job, add_node, at, make_cluster


def wake_ups() -> tuple[BatchWakeUps, list[tuple[CloudEvent, datetime | None]]]:
    sent: list[tuple[CloudEvent, datetime | None]] = []
    return BatchWakeUps(lambda event, when: sent.append((event, when)), timedelta(seconds=10),
                        timedelta(minutes=5)), sent


def test_a_node_asked_for_wakes_its_cluster_at_the_expected_boot_time() -> None:
    subject, sent = wake_ups()
    assert subject.after_provision("ws", "c1", at(3)) == at(303)  # when it is expected ready
    [(event, when)] = sent
    assert when == at(310)  # rounded up to a whole interval
    assert event.type == "computeplane.scale.request" and event.subject.endswith("c1")


def test_a_booting_node_is_polled_only_after_its_expected_boot_and_a_running_task_every_interval() -> None:
    subject, _ = wake_ups()
    cluster = make_cluster()
    booting = add_node(cluster, NodeState.PREPARING)
    booting_seen = Observation(nodes={booting.node_id: ObservedNode(NodeStatus.BOOTING)})
    assert subject.after_observe(cluster, booting_seen, at(60)) == T0 + timedelta(minutes=5)
    assert subject.after_observe(cluster, booting_seen, at(301)) == at(320)  # late: every interval from now on

    idle = make_cluster()
    node = add_node(idle, NodeState.IDLE)
    assert subject.after_observe(idle, Observation(nodes={node.node_id: ObservedNode(NodeStatus.READY)}),
                                 at(60)) is None
    entry = add_job(idle, "j", running_on=[node])
    seen = Observation(nodes={node.node_id: ObservedNode(NodeStatus.READY)},
                       runs={("j", entry.attempt): ObservedRun(RunStatus.RUNNING)})
    assert subject.after_observe(idle, seen, at(61)) == at(80)
    finished = Observation(nodes=seen.nodes, runs={("j", entry.attempt): ObservedRun(RunStatus.FINISHED, 0)})
    assert subject.after_observe(idle, finished, at(62)) is None


def test_observations_in_one_interval_send_the_same_event_id() -> None:
    subject, sent = wake_ups()
    cluster = make_cluster()
    node = add_node(cluster, NodeState.IDLE)
    entry = add_job(cluster, "j", running_on=[node])
    seen = Observation(runs={("j", entry.attempt): ObservedRun(RunStatus.RUNNING)})
    subject.after_observe(cluster, seen, at(61))
    subject.after_observe(cluster, seen, at(64))
    subject.after_start("ws", "c1", at(69))
    assert len({event.id for event, _ in sent}) == 1 and len(sent) == 3  # the broker drops the repeats
