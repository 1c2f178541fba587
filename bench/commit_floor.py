"""The floor under the queue-trigger path: the same number of SQLite commits, of rows of the same sizes, with no
ComputePlane logic (no parsing, no domain, no pydantic): what the embedded runtime's storage alone costs.

The commits of a run are counted from its instruments: store writes (by table and kind), queue sends, receives
(the peek-lock update) and completes, and node inserts/deletes in the provider's database. Row sizes are the average
sizes found in the run's own databases. The floor replays them, interleaved, on a fresh SQLite file opened with the
same settings (WAL, synchronous=NORMAL), one commit each, as the adapters do.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.adapters.sqlite_connections import connect

FLOOR_SCHEMA = """
CREATE TABLE clusters (id INTEGER PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE jobs (id INTEGER PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE ledgers (id INTEGER PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL, body BLOB NOT NULL,
    locked_until TEXT NOT NULL DEFAULT '');
CREATE TABLE sent (message_id TEXT PRIMARY KEY, sent_at TEXT NOT NULL);
CREATE TRIGGER note_sent AFTER INSERT ON messages BEGIN
    INSERT OR REPLACE INTO sent (message_id, sent_at) VALUES (NEW.message_id, '2024-01-01');
END;
CREATE TABLE nodes (node_id TEXT PRIMARY KEY, info TEXT NOT NULL);
"""


@dataclass(frozen=True)
class CommitCounts:
    cluster_inserts: int = 0
    cluster_replaces: int = 0
    cluster_deletes: int = 0
    job_inserts: int = 0
    job_replaces: int = 0
    ledger_writes: int = 0
    archive_writes: int = 0  # node history archives (small documents, replayed as ledger rows)
    cluster_with_jobs: int = 0  # commits of a cluster and its finished jobs, in one transaction
    jobs_with_cluster: int = 0  # the jobs those commits wrote
    queue_sends: int = 0
    queue_receives: int = 0
    queue_completes: int = 0
    node_inserts: int = 0
    node_deletes: int = 0

    @property
    def total(self) -> int:
        return sum(n for name, n in vars(self).items() if name != "jobs_with_cluster")  # commits, not rows


@dataclass(frozen=True)
class RowSizes:
    cluster_bytes: int
    job_bytes: int
    ledger_bytes: int
    message_bytes: int


def average_row_sizes(data_dir: Path, message_bytes: int) -> RowSizes:
    conn = sqlite3.connect(data_dir / "state.db")
    try:
        def average(table: str) -> int:
            row = conn.execute(f"SELECT avg(length(doc)) FROM {table}").fetchone()
            return int(row[0] or 0)

        return RowSizes(average("clusters"), average("jobs"), average("quota_ledgers"), message_bytes)
    finally:
        conn.close()


def replay(counts: CommitCounts, sizes: RowSizes, directory: Path) -> float:
    """Seconds to make the same commits on a fresh database in ``directory``."""
    path = directory / f"floor-{uuid.uuid4().hex}.db"
    conn = connect(path)
    conn.executescript(FLOOR_SCHEMA)
    payload = {"clusters": "c" * sizes.cluster_bytes, "jobs": "j" * sizes.job_bytes,
               "ledgers": "q" * sizes.ledger_bytes}
    body = b"m" * sizes.message_bytes
    for table in ("clusters", "jobs", "ledgers"):  # rows for the replaces to hit
        conn.execute(f"INSERT INTO {table} (id, doc) VALUES (1, ?)", (payload[table],))
    state = {"seq": 0, "lowest": 1, "node": 0}

    def insert(table: str) -> Callable[[], object]:
        return lambda: conn.execute(f"INSERT INTO {table} (doc) VALUES (?)", (payload[table],))

    def update(table: str) -> Callable[[], object]:
        return lambda: conn.execute(f"UPDATE {table} SET doc=? WHERE id=1", (payload[table],))

    jobs_per_batch = round(counts.jobs_with_cluster / counts.cluster_with_jobs) if counts.cluster_with_jobs else 0

    def cluster_with_jobs() -> None:
        conn.execute("BEGIN IMMEDIATE")
        for _ in range(jobs_per_batch):
            conn.execute("UPDATE jobs SET doc=? WHERE id=1", (payload["jobs"],))
        conn.execute("UPDATE clusters SET doc=? WHERE id=1", (payload["clusters"],))
        conn.execute("COMMIT")

    def send() -> None:  # one statement, its sending noted by the trigger, as the embedded queue sends
        conn.execute("INSERT INTO messages (message_id, body) VALUES (?, ?)", (uuid.uuid4().hex, body))

    def receive() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE messages SET locked_until='2999' WHERE seq=(SELECT min(seq) FROM messages)")
        conn.execute("COMMIT")

    def complete() -> None:
        conn.execute("DELETE FROM messages WHERE seq=(SELECT min(seq) FROM messages)")

    def node_insert() -> None:
        state["node"] += 1
        conn.execute("INSERT INTO nodes (node_id, info) VALUES (?, 'ok')", (f"n{state['node']}",))

    def node_delete() -> None:
        conn.execute("DELETE FROM nodes WHERE node_id=(SELECT min(node_id) FROM nodes)")

    plan: list[tuple[int, Callable[[], object]]] = [
        (counts.cluster_inserts, insert("clusters")), (counts.cluster_replaces, update("clusters")),
        (counts.cluster_deletes, update("clusters")), (counts.job_inserts, insert("jobs")),
        (counts.job_replaces, update("jobs")), (counts.ledger_writes, update("ledgers")),
        (counts.archive_writes, update("ledgers")), (counts.cluster_with_jobs, cluster_with_jobs),
        (counts.queue_sends, send), (counts.queue_receives, receive), (counts.queue_completes, complete),
        (counts.node_inserts, node_insert), (counts.node_deletes, node_delete)]
    started = time.perf_counter()
    for i in range(max((n for n, _ in plan), default=0)):
        for n, commit in plan:
            if i < n:
                commit()
    seconds = time.perf_counter() - started
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")
    return seconds
