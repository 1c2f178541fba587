"""What each telemetry call costs on the queue-trigger path itself, not in a tight loop: the calls are timed one by
one while a traced runtime drains waves of the mix. There every one costs two to four times what a loop of it
alone shows, its code being out of the CPU's caches between events.

    python -m bench.tracing_calls                  # 20 clusters x 30 waves, the deployed sampler (parent-ratio)
    python -m bench.tracing_calls --sampler always-on

Timed: the handler's wrapper (``EventHandling`` enter and exit, each including what it calls), and inside them the
trace context read from the event, the handler span started, the log ids set, the events counter and the latency
histogram; and the trace context put into each published event. The timing wrappers add about 0.2 µs a call. For
measuring only: the timed functions are swapped in for the run and put back after."""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.embedded_runtime import DrainStats, start_runtime
from bench.machine import console, print_header
from bench.tracing import SAMPLERS, TracingOn
from bench.workload_mix import create_clusters, run_wave
from shared.telemetry import events, ports, state

Timings = dict[str, list[int]]  # name -> [nanoseconds, calls]


def _timed(name: str, function: Callable[..., Any], timings: Timings) -> Callable[..., Any]:
    tally = timings.setdefault(name, [0, 0])

    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter_ns()
        try:
            return function(*args, **kwargs)
        finally:
            tally[0] += time.perf_counter_ns() - started
            tally[1] += 1

    return call


@contextmanager
def timing_calls(instruments: state.Instruments, timings: Timings) -> Iterator[None]:
    """The telemetry calls timed into ``timings`` while inside; as shipped again after."""
    swaps: list[tuple[Any, str, Any]] = [
        (events.EventHandling, "__enter__", "handler wrapper: enter"),
        (events.EventHandling, "__exit__", "handler wrapper: exit"),
        (events, "_extract", "  trace context read from the event"),
        (events, "set_event_log_ids", "  log ids set"),
        (instruments.tracer, "start_span", "  handler span started"),
        (instruments.events_handled, "add", "  events counter"),
        (instruments.handler_duration, "record", "  latency histogram"),
        (ports, "with_trace_context", "trace context put into a published event"),
    ]
    shipped = [(owner, attribute, getattr(owner, attribute)) for owner, attribute, _ in swaps]
    for (owner, attribute, name), (_, _, function) in zip(swaps, shipped, strict=True):
        setattr(owner, attribute, _timed(name, function, timings))
    try:
        yield
    finally:
        for owner, attribute, function in shipped:
            if isinstance(owner, type) or owner in (events, ports):
                setattr(owner, attribute, function)
            else:  # a bound method set on the instance: take the instance's attribute away again
                delattr(owner, attribute)


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float]]:
    parser = argparse.ArgumentParser(prog="python -m bench.tracing_calls", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sampler", choices=sorted(SAMPLERS), default="parent-ratio")
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--waves", type=int, default=30)
    args = parser.parse_args(argv)
    print_header(console(), "ComputePlane telemetry calls timed on the queue-trigger path")
    timings: Timings = {}
    stats = DrainStats()
    with tempfile.TemporaryDirectory(prefix="cp-tracing-calls-") as data_dir:
        tracing = TracingOn(args.sampler)
        try:
            runtime = start_runtime(Path(data_dir))
            names = create_clusters(runtime, args.clusters)
            instruments = state.current()
            assert instruments is not None
            with timing_calls(instruments, timings):
                for _ in range(args.waves):
                    run_wave(runtime, names, stats)
        finally:
            tracing.finish()
    events_handled = max(stats.messages, 1)
    figures = {name: (nanos / 1000 / max(calls, 1), calls / events_handled) for name, (nanos, calls) in timings.items()}
    table = Table(title=f"{stats.messages:,} events, sampler {args.sampler}, "
                        f"{1e6 * stats.cpu_seconds / events_handled:,.0f} µs of CPU per event in all")
    for column in ("call", "µs per call", "calls per event", "µs per event"):
        table.add_column(column, justify="left" if column == "call" else "right")
    for name, (per_call, per_event) in figures.items():
        table.add_row(name, f"{per_call:.1f}", f"{per_event:.2f}", f"{per_call * per_event:.1f}")
    console().print(table)
    console().print("(the handler span is started by the HTTP side's request spans too, outside the drain: its "
                    "calls per event count those)")
    return figures


if __name__ == "__main__":
    main()
