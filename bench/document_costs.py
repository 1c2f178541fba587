"""What a cluster document costs each decision in pydantic, and its size, as the cluster ages: one cluster of the
throughput mix, measured fresh, after 20 waves and after 200 (its event keys and node timeline full by then).

    python -m bench.document_costs
    python -m bench.document_costs --waves 0 50 --repeat 5000

A decision reads the cluster (``validate_json``), prints it twice to see whether it changed (the full form, less
``modified_at``) and once more to store it (``stored_json``: without its defaults); this times each in a loop.
"""

from __future__ import annotations

import argparse
import tempfile
import timeit
from pathlib import Path

from rich.table import Table

from bench.embedded_runtime import WORKSPACE, DrainStats, start_runtime
from bench.machine import console, print_header
from bench.workload_mix import create_clusters, run_wave
from shared.adapters.document_form import stored_json
from shared.domain.cluster import APPLIED_EVENT_KEY_LENGTH, Cluster
from shared.domain.node_history import samples_of


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.document_costs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waves", type=int, nargs="+", default=[0, 20, 200], help="ages measured, in waves")
    parser.add_argument("--repeat", type=int, default=2000, help="calls timed per figure")
    return parser.parse_args(argv)


def micros(call: object, repeat: int) -> float:
    return min(timeit.repeat(call, number=repeat, repeat=3)) / repeat * 1e6  # type: ignore[arg-type]


def measured(cluster: Cluster, repeat: int) -> list[str]:
    stored = stored_json(cluster)
    read = micros(lambda: Cluster.model_validate_json(stored), repeat)
    stored_print = micros(lambda: stored_json(cluster), repeat)
    full_print = micros(lambda: cluster.model_dump_json(exclude={"modified_at"}), repeat)
    return [str(len(cluster.applied_events) // APPLIED_EVENT_KEY_LENGTH), str(len(samples_of(cluster.node_history))),
            f"{len(stored):,}", f"{read:.1f}", f"{stored_print:.1f}", f"{full_print:.1f}",
            f"{read + 2 * full_print + stored_print:.1f}"]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = console()
    print_header(out, "ComputePlane cluster document costs per decision")
    table = Table(title="One cluster document of the mix, by age (µs per call, best of 3 loops)")
    for header in ("waves", "event keys", "node samples", "bytes stored", "read (validate)", "stored print",
                   "full print", "per decision (read + 2 full + stored)"):
        table.add_column(header, justify="right")
    with tempfile.TemporaryDirectory(prefix="cp-document-costs-") as tmp:
        runtime = start_runtime(Path(tmp))
        (name,) = create_clusters(runtime, 1)
        waves_run = 0
        for waves in sorted(args.waves):
            for _ in range(waves - waves_run):
                run_wave(runtime, [name], DrainStats())
            waves_run = max(waves_run, waves)
            cluster = runtime.deps.store.get_cluster(WORKSPACE, name)
            assert cluster is not None
            table.add_row(str(waves), *measured(cluster, args.repeat))
    out.print(table)


if __name__ == "__main__":
    main()
