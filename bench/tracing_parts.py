"""Where tracing's cost per event goes: ``--tracing-overhead`` (``bench.tracing.paired_overhead``) with the wrapper
every event is handled in (``shared.telemetry.events.handling``) cut down, so that its parts can be told apart.

    python -m bench.tracing_parts                 # 3 rounds of each part, the deployed sampler (parent-ratio)
    python -m bench.tracing_parts --rounds 5 --sampler always-on

Parts: ``all`` is the wrapper as shipped (span continuing the event's trace, counter, latency histogram, log ids);
``metrics`` keeps only the counter and the histogram; ``none`` keeps only the log ids, so an event neither starts a
span nor carries a trace on. The ports' wrappers (store, provider, bus) stay on in every part. For measuring only:
the cut-down wrappers are swapped into ``shared.handlers.messages`` for the run."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from rich.table import Table

import shared.handlers.messages as messages
from bench.machine import console, print_header
from bench.tracing import SAMPLERS, paired_overhead
from shared.domain.events import CloudEvent
from shared.telemetry import events, state
from shared.telemetry.log_context import reset_log_ids

Wrapper = Callable[[str, CloudEvent], AbstractContextManager[None]]


@contextmanager
def _log_ids(event: CloudEvent) -> Iterator[None]:
    token = events.set_event_log_ids(event)
    try:
        yield
    finally:
        reset_log_ids(token)


@contextmanager
def metrics_only(_: str, event: CloudEvent) -> Iterator[None]:
    instruments = state.current()
    started, outcome = time.perf_counter(), "ok"
    try:
        with _log_ids(event):
            yield
    except BaseException:
        outcome = "retried"
        raise
    finally:
        if instruments is not None:
            instruments.events_handled.add(event.type, outcome)
            instruments.handler_duration.record(time.perf_counter() - started, events._labels(event.type, outcome))


@contextmanager
def log_ids_only(_: str, event: CloudEvent) -> Iterator[None]:
    with _log_ids(event):
        yield


PARTS: dict[str, Wrapper] = {"all": events.handling, "metrics": metrics_only, "none": log_ids_only}


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(prog="python -m bench.tracing_parts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sampler", choices=sorted(SAMPLERS), default="parent-ratio")
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--waves", type=int, default=50)
    args = parser.parse_args(argv)
    print_header(console(), "ComputePlane tracing overhead by part of the handler's wrapper")
    overheads: dict[str, list[float]] = {name: [] for name in PARTS}
    shipped = messages.handling
    try:
        for _ in range(args.rounds):  # parts taken in turn, round by round, as the machine's speed drifts
            for name, wrapper in PARTS.items():
                messages.handling = wrapper  # type: ignore[assignment]
                overheads[name].append(paired_overhead(args.clusters, args.waves, args.sampler).overhead)
    finally:
        messages.handling = shipped
    table = Table(title=f"Tracing overhead, CPU per event, sampler {args.sampler}, {args.rounds} round(s) each")
    for column in ("part of the wrapper kept", "median", "rounds"):
        table.add_column(column, justify="left" if column.startswith("part") else "right")
    for name, values in overheads.items():
        table.add_row(name, f"{100 * statistics.median(values):+.1f}%", ", ".join(f"{100 * v:+.1f}" for v in values))
    console().print(table)
    return overheads


if __name__ == "__main__":
    main()
