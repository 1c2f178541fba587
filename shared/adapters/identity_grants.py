"""Which identities each running job may get tokens for, keyed by the job's secret, in SQLite.

The job runner grants when a job starts and revokes when it ends; the token endpoint (possibly another process or
thread) looks the secret up on every request. Only a SHA-256 hash of the secret is stored, so the database file
alone does not let anyone impersonate a job.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared.domain.identity import ManagedIdentity, default_identity

_SCHEMA = """
CREATE TABLE IF NOT EXISTS identity_grants (
    secret_sha256 TEXT PRIMARY KEY,
    job_id        TEXT NOT NULL,
    cluster_key   TEXT NOT NULL,
    expires_at    REAL,              -- epoch seconds; NULL: until revoked
    revoked       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS identity_grants_by_job ON identity_grants (job_id);
CREATE TABLE IF NOT EXISTS identity_grant_members (
    secret_sha256 TEXT NOT NULL,
    position      INTEGER NOT NULL,  -- keeps the cluster's order: the first user-assigned identity is the default
    client_id     TEXT NOT NULL,
    identity_json TEXT NOT NULL,
    PRIMARY KEY (secret_sha256, position)
);
CREATE INDEX IF NOT EXISTS identity_grant_members_by_client ON identity_grant_members (client_id);
"""


def new_job_secret() -> str:
    """A fresh secret for one job: what it sends as X-IDENTITY-HEADER / secret to the token endpoint."""
    return secrets.token_urlsafe(32)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Grant:
    job_id: str
    cluster_key: str
    identities: tuple[ManagedIdentity, ...]
    expires_at: datetime | None
    revoked: bool

    @property
    def default(self) -> ManagedIdentity | None:
        return default_identity(self.identities)

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class SqliteIdentityGrants:
    """Safe for several threads and processes: a connection per call, WAL, and a busy timeout for writers."""

    def __init__(self, path: Path | str, *, busy_timeout_seconds: float = 10.0) -> None:
        self._path = str(path)
        self._busy_timeout_seconds = busy_timeout_seconds
        with closing(self._connect()) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)

    def grant(self, secret: str, job_id: str, cluster_key: str, identities: Sequence[ManagedIdentity],
              expires_at: datetime | None) -> None:
        """Let the holder of ``secret`` get tokens for ``identities`` (in the cluster's order). Granting the same
        secret again replaces the grant, so a redelivered job-start is harmless."""
        if expires_at is not None and expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        secret_sha256 = _hash(secret)
        with self._transaction() as connection:
            connection.execute("DELETE FROM identity_grant_members WHERE secret_sha256 = ?", (secret_sha256,))
            connection.execute(
                "INSERT OR REPLACE INTO identity_grants (secret_sha256, job_id, cluster_key, expires_at, revoked)"
                " VALUES (?, ?, ?, ?, 0)",
                (secret_sha256, job_id, cluster_key, None if expires_at is None else expires_at.timestamp()))
            connection.executemany(
                "INSERT INTO identity_grant_members (secret_sha256, position, client_id, identity_json)"
                " VALUES (?, ?, ?, ?)",
                [(secret_sha256, position, identity.client_id, identity.model_dump_json())
                 for position, identity in enumerate(identities)])

    def lookup(self, secret: str) -> Grant | None:
        """The grant for ``secret``, revoked or expired ones included (the endpoint says why it refuses)."""
        secret_sha256 = _hash(secret)
        with closing(self._connect()) as connection:
            row = connection.execute(
                "SELECT job_id, cluster_key, expires_at, revoked FROM identity_grants WHERE secret_sha256 = ?",
                (secret_sha256,)).fetchone()
            if row is None:
                return None
            members = connection.execute(
                "SELECT identity_json FROM identity_grant_members WHERE secret_sha256 = ? ORDER BY position",
                (secret_sha256,)).fetchall()
        job_id, cluster_key, expires_at, revoked = row
        return Grant(
            job_id=job_id,
            cluster_key=cluster_key,
            identities=tuple(ManagedIdentity.model_validate_json(identity_json) for (identity_json,) in members),
            expires_at=None if expires_at is None else datetime.fromtimestamp(expires_at, UTC),
            revoked=bool(revoked),
        )

    def revoke_job(self, job_id: str) -> None:
        """The job ended: its secret stops working at once (tokens already issued live until they expire, as
        on Azure)."""
        with self._transaction() as connection:
            connection.execute("UPDATE identity_grants SET revoked = 1 WHERE job_id = ?", (job_id,))

    def revoke_identity(self, client_id: str, *, cluster_key: str | None = None) -> None:
        """Stop serving an identity: on one cluster (a user-assigned identity removed from it; the same identity
        stays usable on the other clusters it is assigned to) or everywhere (``cluster_key=None``: a
        system-assigned identity deleted with its cluster)."""
        wanted = client_id.lower()
        with self._transaction() as connection:
            if cluster_key is None:
                connection.execute("DELETE FROM identity_grant_members WHERE client_id = ?", (wanted,))
            else:
                connection.execute(
                    "DELETE FROM identity_grant_members WHERE client_id = ? AND secret_sha256 IN"
                    " (SELECT secret_sha256 FROM identity_grants WHERE cluster_key = ?)",
                    (wanted, cluster_key))

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are begun explicitly, so writers take the lock up front (IMMEDIATE)
        # instead of failing with "database is locked" when upgrading a read lock.
        connection = sqlite3.connect(self._path, timeout=self._busy_timeout_seconds, isolation_level=None)
        connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_seconds * 1000)}")
        return connection

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with closing(self._connect()) as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
