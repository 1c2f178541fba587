"""A realistic mix of control-plane events: clusters that scale from zero for every job and back (idle timeout 0),
so each job brings a job-submit, a node-ready, a job-finished and a scale request (plus the wake-ups that follow)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace

from bench.embedded_runtime import WORKSPACE, DrainStats, EmbeddedRuntime
from shared.domain.events import SCALE_REQUEST, new_event
from shared.domain.job import JobSpec
from shared.domain.requests import ClusterCreate
from shared.handlers.use_cases import create_cluster, submit_job
from shared.telemetry.state import current

VM_SIZE = "Standard_D2s_v3"


def cluster_names(count: int) -> list[str]:
    return [f"bench{i:04d}" for i in range(count)]  # AmlCompute names: no "-" followed by digits only


def create_clusters(runtime: EmbeddedRuntime, count: int) -> list[str]:
    names = cluster_names(count)
    runtime.counter.context = "http"
    for name in names:
        create_cluster(runtime.deps, WORKSPACE, ClusterCreate(name=name, vm_size=VM_SIZE, max_nodes=4,
                                                              idle_seconds_before_scaledown=0))
    runtime.drain()
    return names


def run_waves(runtime: EmbeddedRuntime, clusters: list[str], waves: int, jobs_per_wave: int = 1) -> DrainStats:
    """``waves`` waves (see ``run_wave``), then the release checks (wake-ups 1 s after a release) drained too."""
    stats = DrainStats()
    for _ in range(waves):
        run_wave(runtime, clusters, stats, jobs_per_wave)
    time.sleep(1.05)
    runtime.drain(stats)
    return stats


def run_wave(runtime: EmbeddedRuntime, clusters: list[str], stats: DrainStats, jobs_per_wave: int = 1) -> None:
    """``jobs_per_wave`` jobs per cluster submitted (the HTTP side: job document + job-submit event) and one scale
    request per cluster, then every message drained through ``handle_messages``. More than one job per wave is a
    backlog: a cluster's submits wait in its session together."""
    runtime.counter.context = "http"
    for name in clusters:
        for _ in range(jobs_per_wave):
            with as_http_request("POST /api/workspaces/{workspace}/clusters/{name}/jobs"):
                job, _ = submit_job(runtime.deps, WORKSPACE, name, JobSpec(command=["true"]))
            runtime.submitted_at[job.id] = time.perf_counter()
        runtime.deps.bus.publish(new_event(SCALE_REQUEST, WORKSPACE, name, {"reason": "bench"},
                                           event_id=f"scale-{uuid.uuid4().hex}"))
    runtime.drain(stats)


@contextmanager
def as_http_request(route: str) -> Iterator[None]:
    """With telemetry on, a submit made in a server span as ``shared.telemetry.http`` makes one for a request: the
    trace starts there (and the sampler decides there), and the job-submit event carries it on. Its cost is the
    HTTP side's, outside what the drain measures."""
    instruments = current()
    if instruments is None:
        yield
        return
    with instruments.tracer.start_as_current_span(route, kind=trace.SpanKind.SERVER):
        yield
