"""What each event costs in store calls, on the benches' embedded runtime (SQLite, real handlers, instant runs):
events that change no node count leave the quota ledger alone, those that do start from the copy this process kept
(``RecentLedgers``), and a job's finish neither reads back the document
this process wrote when it started the job nor writes it apart from its cluster (one round trip for both).
Counted by the benches' Store wrapper; not timed."""

from __future__ import annotations

from pathlib import Path

from bench.embedded_runtime import WORKSPACE, EmbeddedRuntime, start_runtime
from bench.store_counter import WRITES, StoreCounter
from bench.store_ops import exercise
from bench.workload_mix import cluster_names, run_waves
from shared.domain.job import JobState
from shared.domain.quota_ledger import QuotaLedger
from shared.domain.vm_sizes import normalize_location
from shared.handlers.sweep import sweep


def calls(counter: StoreCounter, context: str, operation: str) -> int:
    tallies = counter.by_context(f"computeplane.{context}")
    return sum(t.calls for (op, _), t in tallies.items() if op == operation)


def test_the_ledger_is_read_only_when_a_node_count_changes_and_finishes_reuse_the_job_written(
        tmp_path: Path) -> None:
    runtime = start_runtime(tmp_path)
    stats = exercise(runtime, clusters=3, waves=4)
    handled = {k.removeprefix("computeplane."): v for k, v in stats.handled.items()}
    assert handled["job.finished"] == 12 and stats.failures == 0

    counter = runtime.counter
    assert calls(counter, "job.finished", "get_quota_ledger") == 0
    assert calls(counter, "job.finished", "get_job") == 0
    # One write per finish: the job's outcome and its cluster, in one round trip.
    writes = {op: t for (op, kind), t in counter.by_context("computeplane.job.finished").items() if kind in WRITES}
    assert list(writes) == ["replace_cluster_with_jobs"]
    assert (writes["replace_cluster_with_jobs"].calls, writes["replace_cluster_with_jobs"].documents) == (12, 24)
    # Scale-ups (submits) and node counts changed on a node's readiness start from the ledger this process
    # read once and kept since: no other read. A cluster's first scale-up books its node's cores, on that copy's
    # etag; with quota far from its limits, a scale-down leaves them booked (one write, its cluster's), so the
    # cluster's next scale-ups find them still held by the booking it names, and book nothing.
    assert calls(counter, "job.submit", "get_quota_ledger") + calls(counter, "node.ready", "get_quota_ledger") <= 1
    assert calls(counter, "job.submit", "save_quota_ledger") == 3
    # A wave's scale request and its node's readiness arrive in one batch of the cluster's session: one look for
    # both (the request is coalesced), which places the job on the node, written Running with its cluster.
    writes = {op: t.calls for (op, kind), t in counter.by_context("computeplane.node.ready").items() if kind in WRITES}
    assert writes == {"replace_cluster_with_jobs": 12}
    assert calls(counter, "scale.request", "get_cluster") == 3  # only the release checks after the last wave

    jobs = runtime.deps.store.list_jobs(WORKSPACE)
    assert len(jobs) == 12 and {j.state for j in jobs} == {JobState.COMPLETED}
    clusters = runtime.deps.store.list_clusters(WORKSPACE)
    assert all(not c.nodes for c in clusters)
    assert booked_vcpus(runtime) == 3 * 2  # the last wave's node of each cluster (2 vCPUs), not given back yet
    assert all(c.quota_settle_by is not None and c.next_reconcile_at == c.quota_settle_by for c in clusters)
    sweep(runtime.deps, horizon=runtime.deps.policy.resync_interval)  # the timer's resync, when they are due
    assert booked_vcpus(runtime) == 0  # every core booked was given back, and nothing is left due
    assert all(c.quota_settle_by is None and c.next_reconcile_at is None and not c.quota_booked
               for c in runtime.deps.store.list_clusters(WORKSPACE))

    run_waves(runtime, cluster_names(3), 1)  # given back: the next scale-up of each cluster books again
    assert calls(counter, "job.submit", "save_quota_ledger") == 3 + 3
    assert booked_vcpus(runtime) == 3 * 2


def booked_vcpus(runtime: EmbeddedRuntime) -> int:
    ledger = runtime.deps.store.get_quota_ledger(normalize_location("eastus")) or QuotaLedger(region="eastus")
    return sum(a.vcpus for a in ledger.allocations.values())



def test_a_job_is_written_with_the_cluster_that_queues_or_finishes_it_and_its_submit_reads_no_job(
        tmp_path: Path) -> None:
    """A job's waiting reason, its start and its outcome go in the same round trip as the cluster decision that set
    them; the submit's handler starts from the document the HTTP side of the same process created, and the start
    of its run from the document its placement wrote."""
    runtime = start_runtime(tmp_path)
    stats = exercise(runtime, clusters=3, waves=4)
    assert stats.failures == 0
    counter = runtime.counter
    # The jobs start on their nodes' readiness (the wave's scale request, in the same batch, is coalesced into that
    # look): Running with the cluster.
    starts = counter.by_context("computeplane.node.ready")[("replace_cluster_with_jobs", "replace")]
    assert (starts.calls, starts.documents) == (12, 24)
    assert calls(counter, "node.ready", "get_job") == 0
    for event in ("job.submit", "node.ready", "scale.request", "job.finished"):
        writes = {op for (op, kind), t in counter.by_context(f"computeplane.{event}").items()
                  if kind in WRITES and t.calls}
        assert "replace_job" not in writes, (event, writes)  # never a job written apart from its cluster
    assert calls(counter, "job.submit", "get_job") == 0
    submit_batches = counter.by_context("computeplane.job.submit")[("replace_cluster_with_jobs", "replace")]
    assert (submit_batches.calls, submit_batches.documents) == (12, 24)  # each submit: the job queued, its cluster
    jobs = runtime.deps.store.list_jobs(WORKSPACE)
    assert len(jobs) == 12
    for job in jobs:  # shown Running on its node, then Completed
        assert [h.state for h in job.history][-2:] == [JobState.RUNNING, JobState.COMPLETED], job.history
        assert job.started_at is not None and len(job.nodes) == 1
