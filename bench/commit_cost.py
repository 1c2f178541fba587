"""What one SQLite commit costs on this machine: a send to the embedded queue (its indexes, its duplicate check and
the trigger noting the sending) and the bare insert the throughput bench's floor replays for it, each timed alone.

    python -m bench.commit_cost
    python -m bench.commit_cost --commits 5000

The throughput goal leaves an event 250 µs in all (4,000 events/s), and an event of the mix makes about 3.3 commits.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from rich.table import Table

from bench.commit_floor import FLOOR_SCHEMA
from bench.machine import console, print_header
from shared.adapters.clock import SystemClock
from shared.adapters.sqlite_connections import connect
from shared.adapters.sqlite_queue import SqliteQueue

MESSAGE_BYTES = 900  # about a job-submit event's body


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.commit_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=3000, help="commits timed per figure, after 200 unmeasured")
    return parser.parse_args(argv)


def micros_each(commit: Callable[[], object], commits: int) -> float:
    for _ in range(200):  # a queue that already holds messages, as in a run
        commit()
    started = time.perf_counter()
    for _ in range(commits):
        commit()
    return (time.perf_counter() - started) / commits * 1e6


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = console()
    print_header(out, "ComputePlane SQLite commit cost")
    body = b"m" * MESSAGE_BYTES
    table = Table(title=f"One commit, timed alone ({args.commits:,} of each)")
    table.add_column("commit")
    table.add_column("µs each", justify="right")
    with tempfile.TemporaryDirectory(prefix="cp-commit-cost-") as tmp:
        queue = SqliteQueue(Path(tmp) / "queue.db", SystemClock())
        send = micros_each(lambda: queue.send("job-events", uuid.uuid4().hex, body, session_id="s"), args.commits)
        floor = connect(Path(tmp) / "floor.db")
        floor.executescript(FLOOR_SCHEMA)
        insert = micros_each(lambda: floor.execute("INSERT INTO messages (message_id, body) VALUES (?, ?)",
                                                   (uuid.uuid4().hex, body)), args.commits)
        table.add_row("send to the embedded queue (SqliteQueue.send)", f"{send:.1f}")
        table.add_row("the floor's bare insert for a send", f"{insert:.1f}")
        floor.close()
    out.print(table)


if __name__ == "__main__":
    main()
