"""The embedded Store: SQLite, one JSON document per row, a version column for conditional writes.

Indexed columns are copied out of the document (``next_reconcile_at``, job state) so the timer's queries use an
index and never scan every cluster.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from shared.adapters.document_form import stored_json
from shared.adapters.sqlite_connections import ConnectionPerThread
from shared.domain.cluster import Cluster
from shared.domain.errors import ConcurrencyConflict
from shared.domain.job import Job, JobState
from shared.domain.node_history import NodeHistoryArchive
from shared.domain.quota_ledger import QuotaLedger
from shared.domain.tombstone import ClusterTombstone
from shared.domain.utc import format_utc
from shared.ports import AlreadyExists

_Doc = TypeVar("_Doc", Cluster, Job)
_Keyed = TypeVar("_Keyed", QuotaLedger, ClusterTombstone, NodeHistoryArchive)

SCHEMA = """
CREATE TABLE IF NOT EXISTS clusters (
    workspace TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL,
    next_reconcile_at TEXT, PRIMARY KEY (workspace, name));
CREATE INDEX IF NOT EXISTS clusters_due ON clusters (next_reconcile_at) WHERE next_reconcile_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS jobs (
    workspace TEXT NOT NULL, id TEXT NOT NULL, cluster TEXT NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL,
    state TEXT NOT NULL, scheduled INTEGER NOT NULL, submitted_at TEXT NOT NULL, PRIMARY KEY (workspace, id));
CREATE INDEX IF NOT EXISTS jobs_by_cluster ON jobs (workspace, cluster, submitted_at);
CREATE INDEX IF NOT EXISTS jobs_unscheduled ON jobs (submitted_at) WHERE scheduled = 0 AND state = 'Queued';
CREATE TABLE IF NOT EXISTS quota_ledgers (region TEXT PRIMARY KEY, version INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tombstones (
    workspace TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (workspace, name));
CREATE TABLE IF NOT EXISTS node_history_archives (
    workspace TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (workspace, name));
"""


class SqliteStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._conn = ConnectionPerThread(path)
        self._conn().executescript(SCHEMA)

    # --- clusters ----------------------------------------------------------------------------------------------
    def get_cluster(self, workspace: str, name: str) -> Cluster | None:
        row = self._conn().execute("SELECT doc, version FROM clusters WHERE workspace=? AND name=?",
                                   (workspace, name)).fetchone()
        return _cluster(row) if row else None

    def create_cluster(self, cluster: Cluster) -> Cluster:
        # A cluster deleted and created again must not take up its predecessor's versions: a decision made on the
        # old one would save over the new (Cosmos DB's etags never repeat either). A random start of 60 bits makes
        # a repeat vanishingly unlikely and leaves room to count up in SQLite's 64-bit integers.
        version = secrets.randbits(60)
        try:
            self._conn().execute(
                "INSERT INTO clusters (workspace, name, version, doc, next_reconcile_at) VALUES (?, ?, ?, ?, ?)",
                (cluster.workspace, cluster.name, version, stored_json(cluster), _due(cluster)))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"{cluster.workspace}/{cluster.name}") from None
        return _with_etag(cluster, version)

    def replace_cluster(self, cluster: Cluster) -> Cluster:
        version = _version(cluster.etag)
        cursor = self._conn().execute(
            "UPDATE clusters SET version=version+1, doc=?, next_reconcile_at=? "
            "WHERE workspace=? AND name=? AND version=?",
            (stored_json(cluster), _due(cluster), cluster.workspace, cluster.name, version))
        if cursor.rowcount != 1:
            raise ConcurrencyConflict(f"cluster {cluster.workspace}/{cluster.name} changed since version {version}")
        return _with_etag(cluster, version + 1)

    def replace_cluster_with_jobs(self, cluster: Cluster, jobs: Sequence[Job],
                                  archive: NodeHistoryArchive | None = None) -> Cluster:
        """One transaction: all the writes or none (see ``shared.ports.Store``)."""
        if not jobs and archive is None:
            return self.replace_cluster(cluster)
        conn, read_as = self._conn(), [job.etag for job in jobs]
        conn.execute("BEGIN IMMEDIATE")
        try:
            for job in jobs:
                self.replace_job(job)
            if archive is not None:
                self.save_node_history_archive(archive)
            self.replace_cluster(cluster)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            # Nothing was written: the jobs get back the etags they were read with (their copies are kept for the
            # next decision; an archive is not, the retry reads it afresh).
            for job, etag in zip(jobs, read_as, strict=True):
                job.etag = etag
            raise
        return cluster

    def delete_cluster(self, cluster: Cluster) -> None:
        cursor = self._conn().execute("DELETE FROM clusters WHERE workspace=? AND name=? AND version=?",
                                      (cluster.workspace, cluster.name, _version(cluster.etag)))
        if cursor.rowcount != 1 and self.get_cluster(cluster.workspace, cluster.name) is not None:
            raise ConcurrencyConflict(f"cluster {cluster.workspace}/{cluster.name} changed before delete")

    def list_clusters(self, workspace: str) -> list[Cluster]:
        rows = self._conn().execute("SELECT doc, version FROM clusters WHERE workspace=? ORDER BY name",
                                    (workspace,)).fetchall()
        return [_cluster(r) for r in rows]

    def due_clusters(self, now: datetime) -> Iterator[tuple[str, str]]:
        cursor = self._conn().execute(
            "SELECT workspace, name FROM clusters WHERE next_reconcile_at IS NOT NULL AND next_reconcile_at <= ? "
            "ORDER BY next_reconcile_at", (format_utc(now),))
        yield from cursor

    # --- jobs --------------------------------------------------------------------------------------------------
    def get_job(self, workspace: str, job_id: str) -> Job | None:
        row = self._conn().execute("SELECT doc, version FROM jobs WHERE workspace=? AND id=?",
                                   (workspace, job_id)).fetchone()
        return _job(row) if row else None

    def create_job(self, job: Job) -> Job:
        try:
            self._conn().execute(
                "INSERT INTO jobs (workspace, id, cluster, version, doc, state, scheduled, submitted_at) "
                "VALUES (?, ?, ?, 1, ?, ?, ?, ?)",
                (job.workspace, job.id, job.cluster, stored_json(job), job.state.value, int(job.scheduled),
                 format_utc(job.submitted_at)))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"{job.workspace}/{job.id}") from None
        return _with_etag(job, 1)

    def replace_job(self, job: Job) -> Job:
        version = _version(job.etag)
        cursor = self._conn().execute(
            "UPDATE jobs SET version=version+1, doc=?, state=?, scheduled=? WHERE workspace=? AND id=? AND version=?",
            (stored_json(job), job.state.value, int(job.scheduled), job.workspace, job.id, version))
        if cursor.rowcount != 1:
            raise ConcurrencyConflict(f"job {job.workspace}/{job.id} changed since version {version}")
        return _with_etag(job, version + 1)

    def list_jobs(self, workspace: str, cluster: str | None = None) -> list[Job]:
        if cluster is None:
            rows = self._conn().execute("SELECT doc, version FROM jobs WHERE workspace=? ORDER BY submitted_at",
                                        (workspace,)).fetchall()
        else:
            rows = self._conn().execute(
                "SELECT doc, version FROM jobs WHERE workspace=? AND cluster=? ORDER BY submitted_at",
                (workspace, cluster)).fetchall()
        return [_job(r) for r in rows]

    def unscheduled_jobs(self, submitted_before: datetime) -> Iterator[tuple[str, str]]:
        cursor = self._conn().execute(
            "SELECT workspace, id FROM jobs WHERE scheduled = 0 AND state = ? AND submitted_at <= ? "
            "ORDER BY submitted_at", (JobState.QUEUED.value, format_utc(submitted_before)))
        yield from cursor


    # --- quota ledgers and tombstones: one versioned document per key ----------------------------------------
    def get_quota_ledger(self, region: str) -> QuotaLedger | None:
        return self._get_keyed(QuotaLedger, "quota_ledgers", {"region": region})

    def save_quota_ledger(self, ledger: QuotaLedger) -> QuotaLedger:
        return self._save_keyed(ledger, "quota_ledgers", {"region": ledger.region}, f"quota ledger {ledger.region}")

    def get_tombstone(self, workspace: str, name: str) -> ClusterTombstone | None:
        return self._get_keyed(ClusterTombstone, "tombstones", {"workspace": workspace, "name": name})

    def save_tombstone(self, tombstone: ClusterTombstone) -> ClusterTombstone:
        return self._save_keyed(tombstone, "tombstones", {"workspace": tombstone.workspace, "name": tombstone.name},
                                f"tombstone {tombstone.workspace}/{tombstone.name}")

    def get_node_history_archive(self, workspace: str, name: str) -> NodeHistoryArchive | None:
        return self._get_keyed(NodeHistoryArchive, "node_history_archives", {"workspace": workspace, "name": name})

    def save_node_history_archive(self, archive: NodeHistoryArchive) -> NodeHistoryArchive:
        return self._save_keyed(archive, "node_history_archives", {"workspace": archive.workspace,
                                                                   "name": archive.name},
                                f"node history archive {archive.workspace}/{archive.name}")

    def _get_keyed(self, model: type[_Keyed], table: str, key: dict[str, str]) -> _Keyed | None:
        where = " AND ".join(f"{column}=?" for column in key)
        row = self._conn().execute(f"SELECT doc, version FROM {table} WHERE {where}", tuple(key.values())).fetchone()
        if row is None:
            return None
        document = model.model_validate_json(row[0])
        document.etag = str(row[1])
        return document

    def _save_keyed(self, document: _Keyed, table: str, key: dict[str, str], what: str) -> _Keyed:
        """Create (no etag) or replace on the version read; ``ConcurrencyConflict`` when someone wrote first."""
        if document.etag is None:
            columns = ", ".join(key)
            try:
                self._conn().execute(f"INSERT INTO {table} ({columns}, version, doc) VALUES "
                                     f"({', '.join('?' for _ in key)}, 1, ?)",
                                     (*key.values(), stored_json(document)))
            except sqlite3.IntegrityError:
                raise ConcurrencyConflict(f"{what} was created meanwhile") from None
            document.etag = "1"
            return document
        version = int(document.etag)
        where = " AND ".join(f"{column}=?" for column in key)
        cursor = self._conn().execute(f"UPDATE {table} SET version=version+1, doc=? WHERE {where} AND version=?",
                                      (stored_json(document), *key.values(), version))
        if cursor.rowcount != 1:
            raise ConcurrencyConflict(f"{what} changed since version {version}")
        document.etag = str(version + 1)
        return document


def _due(cluster: Cluster) -> str | None:
    return format_utc(cluster.next_reconcile_at) if cluster.next_reconcile_at else None


def _version(etag: str | None) -> int:
    if etag is None:
        raise ConcurrencyConflict("a replace needs the etag of the document that was read")
    return int(etag)


def _with_etag(doc: _Doc, version: int) -> _Doc:
    doc.etag = str(version)
    return doc


def _cluster(row: tuple[str, int]) -> Cluster:
    return _with_etag(Cluster.model_validate_json(row[0]), row[1])


def _job(row: tuple[str, int]) -> Job:
    return _with_etag(Job.model_validate_json(row[0]), row[1])
