"""Resident memory: what one Functions instance pays to import ``function_app`` before any event, the peak during the
throughput run, and the peak of the timer sweep at 10,000 and 100,000 clusters (it streams: flat).

    python -m bench.memory            # about 30 s
    python -m bench.memory --quick    # smaller throughput run, no 100,000-cluster sweep

Each figure comes from a fresh interpreter (VmHWM, the peak resident set of that process). The smallest Flex
Consumption instance has 512 MB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from rich.table import Table

from bench.machine import console, print_header
from bench.sweep import measure as measure_sweep

REPO = Path(__file__).resolve().parents[1]
SMALLEST_FLEX_INSTANCE_MB = 512
# VmHWM read inline: importing a helper (and rich with it) would add to the figure being measured
_PEAK = "print([int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')][0])"


def peak_rss_mb(code: str) -> float:
    """Peak RSS (MB) of a fresh interpreter running ``code``; the code's own output is ignored."""
    done = subprocess.run([sys.executable, "-c", f"{code}\n{_PEAK}"], capture_output=True, text=True, check=True,
                          cwd=REPO)
    return float(done.stdout.strip().splitlines()[-1]) / 1024


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    print_header(console(), "ComputePlane memory")
    throughput_args = "['--quick']" if args.quick else "[]"
    figures = {
        "bare interpreter": peak_rss_mb("pass"),
        "after import function_app": peak_rss_mb("import function_app"),
        "throughput run (function_app imported)": peak_rss_mb(
            f"import function_app\nfrom bench.throughput import main\nmain({throughput_args})"),
    }
    figures["import cost of function_app"] = figures["after import function_app"] - figures["bare interpreter"]
    for clusters in ([1_000, 10_000] if args.quick else [10_000, 100_000]):
        figures[f"timer sweep, {clusters:,} clusters (1% due)"] = measure_sweep(clusters, 1.0).peak_rss_mb
    table = Table(title=f"Peak resident memory (MB); smallest Flex Consumption instance: {SMALLEST_FLEX_INSTANCE_MB}")
    table.add_column("process")
    table.add_column("MB", justify="right")
    table.add_column("share of 512 MB", justify="right")
    for name, mb in figures.items():
        table.add_row(name, f"{mb:.1f}", f"{100 * mb / SMALLEST_FLEX_INSTANCE_MB:.0f}%")
    console().print(table)
    return figures


if __name__ == "__main__":
    main()
