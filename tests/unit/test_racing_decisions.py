"""Two decisions racing on one cluster, interleaved by hand on the real handlers, SQLite store and local provider: the
quota ledger never holds fewer cores for a cluster than the nodes its saved version lists, and a decision made on a
stale version never acts against a newer one.

Each test stops one decision at a chosen store call and runs the other decision to the end right there."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from shared.bootstrap import Container
from shared.domain import events as ev
from shared.domain.cluster import Cluster
from shared.domain.errors import ConcurrencyConflict
from shared.domain.job import Job, JobState
from shared.domain.quota_ledger import QuotaLedger
from shared.handlers.deps import Deps
from shared.handlers.messages import handle_message
from shared.handlers.quota import QuotaBooking, open_booking
from shared.handlers.recent_documents import RecentJobs, RecentLedgers
from shared.handlers.reconcile import reconcile_cluster
from shared.ports import Store
from tests.fakes.clock import FakeClock
from tests.fakes.deps import quota_limited_container

WS, NAME, KEY, REGION = "ws", "cpu", "ws/cpu", "eastus"
VCPUS = 2  # STANDARD_D2_V2


class Interleave:
    """Wraps the store: just before the first call of ``method``, runs ``meanwhile`` (the other decision)."""

    def __init__(self, inner: Store, method: str, meanwhile: Callable[[], object]) -> None:
        self.inner, self.method, self.meanwhile, self.ran = inner, method, meanwhile, False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name != self.method or self.ran:
            return attr

        def call(*args: object, **kwargs: object) -> object:
            if not self.ran:
                self.ran = True
                self.meanwhile()
            return attr(*args, **kwargs)

        return call


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    with quota_limited_container(tmp_path, REGION, regional_vcpus=8) as built:
        yield built


def submit(deps: Deps, job_id: str) -> None:
    event = ev.new_event(ev.JOB_SUBMIT, WS, NAME, {"job_id": job_id, "command": ["true"]}, event_id=f"s-{job_id}")
    handle_message(event.queue, event.id, event.to_json(), deps)


def with_store(deps: Deps, store: object) -> Deps:
    return dataclasses.replace(deps, store=store)  # type: ignore[arg-type]


def two_nodes(container: Container) -> Deps:
    deps = container.deps
    event = ev.new_event(ev.CLUSTER_CREATE, WS, NAME, {"name": NAME, "vm_size": "STANDARD_D2_V2", "max_nodes": 3},
                         event_id="create")
    handle_message(event.queue, event.id, event.to_json(), deps)
    submit(deps, "j1")
    submit(deps, "j2")
    assert held(deps) == 2 * VCPUS == nodes(deps) * VCPUS
    return deps


def ledger(deps: Deps) -> QuotaLedger:
    found = deps.store.get_quota_ledger(REGION)
    assert found is not None
    return found


def held(deps: Deps) -> int:
    return ledger(deps).held_by(KEY)


def nodes(deps: Deps) -> int:
    cluster = deps.store.get_cluster(WS, NAME)
    assert cluster is not None
    return len(cluster.nodes)


def test_an_unchanged_stale_version_does_not_release_cores_booked_before_it_read_the_ledger(
        container: Container) -> None:
    """A reads the cluster (2 nodes); B books a third node and saves; A reads the ledger (B's booking is what A
    sees, so the booking id alone cannot tell), finds nothing to change in its stale version, writes nothing."""
    deps = two_nodes(container)
    racing = with_store(deps, Interleave(deps.store, "get_quota_ledger", lambda: submit(deps, "j3")))
    reconcile_cluster(racing, WS, NAME, settle_quota=True)
    assert nodes(deps) == 3
    assert held(deps) >= 3 * VCPUS


def test_an_unchanged_version_does_not_release_cores_whose_cluster_save_is_still_on_its_way(
        container: Container) -> None:
    """B books a third node; before B saves the cluster, A reads the cluster (2 nodes) and the ledger (B's booking),
    changes nothing, writes nothing; then B's save succeeds (nothing was written in between)."""
    deps = two_nodes(container)
    racing = with_store(deps, Interleave(deps.store, "replace_cluster", lambda: reconcile_cluster(deps, WS, NAME)))
    submit(racing, "j3")
    assert nodes(deps) == 3
    assert held(deps) >= 3 * VCPUS


class LosesClusterWrites:
    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def replace_cluster(self, cluster: Cluster) -> Cluster:
        raise ConcurrencyConflict(f"cluster {cluster.name} changed meanwhile")

    def replace_cluster_with_jobs(self, cluster: Cluster, jobs: Sequence[Job], archive: object = None) -> Cluster:
        return self.replace_cluster(cluster)


def booking(deps: Deps) -> QuotaBooking:
    cluster = deps.store.get_cluster(WS, NAME)
    assert cluster is not None
    opened = open_booking(deps, cluster)
    assert opened is not None
    return opened


def test_a_booking_whose_cluster_save_lost_over_counts_until_a_decision_that_saves_releases_it(
        container: Container) -> None:
    """The decision books a third node, then loses the cluster write (and gives up): the ledger over-counts, the
    safe direction. A decision that writes nothing leaves it; one that saved the cluster brings it back."""
    deps = two_nodes(container)
    with pytest.raises(ConcurrencyConflict):
        submit(with_store(deps, LosesClusterWrites(deps.store)), "j3")
    assert (held(deps), nodes(deps)) == (3 * VCPUS, 2)
    unchanged = booking(deps)
    assert unchanged.over_counts(2)
    unchanged.release_decrease(2, saved=False)
    assert held(deps) == 3 * VCPUS
    unchanged.release_decrease(2, saved=True)
    assert held(deps) == 2 * VCPUS


def test_a_decision_that_took_nodes_away_releases_their_cores(container: Container) -> None:
    deps = two_nodes(container)
    booking(deps).release_decrease(1, saved=True)  # it took a node away, so it wrote the cluster
    assert held(deps) == 1 * VCPUS
    booking(deps).release_decrease(0, saved=True)
    assert ledger(deps).allocations == {}


def test_a_decrease_leaves_a_booking_made_after_it_read_the_ledger(container: Container) -> None:
    deps = two_nodes(container)
    stale = booking(deps)
    submit(deps, "j3")  # booked anew, and saved
    stale.release_decrease(1, saved=True)
    assert held(deps) == 3 * VCPUS == nodes(deps) * VCPUS


class StopsSeen:
    """Wraps the provider: notes every run it is asked to stop."""

    def __init__(self, inner: object) -> None:
        self.inner, self.stopped = inner, list[tuple[str, int]]()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def stop_run(self, job_id: str, attempt: int) -> None:
        self.stopped.append((job_id, attempt))
        self.inner.stop_run(job_id, attempt)  # type: ignore[attr-defined]


def test_a_decision_on_an_unchanged_stale_version_does_not_stop_a_run_started_meanwhile(
        container: Container) -> None:
    """A reads the cluster (its node idle, no job); B places a new job there and starts its run; A observes that run,
    which its version does not know (an orphan), so it stops it, and it changes nothing, so it writes nothing that
    could have told it its version was stale. The job dies with "exited with code -15"."""
    deps = container.deps
    event = ev.new_event(ev.CLUSTER_CREATE, WS, NAME, {"name": NAME, "vm_size": "STANDARD_D2_V2", "max_nodes": 1,
                                                       "min_nodes": 1, "idle_seconds_before_scaledown": 600},
                         event_id="create")
    handle_message(event.queue, event.id, event.to_json(), deps)
    assert isinstance(deps.clock, FakeClock)
    deps.clock.advance(10)
    reconcile_cluster(deps, WS, NAME)  # the node is ready, and idle
    job = ev.new_event(ev.JOB_SUBMIT, WS, NAME, {"job_id": "k", "command": ["sleep", "30"]}, event_id="s-k")
    provider = StopsSeen(deps.provider)
    racing = dataclasses.replace(deps, provider=provider, store=Interleave(
        deps.store, "get_quota_ledger", lambda: handle_message(job.queue, job.id, job.to_json(), deps)))
    reconcile_cluster(racing, WS, NAME, settle_quota=True)
    cluster = deps.store.get_cluster(WS, NAME)
    assert cluster is not None and [j.job_id for j in cluster.jobs] == ["k"]
    assert [j.state for j in deps.store.list_jobs(WS)] == [JobState.RUNNING]
    assert provider.stopped == []


def two_nodes_then_none_left_booked(deps: Deps) -> None:
    """Two nodes held by min_nodes, then none: quota has room (4 of 8 vCPUs free), so their cores stay booked, under
    the booking the cluster names (``Cluster.quota_booked``)."""
    assert isinstance(deps.clock, FakeClock)
    create = ev.new_event(ev.CLUSTER_CREATE, WS, NAME, {"name": NAME, "vm_size": "STANDARD_D2_V2", "min_nodes": 2,
                                                        "max_nodes": 3, "idle_seconds_before_scaledown": 60},
                          event_id="create")
    handle_message(create.queue, create.id, create.to_json(), deps)
    update = ev.new_event(ev.CLUSTER_UPDATE, WS, NAME, {"min_nodes": 0}, event_id="update")
    handle_message(update.queue, update.id, update.to_json(), deps)
    for _ in range(10):  # idle past the deadline, released, and gone
        deps.clock.advance(61)
        reconcile_cluster(deps, WS, NAME)
        if not nodes(deps):
            break
    assert nodes(deps) == 0 and held(deps) == 2 * VCPUS


def test_a_give_back_on_its_way_leaves_the_booking_of_a_growth_decided_after_its_commit(
        container: Container) -> None:
    """The timer's resync saves the cluster (no nodes) and is about to give the 4 vCPUs back; meanwhile two jobs
    grow the cluster to two nodes, which the ledger still holds under the booking the cluster named. The growth
    books anew all the same (the resync's commit dropped that name), so the give-back, when it comes, leaves it."""
    deps = container.deps
    two_nodes_then_none_left_booked(deps)
    racing = with_store(deps, Interleave(deps.store, "save_quota_ledger",
                                         lambda: (submit(deps, "j3"), submit(deps, "j4"))))
    reconcile_cluster(racing, WS, NAME, settle_quota=True)
    assert nodes(deps) == 2
    assert held(deps) >= 2 * VCPUS


def test_a_kept_copy_of_the_ledger_from_before_a_give_back_does_not_pass_for_the_cover(
        container: Container) -> None:
    """This process keeps the ledger as it booked 4 vCPUs. Another process gives them back and grows the cluster by
    one node (2 vCPUs booked anew). Growing to two nodes here must not trust the kept copy's 4: the booking the
    cluster names now is not the one that copy shows."""
    deps = container.deps
    two_nodes_then_none_left_booked(deps)
    other_process = dataclasses.replace(deps, recent_ledgers=RecentLedgers(), recent_jobs=RecentJobs())
    reconcile_cluster(other_process, WS, NAME, settle_quota=True)
    submit(other_process, "j3")
    assert (nodes(deps), held(deps)) == (1, VCPUS)
    kept = deps.recent_ledgers.get(REGION)
    assert kept is not None and kept.held_by(KEY) == 2 * VCPUS  # what this process last saw

    submit(deps, "j4")
    assert nodes(deps) == 2
    assert held(deps) >= 2 * VCPUS


def test_growth_within_the_cores_left_booked_writes_no_ledger(container: Container) -> None:
    deps = container.deps
    two_nodes_then_none_left_booked(deps)
    before = ledger(deps).etag
    submit(deps, "j3")
    submit(deps, "j4")
    assert (nodes(deps), held(deps)) == (2, 2 * VCPUS)
    assert ledger(deps).etag == before


def test_a_growth_decided_on_a_deleted_cluster_does_not_land_on_the_one_created_again(container: Container) -> None:
    """A submit reads the cluster (no nodes, 4 vCPUs left booked under the booking it names) and is about to save a
    node the ledger covers. Meanwhile the cluster is deleted (its cores go back), created again under its name and
    written until it has had as many writes as the one read. The submit's save must fail and be decided again on
    the new cluster, which books its node."""
    deps = container.deps
    two_nodes_then_none_left_booked(deps)
    read = deps.store.get_cluster(WS, NAME)
    assert read is not None

    def delete_and_create_again() -> None:
        for kind, data in ((ev.CLUSTER_DELETE, {}), (ev.CLUSTER_CREATE, {"name": NAME, "vm_size": "STANDARD_D2_V2",
                                                                         "max_nodes": 3})):
            event = ev.new_event(kind, WS, NAME, data, event_id=f"again-{kind}")
            handle_message(event.queue, event.id, event.to_json(), deps)
        for n in range(50):  # a store whose versions restart would reach the version read
            again = deps.store.get_cluster(WS, NAME)
            assert again is not None and again.uid != read.uid
            if again.etag == read.etag:
                break
            update = ev.new_event(ev.CLUSTER_UPDATE, WS, NAME, {"idle_seconds_before_scaledown": 100 + n},
                                  event_id=f"again-update-{n}")
            handle_message(update.queue, update.id, update.to_json(), deps)

    submit(with_store(deps, Interleave(deps.store, "replace_cluster_with_jobs", delete_and_create_again)), "j3")
    cluster = deps.store.get_cluster(WS, NAME)
    assert cluster is not None and cluster.uid != read.uid and nodes(deps) == 1
    assert held(deps) >= VCPUS
