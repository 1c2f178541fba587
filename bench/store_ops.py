"""Store operations per event type (counted by a wrapper of the Store port), a Cosmos DB request-unit estimate per
event, the cost per million events at serverless pricing, and any cross-partition query on a per-event path.

    python -m bench.store_ops            # 10 clusters x 20 jobs of the throughput mix, then one timer sweep
    python -m bench.store_ops --quick
    python -m bench.store_ops --warm-waves 100   # clusters that have seen 400 events first: their documents full

A cluster's document grows with what it keeps of its past (the keys of the last 200 events it applied, its newest
node-count samples) until both are full; a long-lived cluster pays for that on every write, a young one does not.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.table import Table

from bench.cosmos_cost import SERVERLESS_USD_PER_MILLION_RU, request_units, usd_per_million_events
from bench.embedded_runtime import DrainStats, EmbeddedRuntime, start_runtime
from bench.machine import console, print_header
from bench.store_counter import WRITES, OpKind
from bench.workload_mix import create_clusters, run_waves
from shared.handlers.sweep import sweep
from shared.ports import MAX_MESSAGE_BATCH

HTTP_SUBMIT = "http (job submit command)"
TIMER = "timer sweep"
PER_EVENT_PATHS_EXCLUDE = (TIMER, "setup", "idle")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.store_ops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--waves", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="3 clusters x 3 waves")
    parser.add_argument("--jobs-per-wave", type=int, default=1,
                        help="jobs submitted per cluster and wave (default 1; more is a backlog in each session)")
    parser.add_argument("--warm-waves", type=int, default=0,
                        help="waves run before counting (default 0: young clusters; 100: long-lived ones)")
    parser.add_argument("--batch-size", type=int, default=MAX_MESSAGE_BATCH,
                        help=f"messages of one session per handler call (default {MAX_MESSAGE_BATCH}; 1: one at a "
                             "time, as the triggers Azure deploys)")
    return parser.parse_args(argv)


def exercise(runtime: EmbeddedRuntime, clusters: int, waves: int, jobs_per_wave: int = 1,
             warm_waves: int = 0) -> DrainStats:
    names = create_clusters(runtime, clusters)
    if warm_waves:
        run_waves(runtime, names, warm_waves, jobs_per_wave)
    runtime.counter.reset()
    stats = run_waves(runtime, names, waves, jobs_per_wave)
    stats.handled[HTTP_SUBMIT] = clusters * waves * jobs_per_wave
    _rename_context(runtime, "http", HTTP_SUBMIT)
    runtime.counter.context = TIMER
    sweep(runtime.deps)
    stats.handled[TIMER] = 1
    return stats


def _rename_context(runtime: EmbeddedRuntime, old: str, new: str) -> None:
    tallies = runtime.counter.tallies
    for (context, operation, kind) in [k for k in tallies if k[0] == old]:
        tallies[(new, operation, kind)] = tallies.pop((context, operation, kind))


def round_trips(runtime: EmbeddedRuntime, context: str) -> int:
    """Calls to the store: a read, a write, a query, or a transactional batch of writes, each one round trip."""
    return runtime.counter.calls(context, *OpKind)


def report(runtime: EmbeddedRuntime, stats: DrainStats) -> list[str]:
    """Prints the tables; returns the per-event paths that ran a cross-partition query (should be none)."""
    out = console()
    table = Table(title="Store operations per event (Store port wrapper), Cosmos RU estimate")
    for header in ("event type", "events", "round trips", "point reads", "write calls", "documents written",
                   "queries", "cross-partition queries", "KB written", "RU / event", "$ / million events"):
        table.add_column(header, justify="left" if header == "event type" else "right")
    flagged: list[str] = []
    for context, events in sorted(stats.handled.items()):
        tallies = runtime.counter.by_context(context)
        if not events:
            continue
        ru = sum(request_units(kind, t) for (_, kind), t in tallies.items()) / events
        written = sum(t.kilobytes for (_, kind), t in tallies.items() if kind in WRITES) / events
        cross = runtime.counter.calls(context, OpKind.CROSS_PARTITION_QUERY) / events
        if cross and context not in PER_EVENT_PATHS_EXCLUDE:
            flagged.append(context)
        table.add_row(context.removeprefix("computeplane."), f"{events:,}",
                      f"{round_trips(runtime, context) / events:.2f}",
                      f"{runtime.counter.calls(context, OpKind.POINT_READ) / events:.2f}",
                      f"{runtime.counter.calls(context, *WRITES) / events:.2f}",
                      f"{runtime.counter.documents(context, *WRITES) / events:.2f}",
                      f"{runtime.counter.calls(context, OpKind.QUERY) / events:.2f}",
                      f"{cross:.2f}" + (" (timer path)" if cross and context == TIMER else " FLAG" if cross else ""),
                      f"{written:.2f}", f"{ru:.1f}", f"{usd_per_million_events(ru):.2f}")
    out.print(table)
    detail = Table(title="Operations by name and event type (calls / event)")
    for header in ("event type", "operation", "kind", "calls / event", "KB / call"):
        detail.add_column(header, justify="left" if header in ("event type", "operation", "kind") else "right")
    for (context, operation, kind), tally in sorted(runtime.counter.tallies.items()):
        events = stats.handled.get(context, 0)
        if events:
            detail.add_row(context.removeprefix("computeplane."), operation, kind.value,
                           f"{tally.calls / events:.2f}", f"{tally.kilobytes / max(tally.calls, 1):.2f}")
    out.print(detail)
    mix = [c for c in stats.handled if c not in PER_EVENT_PATHS_EXCLUDE and c != HTTP_SUBMIT]
    total_events = sum(stats.handled[c] for c in mix)
    total_ru = sum(request_units(kind, t) for c in mix for (_, kind), t in runtime.counter.by_context(c).items())
    per_event = total_ru / max(total_events, 1)
    trips = sum(round_trips(runtime, c) for c in mix) / max(total_events, 1)
    out.print(f"queue-trigger mix: {total_events:,} events, {trips:.3f} store round trips and "
              f"{per_event:.1f} RU per event on average, "
              f"${usd_per_million_events(per_event):.2f} per million events at ${SERVERLESS_USD_PER_MILLION_RU} "
              "per million RU (Cosmos DB serverless)")
    out.print("cross-partition queries on a per-event path: " + (", ".join(flagged) if flagged else "none"))
    return flagged


def main(argv: list[str] | None = None) -> list[str]:
    args = parse_args(argv)
    clusters, waves = (3, 3) if args.quick else (args.clusters, args.waves)
    print_header(console(), "ComputePlane store operations per event")
    with tempfile.TemporaryDirectory(prefix="cp-store-ops-") as tmp:
        runtime = start_runtime(Path(tmp), measure_sizes=True, batch_size=args.batch_size)
        stats = exercise(runtime, clusters, waves, args.jobs_per_wave, args.warm_waves)
        return report(runtime, stats)


if __name__ == "__main__":
    main()
