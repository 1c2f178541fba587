"""SQLite connections as every embedded adapter opens them (store, queue, local provider)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


def connect(path: Path) -> sqlite3.Connection:
    """WAL so readers never block the writer; a busy timeout so concurrent processes wait instead of failing."""
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
