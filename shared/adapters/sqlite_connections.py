"""SQLite connections as every embedded adapter opens them (store, queue, local provider)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


def connect(path: Path) -> sqlite3.Connection:
    """WAL so readers never block the writer; a busy timeout so concurrent processes wait instead of failing.

    Durability, by setting (https://www.sqlite.org/pragma.html#pragma_synchronous, .../wal.html):

    - ``journal_mode=WAL, synchronous=NORMAL`` (chosen): a commit is appended to the write-ahead log and reaches
      the operating system before ``COMMIT`` returns; the log is flushed to the disk only at checkpoints. A process
      that crashes or is killed (SIGKILL) loses nothing committed: the operating system still holds the log, and
      the next open replays it (``tests/reliability/test_serve_sigkill.py``). A power cut or kernel crash may lose
      the commits since the last checkpoint, but never corrupts the file. The embedded runtime accepts that: it is
      the laptop default; in Azure, Cosmos DB and Service Bus keep what they acknowledged.
    - ``synchronous=FULL``: every commit is flushed to the disk as well, so it also survives a power cut; each
      commit then waits for the disk (the bench's commit floor falls several-fold on an ordinary SSD).
    - ``synchronous=OFF``: the operating system decides when to write; a process crash still loses nothing, a
      power cut may corrupt the database. Not used.
    - The rollback journal (``DELETE``) with ``FULL``: as durable as WAL with ``FULL``, but readers block the writer."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class ConnectionPerThread:
    """One connection per thread to one database file, opened on the thread's first call: sqlite3 connections are
    not meant to be shared between threads."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()

    def __call__(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self._path)
        return conn
