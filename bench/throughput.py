"""Events per second through the queue-trigger path on the embedded runtime, the commit floor under it, and the
reaction time from job-submit to the stored scale-up decision.

    python -m bench.throughput              # 20 clusters x 50 waves (about 4,000 events)
    python -m bench.throughput --quick      # a few hundred events, for tests
    python -m bench.throughput --tracing    # with OpenTelemetry on (spans and metrics), to measure its cost
    python -m bench.throughput --tracing-overhead 5   # 5 rounds of waves run untraced and traced in turn
    python -m bench.throughput --tracing-overhead 5 --sampler always-on   # every trace recorded, as local OTLP
    python -m bench.throughput --jobs-per-wave 8 --waves 10   # a backlog: 8 jobs per cluster and wave
    python -m bench.throughput --batch-size 1   # one message per call, as the triggers Azure deploys

Every message goes through ``shared.handlers.messages.handle_messages`` (what each queue trigger calls), in batches
of one session as the local host hands them, with the SQLite queue and store and idempotency on. Jobs do not start
processes: the provider is wrapped so that a run ends at once (see ``bench.embedded_runtime``); nodes boot in 0 s.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from bench.commit_floor import CommitCounts, average_row_sizes, replay
from bench.embedded_runtime import DrainStats, EmbeddedRuntime, start_runtime
from bench.machine import console, peak_rss_kb, print_header
from bench.store_counter import OpKind
from bench.tracing import SAMPLERS, PairedRound, TracingOn, paired_overhead
from bench.workload_mix import create_clusters, run_waves
from shared.ports import MAX_MESSAGE_BATCH
from shared.sim.metrics import percentile

NOT_ON_THE_TRIGGER_PATH = ("http", "setup", "idle")


@dataclass(frozen=True)
class ThroughputFigures:
    messages: int
    jobs: int
    seconds: float
    floor_seconds: float
    commits: CommitCounts
    reaction_ms: list[float]
    stats: DrainStats

    @property
    def events_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def floor_events_per_second(self) -> float:
        return self.messages / self.floor_seconds if self.floor_seconds else 0.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--waves", type=int, default=50, help="jobs per cluster (one per wave)")
    parser.add_argument("--quick", action="store_true", help="4 clusters x 5 waves")
    parser.add_argument("--jobs-per-wave", type=int, default=1,
                        help="jobs submitted per cluster and wave (default 1; more is a backlog in each session)")
    parser.add_argument("--batch-size", type=int, default=MAX_MESSAGE_BATCH,
                        help=f"messages of one session per handler call (default {MAX_MESSAGE_BATCH}, as the local "
                             "host; 1: one at a time, as the triggers Azure deploys)")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the databases here (default: a temp dir)")
    parser.add_argument("--tracing", action="store_true",
                        help="OpenTelemetry on: spans through a batch processor (exported nowhere), metrics")
    parser.add_argument("--sampler", choices=sorted(SAMPLERS), default="parent-ratio",
                        help="with --tracing or --tracing-overhead (default: parent-ratio, what the Bicep deploys): "
                             + "; ".join(f"{name}: {meaning}" for name, meaning in SAMPLERS.items()))
    parser.add_argument("--tracing-overhead", type=int, default=0, metavar="ROUNDS",
                        help="ROUNDS rounds of waves, each run untraced and traced in turn: the overhead")
    return parser.parse_args(argv)


def measure(data_dir: Path, clusters: int, waves: int, jobs_per_wave: int = 1, batch_size: int = MAX_MESSAGE_BATCH
            ) -> tuple[ThroughputFigures, EmbeddedRuntime]:
    runtime = start_runtime(data_dir, batch_size=batch_size)
    names = create_clusters(runtime, clusters)
    sends_before = _sent_messages(data_dir)
    runtime.counter.reset()
    stats = run_waves(runtime, names, waves, jobs_per_wave)
    http_sends = (jobs_per_wave + 1) * clusters * waves  # the job-submits and a scale request per cluster and wave
    commits = commit_counts(runtime, stats, _sent_messages(data_dir) - sends_before - http_sends)
    sizes = average_row_sizes(data_dir, stats.body_bytes // max(stats.messages, 1))
    floor_seconds = replay(commits, sizes, data_dir)
    reaction = [1000 * (runtime.decided_at[j] - t) for j, t in runtime.submitted_at.items() if j in runtime.decided_at]
    jobs = clusters * waves * jobs_per_wave
    return ThroughputFigures(stats.messages, jobs, stats.seconds, floor_seconds, commits, reaction, stats), runtime


def commit_counts(runtime: EmbeddedRuntime, stats: DrainStats, handler_sends: int) -> CommitCounts:
    counts: dict[str, int] = {}
    for (context, operation, kind), tally in runtime.counter.tallies.items():
        if context in NOT_ON_THE_TRIGGER_PATH or kind not in (OpKind.INSERT, OpKind.REPLACE, OpKind.DELETE):
            continue
        if operation == "replace_cluster_with_jobs":  # one commit: the cluster and its finished jobs
            counts["cluster_with_jobs"] = counts.get("cluster_with_jobs", 0) + tally.calls
            counts["jobs_with_cluster"] = counts.get("jobs_with_cluster", 0) + tally.documents - tally.calls
            continue
        name = {"create_cluster": "cluster_inserts", "replace_cluster": "cluster_replaces",
                "delete_cluster": "cluster_deletes", "create_job": "job_inserts", "replace_job": "job_replaces",
                "save_quota_ledger": "ledger_writes", "save_node_history_archive": "archive_writes"}[operation]
        counts[name] = counts.get(name, 0) + tally.calls
    # A batch is received in one transaction and completed in another (the floor replays one row each: a little
    # less work than the batch's rows, so the floor stays a floor).
    return CommitCounts(**counts, queue_sends=handler_sends, queue_receives=stats.batches,
                        queue_completes=stats.batches, node_inserts=runtime.provider.provisions,
                        node_deletes=runtime.provider.releases)


def _sent_messages(data_dir: Path) -> int:
    conn = sqlite3.connect(data_dir / "queue.db")
    try:
        return int(conn.execute("SELECT count(*) FROM sent").fetchone()[0])
    finally:
        conn.close()


def report(figures: ThroughputFigures, clusters: int, waves: int, jobs_per_wave: int = 1,
           batch_size: int = MAX_MESSAGE_BATCH) -> None:
    out = console()
    table = Table(title=f"Queue-trigger throughput: {clusters} clusters x {waves} waves x {jobs_per_wave} job(s), "
                        f"batches of up to {batch_size} message(s), embedded runtime")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("events handled (handle_messages)", f"{figures.messages:,}")
    table.add_row("  in calls of handle_messages", f"{figures.stats.batches:,}")
    for event_type, count in sorted(figures.stats.handled.items()):
        table.add_row(f"  {event_type.removeprefix('computeplane.')}", f"{count:,}")
    table.add_row("handler failures (redelivered)", str(figures.stats.failures))
    table.add_row("seconds (receive + handle + complete)", f"{figures.seconds:.2f}")
    table.add_row("CPU seconds of this process meanwhile", f"{figures.stats.cpu_seconds:.2f}")
    table.add_row("ComputePlane events/s", f"{figures.events_per_second:,.0f}")
    table.add_row("jobs/s (submitted, run and finished)", f"{figures.jobs / figures.seconds:,.0f}"
                  if figures.seconds else "0")
    table.add_row("floor: same SQLite commits, no logic (commits)", f"{figures.commits.total:,}")
    table.add_row("floor: seconds", f"{figures.floor_seconds:.2f}")
    table.add_row("floor events/s", f"{figures.floor_events_per_second:,.0f}")
    table.add_row("floor / ComputePlane (x slower than bare commits)",
                  f"{figures.floor_events_per_second / max(figures.events_per_second, 1e-9):.1f}")
    table.add_row("commits per event", f"{figures.commits.total / max(figures.messages, 1):.2f}")
    table.add_row(f"reaction p50 (ms): job-submit published -> scale-up stored, bursts of {clusters * jobs_per_wave}",
                  f"{percentile(figures.reaction_ms, 50):.1f}")
    table.add_row("reaction p99 (ms)", f"{percentile(figures.reaction_ms, 99):.1f}")
    table.add_row("reactions measured", str(len(figures.reaction_ms)))
    table.add_row("peak RSS of this process (MB)", f"{peak_rss_mb():.1f}")
    out.print(table)


def peak_rss_mb() -> float:
    return peak_rss_kb() / 1024


def main(argv: list[str] | None = None) -> ThroughputFigures | list[PairedRound]:
    args = parse_args(argv)
    clusters, waves = (4, 5) if args.quick else (args.clusters, args.waves)
    if args.tracing_overhead:
        return tracing_overhead(args.tracing_overhead, clusters, waves, args.sampler)
    print_header(console(), "ComputePlane queue-trigger throughput" + (" (tracing on)" if args.tracing else ""))
    tracing = TracingOn(args.sampler) if args.tracing else None
    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        figures, _ = measure(args.data_dir, clusters, waves, args.jobs_per_wave, args.batch_size)
    else:
        with tempfile.TemporaryDirectory(prefix="cp-throughput-") as tmp:
            figures, _ = measure(Path(tmp), clusters, waves, args.jobs_per_wave, args.batch_size)
    report(figures, clusters, waves, args.jobs_per_wave, args.batch_size)
    if tracing is not None:
        spans = tracing.finish()
        console().print(f"tracing on: {spans:,} spans, {spans / max(figures.messages, 1):.1f} per event")
    return figures


def tracing_overhead(rounds: int, clusters: int, waves: int, sampler: str) -> list[PairedRound]:
    """Rounds of paired waves (see ``bench.tracing.paired_overhead``), each in fresh runtimes."""
    print_header(console(), "ComputePlane queue-trigger throughput: tracing off versus on, paired wave by wave")
    console().print(f"sampler: {sampler}, {SAMPLERS[sampler]}")
    measured = [paired_overhead(clusters, waves, sampler) for _ in range(rounds)]
    table = Table(title=f"Tracing overhead: {clusters} clusters x {waves} waves, each wave run untraced and traced")
    for column in ("round", "events off / on", "CPU µs per event off", "on", "overhead", "median of wave pairs",
                   "spans per event"):
        table.add_column(column, justify="right")
    for number, paired in enumerate(measured, 1):
        events_off = sum(w.messages for w in paired.untraced)
        events_on = sum(w.messages for w in paired.traced)
        off_us, on_us = paired.cpu_us_per_event(paired.untraced), paired.cpu_us_per_event(paired.traced)
        table.add_row(str(number), f"{events_off:,} / {events_on:,}", f"{off_us:,.0f}", f"{on_us:,.0f}",
                      f"{100 * paired.overhead:+.1f}%", f"{100 * paired.median_wave_overhead:+.1f}%",
                      f"{paired.spans / max(events_on, 1):.2f}")
    out = console()
    out.print(table)
    out.print(f"overhead of tracing, CPU per event: {100 * statistics.median(p.overhead for p in measured):+.1f}% "
              f"(median of {rounds} round(s))")
    return measured


if __name__ == "__main__":
    main()
