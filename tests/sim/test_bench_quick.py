"""The benchmarks' quick modes run and print their figures (they are not timed tests)."""

from __future__ import annotations

import pytest

import shared.handlers.messages as messages
from bench import autoscale, commit_cost, document_costs, store_ops, sweep, throughput, tracing_calls, tracing_parts
from shared.telemetry import events, ports


def test_sweep_reads_only_the_due_clusters(capsys: pytest.CaptureFixture[str]) -> None:
    results = sweep.main(["--quick"])
    printed = capsys.readouterr().out
    assert "documents read" in printed and "machine:" in printed and "command:" in printed
    assert [r.clusters for r in results] == [200, 1000]
    for r in results:
        assert r.due <= r.documents_read <= r.due + 1
        assert r.reconciled == r.due


def test_throughput_quick_prints_events_per_second_the_floor_and_reaction(capsys: pytest.CaptureFixture[str]) -> None:
    figures = throughput.main(["--quick"])
    printed = capsys.readouterr().out
    for label in ("ComputePlane events/s", "floor events/s", "reaction p50", "peak RSS"):
        assert label in printed
    assert figures.messages >= 4 * 5 * 4 and figures.stats.failures == 0
    assert figures.events_per_second > 0 and figures.floor_events_per_second > 0
    assert len(figures.reaction_ms) == 4 * 5


def test_store_ops_quick_finds_no_cross_partition_query_per_event(capsys: pytest.CaptureFixture[str]) -> None:
    assert store_ops.main(["--quick"]) == []
    assert "RU / event" in capsys.readouterr().out


def test_document_costs_show_a_cluster_document_growing_with_its_age(capsys: pytest.CaptureFixture[str]) -> None:
    document_costs.main(["--waves", "0", "3", "--repeat", "10"])
    rows = [line.split("│") for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
    sizes = {int(cells[1]): int(cells[4].replace(",", "")) for cells in rows}
    assert set(sizes) == {0, 3} and 0 < sizes[0] < sizes[3]  # three jobs later: their keys and node samples


def test_commit_cost_times_a_send_and_the_floors_insert(capsys: pytest.CaptureFixture[str]) -> None:
    commit_cost.main(["--commits", "20"])
    printed = capsys.readouterr().out
    assert "SqliteQueue.send" in printed and "bare insert" in printed and "machine:" in printed


def test_autoscale_prints_the_table_and_the_frontier(capsys: pytest.CaptureFixture[str]) -> None:
    autoscale.main(["--days", "0.05", "--workers", "1", "--max-nodes", "64"])
    printed = capsys.readouterr().out
    for label in ("Policies side by side", "lower bound", "Cost versus wait", "Adaptive 1b", "idle 1800 s"):
        assert label in printed


def test_tracing_overhead_pairs_every_wave_untraced_and_traced(capsys: pytest.CaptureFixture[str]) -> None:
    rounds = throughput.main(["--quick", "--tracing-overhead", "1", "--sampler", "always-on"])
    assert "overhead of tracing, CPU per event" in capsys.readouterr().out
    assert isinstance(rounds, list) and len(rounds) == 1
    paired = rounds[0]
    assert len(paired.untraced) == len(paired.traced) == 5  # one of each per wave
    # The same jobs on both sides (the wake-ups a second after a release may fall in different waves), and only
    # the traced side made spans: a handler span per event at least.
    submits = [[w.handled["computeplane.job.submit"] for w in side] for side in (paired.untraced, paired.traced)]
    assert submits[0] == submits[1] == [4] * 5
    assert paired.spans >= sum(w.messages for w in paired.traced)


def test_tracing_parts_measures_each_part_and_puts_the_shipped_wrapper_back(
        capsys: pytest.CaptureFixture[str]) -> None:
    overheads = tracing_parts.main(["--rounds", "1", "--clusters", "2", "--waves", "2"])
    assert set(overheads) == {"all", "metrics", "none"} and all(len(v) == 1 for v in overheads.values())
    printed = capsys.readouterr().out
    assert all(part in printed for part in ("all", "metrics", "none"))
    assert messages.handling is events.handling  # the events handled after it are traced as shipped


def test_tracing_calls_times_every_telemetry_call_and_puts_them_back(capsys: pytest.CaptureFixture[str]) -> None:
    enter, exit_ = events.EventHandling.__enter__, events.EventHandling.__exit__
    figures = tracing_calls.main(["--clusters", "2", "--waves", "2"])
    assert len(figures) == 8 and all(per_event > 0 for _, per_event in figures.values()), figures
    assert "latency histogram" in capsys.readouterr().out
    assert (events.EventHandling.__enter__, events.EventHandling.__exit__) == (enter, exit_)
    assert ports.with_trace_context is events.with_trace_context
