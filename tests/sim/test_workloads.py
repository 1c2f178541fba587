"""Loaders parse the shipped traces (small slices) and a team's own CSV."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest

from shared.sim.names import WorkloadFormat
from shared.sim.preemption import TracePreemption
from shared.sim.workloads import (
    OPENB_TRACE_END,
    csv_workload,
    data_dir,
    detect_format,
    load_availability_trace,
    load_workload,
    openb_workload,
    philly_node_count_mix,
    read_runtimes,
    shipped_workload,
    synthesize_philly,
)

OPENB = shipped_workload("openb_pod_list_default.csv")
PHILLY = shipped_workload("philly_runtime.csv")


def test_the_traces_ship_inside_the_repository() -> None:
    assert data_dir().is_relative_to(Path(__file__).resolve().parents[2])
    assert (data_dir() / "workloads").is_dir()
    assert sorted(p.name for p in (data_dir() / "preemption").glob("*.json"))


def test_philly_node_count_mix_has_the_published_mean_and_median() -> None:
    mix = philly_node_count_mix()
    assert [size for size, _ in mix] == [1, 2, 4, 8, 16]
    assert sum(size * p for size, p in mix) == pytest.approx(1.93, abs=1e-6)
    assert mix[0][1] > 0.5  # median 1
    assert sum(p for _, p in mix) == pytest.approx(1.0)


def test_philly_runtimes_are_sampled_with_poisson_arrivals_deterministically(tmp_path: Path) -> None:
    slice_path = tmp_path / "philly.csv"
    with PHILLY.open() as source:
        slice_path.write_text("".join(itertools.islice(source, 2001)))
    runtimes = read_runtimes(slice_path)
    assert len(runtimes) == 2000
    one = synthesize_philly(runtimes, days=2.0, seed=5)
    assert one == synthesize_philly(runtimes, days=2.0, seed=5)
    assert 1500 < len(one.jobs) < 1900  # about 850 a day
    assert set(j.duration_seconds for j in one.jobs) <= set(runtimes)
    assert detect_format(slice_path) is WorkloadFormat.PHILLY


def test_node_counts_are_capped_at_max_nodes_and_the_cap_is_noted() -> None:
    workload = load_workload(PHILLY, max_nodes=4, seed=1, days=0.5)
    assert max(j.node_count for j in workload.jobs) == 4
    assert any("capped" in note for note in workload.notes)


def test_openb_pods_become_jobs_with_censored_and_unscheduled_pods_accounted_for(tmp_path: Path) -> None:
    header = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time," \
             "scheduled_time\n"
    rows = ["p-done,1000,100,1,500,,LS,Succeeded,100,700,160\n",  # a fractional GPU: one node, ran 540 s
            f"p-censored,1000,100,8,1000,,LS,Running,200,{OPENB_TRACE_END},300\n",  # 8 GPUs, still running
            "p-pending,1000,100,2,1000,,LS,Pending,300,12902960,\n",  # never scheduled: left out
            "p-cpu,1000,100,0,0,,BE,Running,400,900,400\n"]  # no GPU: left out
    path = tmp_path / "openb.csv"
    path.write_text(header + "".join(rows))
    assert detect_format(path) is WorkloadFormat.OPENB
    workload = openb_workload(path, gpus_per_node=4)
    assert [(j.job_id, j.submit_seconds, j.duration_seconds, j.node_count) for j in workload.jobs] == [
        ("p-done", 100.0, 540.0, 1), ("p-censored", 200.0, float(OPENB_TRACE_END - 300), 2)]
    assert any("1 censored" in n for n in workload.notes)
    assert any("1 pod(s) never scheduled, 1 CPU-only" in n for n in workload.notes)


def test_the_shipped_openb_trace_loads_whole() -> None:
    with OPENB.open() as f:
        rows = list(csv.DictReader(f))
    gpu_scheduled = [r for r in rows if r["num_gpu"] != "0" and r["scheduled_time"].strip()]
    workload = load_workload(OPENB, max_nodes=64, gpus_per_node=1)
    assert len(workload.jobs) == len(gpu_scheduled)
    assert max(j.node_count for j in workload.jobs) == 8
    window = load_workload(OPENB, max_nodes=64, gpus_per_node=1, start_day=115, days=2)
    assert window.jobs and window.jobs[0].submit_seconds < 2 * 86400


def test_a_team_csv_in_seconds_or_timestamps(tmp_path: Path) -> None:
    seconds = tmp_path / "jobs.csv"
    seconds.write_text("submit_time,duration,node_count\n30,600,2\n0,60,\n")
    workload = csv_workload(seconds)
    assert [(j.submit_seconds, j.duration_seconds, j.node_count) for j in workload.jobs] == [(0, 60, 1), (30, 600, 2)]
    stamps = tmp_path / "history.csv"
    stamps.write_text("submit_time,duration\n2024-05-01T10:00:30Z,600\n2024-05-01T10:00:00Z,60\n")
    assert [j.submit_seconds for j in csv_workload(stamps).jobs] == [0.0, 30.0]


def test_a_csv_without_the_needed_columns_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("start,length\n1,2\n")
    with pytest.raises(ValueError, match="submit_time, duration"):
        csv_workload(path)


@pytest.mark.parametrize("name", sorted(p.name for p in (data_dir() / "preemption").glob("*.json")))
def test_spot_traces_replay_as_preemptions_after_a_node_is_ready(name: str) -> None:
    trace = load_availability_trace(data_dir() / "preemption" / name)
    assert trace.gap_seconds > 0 and trace.counts
    model = TracePreemption(trace)
    rate = trace.losses_per_available_hour()
    if "v100" in name:
        assert 0.2 < rate < 1.0  # the data README: 0.3-0.7 losses per running hour
    import random

    rng = random.Random(1)
    times = [model.preemption_after(1000.0, rng) for _ in range(20)]
    if rate == 0:
        assert times == [None] * 20
    else:
        assert all(t is not None and t > 1000.0 for t in times)
