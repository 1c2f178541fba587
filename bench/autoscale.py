"""Autoscaling policies side by side on a workload trace, and the cost-versus-wait frontier of fixed idle timeouts.

    python -m bench.autoscale                     # Philly runtimes, 2 simulated days of arrivals
    python -m bench.autoscale --workload shared/data/workloads/openb_pod_list_default.csv --start-day 115 --days 10
    python -m bench.autoscale --preemption shared/data/preemption/aws-04-22-2023_us-east-1c_v100_1.json
    python -m bench.autoscale --preemption FILE --compare-fallback   # ComputePlane's fallback triggers compared

Every policy runs the same workload with the same seed; the simulator drives ComputePlane's real reconcile
(``shared.sim``). Traces: cite alibaba/clusterdata and skypilot-org/spot-traces when publishing figures.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.machine import console, print_header
from computeplane.cli_output import comparison_table
from shared.domain.low_priority import fallback_from_text
from shared.sim.compare import MapFunction, frontier, frontier_policies, peer_policies, run_policies
from shared.sim.engine import SimConfig
from shared.sim.fallback_comparison import best_fallback, fallback_candidates, fallback_rows
from shared.sim.jobs import Workload
from shared.sim.names import WorkloadFormat
from shared.sim.recovery import RECOVER_FOREVER, PreemptionRecovery, computeplane_fallback
from shared.sim.report import FRONTIER_HEADERS, footnotes, frontier_rows, side_by_side
from shared.sim.scenario import ScenarioOptions, build_scenario, describe
from shared.sim.workloads import detect_format

DEFAULT_CHECKPOINT_SECONDS = 1800  # with preemptions; as the Can't Be Late evaluation, progress survives a restart
DEFAULT_MAX_NODES = 512  # large enough that 1-2 Philly days never fill the cluster: the policies differ in scaling
DEFAULT_PHILLY_DAYS = 2.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.autoscale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", type=Path, default=None,
                        help="trace file (default: the shipped philly_runtime.csv)")
    parser.add_argument("--format", choices=["philly", "openb", "csv"], default=None,
                        help="trace format (default: detected from the header)")
    parser.add_argument("--preemption", type=Path, default=None,
                        help="spot availability trace (JSON) to replay; makes the nodes low priority")
    parser.add_argument("--preemption-rate", type=float, default=None,
                        help="preemptions per node-hour instead of a trace; makes the nodes low priority")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=float, default=None,
                        help=f"philly: days of arrivals (default {DEFAULT_PHILLY_DAYS:g}); traces: length of the "
                             "window (default: all of it)")
    parser.add_argument("--start-day", type=float, default=0.0, help="traces: first day of the window")
    parser.add_argument("--max-nodes", type=int, default=DEFAULT_MAX_NODES)
    parser.add_argument("--vm-size", default="Standard_NC6s_v3")
    parser.add_argument("--boot-seconds", type=float, default=120.0)
    parser.add_argument("--quota-vcpus", type=int, default=None, help="a vCPU quota that binds the cluster")
    parser.add_argument("--idle-seconds", type=int, default=1800, help="ComputePlane's idle timeout")
    parser.add_argument("--jobs-per-day", type=float, default=850.0, help="philly: arrival rate")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="simulation processes")
    parser.add_argument("--no-frontier", action="store_true", help="skip the fixed-timeout frontier")
    parser.add_argument("--checkpoint-seconds", type=int, default=DEFAULT_CHECKPOINT_SECONDS,
                        help="with preemptions: jobs checkpoint this often, so a preemption loses only the work "
                             "since the last checkpoint (0: jobs restart from the beginning)")
    parser.add_argument("--low-priority-fallback", default="on", type=_fallback,
                        help="ComputePlane's fallback to dedicated nodes: on (its defaults), off, preemptions[:N], "
                             "lost_time[:SECONDS] or deadline")
    parser.add_argument("--compare-fallback", action="store_true",
                        help="with preemptions: compare ComputePlane's fallback triggers (fixed N, lost-time "
                             "budget, uniform progress towards a deadline)")
    return parser.parse_args(argv)


def _fallback(text: str) -> PreemptionRecovery:
    try:
        fallback = fallback_from_text(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return RECOVER_FOREVER if fallback is None else computeplane_fallback(fallback)


def scenario_options(args: argparse.Namespace) -> ScenarioOptions:
    workload_format = WorkloadFormat(args.format) if args.format else None
    if args.workload is None:
        workload_format = WorkloadFormat.PHILLY
    elif workload_format is None:
        workload_format = detect_format(args.workload)
    philly = workload_format is WorkloadFormat.PHILLY
    days = DEFAULT_PHILLY_DAYS if philly and args.days is None else args.days
    return ScenarioOptions(workload=args.workload, workload_format=workload_format, preemption_trace=args.preemption,
                           preemption_rate=args.preemption_rate, seed=args.seed, days=days, start_day=args.start_day,
                           max_nodes=args.max_nodes, vm_size=args.vm_size, boot_seconds=args.boot_seconds,
                           quota_vcpus=args.quota_vcpus, jobs_per_day=args.jobs_per_day,
                           checkpoint_seconds=args.checkpoint_seconds)


def render(out: Console, workload: Workload, config: SimConfig, args: argparse.Namespace, map_fn: MapFunction) -> None:
    price = config.vm().price_per_hour(config.priority)
    for line in describe(workload, config):
        out.print(line)
    peers = run_policies(workload, peer_policies(config.boot_seconds, args.idle_seconds, args.low_priority_fallback),
                         config, map_fn)
    headers, rows = side_by_side(peers, price)
    out.print(comparison_table("Policies side by side (same workload, same seed)", headers, rows))
    for note in footnotes(peers):
        out.print(f"  {note}")
    if args.compare_fallback and config.priority == "lowpriority":
        compared = run_policies(workload, fallback_candidates(args.idle_seconds), config, map_fn)
        headers, rows = fallback_rows(compared)
        out.print(comparison_table("ComputePlane's fallback to dedicated nodes, trigger by trigger", headers, rows))
        out.print(f"  best: {best_fallback(compared).label}")
    if args.no_frontier:
        return
    candidates = run_policies(workload, frontier_policies(config.boot_seconds), config, map_fn)
    fixed = [m for m in candidates if m.short_label.startswith("idle ")]
    others = [m for m in candidates if not m.short_label.startswith("idle ")]
    chart = Table(title="Cost versus wait: fixed idle timeouts (the frontier) and the adaptive policy")
    for i, header in enumerate(FRONTIER_HEADERS):
        chart.add_column(header, justify="left" if i in (0, len(FRONTIER_HEADERS) - 1) else "right")
    for row in frontier_rows(frontier(fixed, others)):
        chart.add_row(*row)
    out.print(chart)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = console()
    print_header(out, "ComputePlane autoscaling simulator")
    started = time.perf_counter()
    workload, config = build_scenario(scenario_options(args))
    if args.workers > 1:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            render(out, workload, config, args, pool.map)
    else:
        render(out, workload, config, args, map)
    out.print(f"simulated in {time.perf_counter() - started:.1f} s with {args.workers} process(es)")


if __name__ == "__main__":
    main()
