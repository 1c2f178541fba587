"""Handlers on the in-memory store and bus (held to the same contract suites as SQLite, Cosmos DB and the embedded
queue: tests/contract) and the local node provider, with a clock the test moves: events from other systems."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.domain import events as ev
from shared.domain.job import JobState
from shared.handlers.deps import Deps
from shared.handlers.messages import handle_message
from tests.fakes.bus import InMemoryBus
from tests.fakes.deps import handler_deps
from tests.fakes.store import InMemoryStore


@dataclass
class Container:
    deps: Deps
    bus: InMemoryBus


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    with handler_deps(tmp_path, InMemoryStore()) as (deps, bus):
        yield Container(deps, bus)


def deliver(container: Container, event: ev.CloudEvent) -> None:
    handle_message(event.queue, event.id, event.to_json(), container.deps)


def create(container: Container, name: str = "gpu", **spec: object) -> None:
    deliver(container, ev.new_event(ev.CLUSTER_CREATE, "ws", name,
                                    {"name": name, "vm_size": "Standard_NC6s_v3", "max_nodes": 8} | spec,
                                    event_id=f"create-{name}"))


def test_an_external_submit_without_a_job_id_takes_the_event_id_and_is_applied_once(container: Container) -> None:
    create(container)
    submit = ev.new_event(ev.JOB_SUBMIT, "ws", "gpu", {"command": ["true"]}, event_id="from-another-system")
    deliver(container, submit)
    deliver(container, submit)
    job = container.deps.store.get_job("ws", "from-another-system")
    assert job is not None and job.state is JobState.PREPARING
    cluster = container.deps.store.get_cluster("ws", "gpu")
    assert cluster is not None and len(cluster.jobs) == 1 and len(cluster.nodes) == 1


def test_an_external_submit_that_can_never_fit_the_gpu_quota_fails_the_job_with_the_reason(
        container: Container) -> None:
    create(container)  # NCSv3 quota is 12 vCPUs by default: two 6-vCPU nodes at most
    deliver(container, ev.new_event(ev.JOB_SUBMIT, "ws", "gpu", {"job_id": "big", "command": ["true"],
                                                                 "node_count": 4}, event_id="submit-big"))
    job = container.deps.store.get_job("ws", "big")
    assert job is not None and job.state is JobState.FAILED
    assert job.reason is not None and job.reason.startswith("JobNodeCountExceedsCoreQuota")
    cluster = container.deps.store.get_cluster("ws", "gpu")
    assert cluster is not None and cluster.jobs == [] and cluster.nodes == []


def test_a_cancel_that_overtakes_its_submit_wins(container: Container) -> None:
    create(container)
    deliver(container, ev.new_event(ev.JOB_SUBMIT, "ws", "gpu", {"job_id": "j", "command": ["true"]},
                                    event_id="submit-j"))
    deliver(container, ev.new_event(ev.JOB_CANCEL, "ws", "gpu", {"job_id": "j"}, event_id="cancel-j"))
    deliver(container, ev.new_event(ev.JOB_SUBMIT, "ws", "gpu", {"job_id": "j", "command": ["true"]},
                                    event_id="submit-j-again"))  # late duplicate with another id
    job = container.deps.store.get_job("ws", "j")
    cluster = container.deps.store.get_cluster("ws", "gpu")
    assert job is not None and job.state is JobState.CANCELED
    assert cluster is not None and cluster.jobs == []


def test_a_create_event_for_an_existing_cluster_with_another_spec_is_dead_lettered(container: Container) -> None:
    create(container)
    create(container)  # a redelivery of the same event: harmless
    other = ev.new_event(ev.CLUSTER_CREATE, "ws", "gpu", {"name": "gpu", "vm_size": "Standard_NC6s_v3",
                                                          "max_nodes": 3}, event_id="create-gpu-2")
    deliver(container, other)
    [letter] = container.bus.dead_letters()
    assert letter.message_id == "create-gpu-2" and "max_nodes" in letter.reason
    cluster = container.deps.store.get_cluster("ws", "gpu")
    assert cluster is not None and cluster.spec.max_nodes == 8
