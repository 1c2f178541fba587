"""The timer's cost as the number of clusters grows: 1,000 / 10,000 / 100,000 clusters of which 1% are due.

    python -m bench.sweep                       # 1,000 / 10,000 / 100,000 clusters (about a minute)
    python -m bench.sweep --sizes 1000,10000    # fewer
    python -m bench.sweep --quick               # 200 / 1,000, for tests

Rows are inserted straight into a SQLite store (setup speed); each sweep then runs in a fresh process
(``shared.handlers.sweep.sweep`` on the embedded runtime, the store wrapped to count documents read), so its peak
resident memory is its own. The sweep should read the due clusters and no others, and stream the rest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.table import Table

from bench.machine import console, peak_rss_kb, print_header
from bench.store_counter import WRITES, CountingStore, OpKind, StoreCounter
from shared.adapters.sqlite_connections import connect
from shared.adapters.sqlite_store import SqliteStore
from shared.bootstrap import build
from shared.config import Settings
from shared.domain.cluster import ClusterSpec
from shared.domain.cluster_changes import new_cluster
from shared.domain.utc import format_utc
from shared.handlers.sweep import sweep

WORKSPACES = 100
PLACEHOLDER_NAME, PLACEHOLDER_UID = "templatecluster", "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class SweepFigures:
    clusters: int
    due: int
    setup_seconds: float
    seconds: float
    documents_read: int  # full documents (point reads that found one)
    index_rows: int  # rows of the timer's two index queries
    writes: int
    reconciled: int
    rss_before_mb: float
    peak_rss_mb: float


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="cluster counts, comma-separated")
    parser.add_argument("--due-percent", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="sizes 200 and 1,000")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)  # run one sweep, print JSON
    return parser.parse_args(argv)


def populate(data_dir: Path, clusters: int, due: int, now: datetime) -> None:
    """``clusters`` rows, the first ``due`` of them due now; of the rest, half due in an hour, half never."""
    SqliteStore(data_dir / "state.db")  # the schema
    cluster = new_cluster("ws000", PLACEHOLDER_NAME, ClusterSpec(vm_size="Standard_D2s_v3", max_nodes=4),
                          PLACEHOLDER_UID, now - timedelta(minutes=5))
    past, soon = now - timedelta(seconds=1), now + timedelta(hours=1)
    templates = {due_at: cluster.model_copy(update={"next_reconcile_at": due_at}).model_dump_json()
                 for due_at in (past, soon, None)}

    def rows() -> Iterator[tuple[str, str, str, str | None]]:
        for i in range(clusters):
            name, workspace = f"cluster{i:07d}", f"ws{i % WORKSPACES:03d}"
            due_at = past if i < due else (soon if i % 2 else None)
            doc = templates[due_at].replace(PLACEHOLDER_NAME, name).replace(PLACEHOLDER_UID, f"{i:032x}").replace(
                '"workspace":"ws000"', f'"workspace":"{workspace}"')
            yield workspace, name, doc, None if due_at is None else format_utc(due_at)

    conn = connect(data_dir / "state.db")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO clusters (workspace, name, version, doc, next_reconcile_at) VALUES (?, ?, 1, ?, ?)",
                     rows())
    conn.execute("COMMIT")
    conn.close()


def run_child(data_dir: Path) -> dict[str, float]:
    """In this process: build the embedded runtime on ``data_dir``, sweep once, measure."""
    container = build(Settings(data_dir=data_dir))
    counter = StoreCounter(context="sweep")
    deps = replace(container.deps, store=CountingStore(container.deps.store, counter))
    rss_before = peak_rss_kb()
    started = time.perf_counter()
    result = sweep(deps)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "documents_read": counter.documents("sweep", OpKind.POINT_READ),
            "index_rows": counter.documents("sweep", OpKind.CROSS_PARTITION_QUERY, OpKind.QUERY),
            "writes": counter.calls("sweep", *WRITES), "reconciled": result.clusters_reconciled,
            "rss_before_kb": rss_before, "peak_rss_kb": peak_rss_kb()}


def measure(clusters: int, due_percent: float) -> SweepFigures:
    due = round(clusters * due_percent / 100)
    with tempfile.TemporaryDirectory(prefix="cp-sweep-") as tmp:
        started = time.perf_counter()
        populate(Path(tmp), clusters, due, datetime.now(UTC))
        setup_seconds = time.perf_counter() - started
        child = subprocess.run([sys.executable, "-m", "bench.sweep", "--child", tmp], capture_output=True,
                               text=True, check=True, cwd=Path(__file__).resolve().parents[1])
        figures = json.loads(child.stdout.strip().splitlines()[-1])
    return SweepFigures(clusters=clusters, due=due, setup_seconds=setup_seconds, seconds=figures["seconds"],
                        documents_read=int(figures["documents_read"]), index_rows=int(figures["index_rows"]),
                        writes=int(figures["writes"]), reconciled=int(figures["reconciled"]),
                        rss_before_mb=figures["rss_before_kb"] / 1024, peak_rss_mb=figures["peak_rss_kb"] / 1024)


def report(results: list[SweepFigures]) -> None:
    table = Table(title="Timer sweep: cost by number of clusters (1% due)")
    for header in ("clusters", "due", "sweep seconds", "ms per due cluster", "documents read", "index rows",
                   "writes", "reconciled", "peak RSS (MB)", "RSS growth in sweep (MB)", "setup seconds"):
        table.add_column(header, justify="right")
    for r in results:
        table.add_row(f"{r.clusters:,}", f"{r.due:,}", f"{r.seconds:.2f}", f"{1000 * r.seconds / max(r.due, 1):.2f}",
                      f"{r.documents_read:,}", f"{r.index_rows:,}", f"{r.writes:,}", f"{r.reconciled:,}",
                      f"{r.peak_rss_mb:.1f}", f"{r.peak_rss_mb - r.rss_before_mb:.1f}", f"{r.setup_seconds:.1f}")
    console().print(table)


def main(argv: list[str] | None = None) -> list[SweepFigures]:
    args = parse_args(argv)
    if args.child is not None:
        print(json.dumps(run_child(args.child)))
        return []
    print_header(console(), "ComputePlane timer sweep scaling")
    sizes = [200, 1000] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    results = [measure(size, args.due_percent) for size in sizes]
    report(results)
    return results


if __name__ == "__main__":
    main()
