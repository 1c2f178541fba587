"""The embedded queue: Service Bus semantics on SQLite, so the same functions run with no cloud.

Peek-lock with a lock duration, a delivery count, scheduled enqueue time, duplicate detection on message id within
a window, per-session order (a session's next message is not handed out while an earlier one is locked), batches of
one session's messages (as a session-enabled trigger with ``cardinality=many`` gets them), and a dead-letter table
that keeps the original body and the reason. It is safe for several processes at once.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from shared.adapters.sqlite_connections import ConnectionPerThread
from shared.domain.events import CloudEvent
from shared.domain.utc import format_utc
from shared.ports import Clock

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, message_id TEXT NOT NULL, session_id TEXT,
    body BLOB NOT NULL, enqueued_at TEXT NOT NULL, visible_at TEXT NOT NULL, delivery_count INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT NOT NULL DEFAULT '', lock_token TEXT, lock_owner TEXT);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_at, seq);
CREATE INDEX IF NOT EXISTS messages_session ON messages (queue, session_id, seq);
CREATE TABLE IF NOT EXISTS sent (queue TEXT NOT NULL, message_id TEXT NOT NULL, sent_at TEXT NOT NULL,
    PRIMARY KEY (queue, message_id));
CREATE TRIGGER IF NOT EXISTS messages_note_sent AFTER INSERT ON messages BEGIN
    INSERT INTO sent (queue, message_id, sent_at) VALUES (NEW.queue, NEW.message_id, NEW.enqueued_at)
    ON CONFLICT (queue, message_id) DO UPDATE SET sent_at = excluded.sent_at;
END;
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, message_id TEXT NOT NULL, body BLOB NOT NULL,
    reason TEXT NOT NULL, delivery_count INTEGER NOT NULL, dead_lettered_at TEXT NOT NULL);
"""

# A sending in one statement, so one implicit transaction (one commit, and no BEGIN and COMMIT around it): the
# message goes in unless the same id was sent within the window, and the trigger above notes its sending.
_SEND = """
INSERT INTO messages (queue, message_id, session_id, body, enqueued_at, visible_at)
SELECT :queue, :message_id, :session_id, :body, :now, :visible
WHERE NOT EXISTS (SELECT 1 FROM sent WHERE queue = :queue AND message_id = :message_id AND sent_at > :window_start)
"""

# A session's next message waits for every earlier one that is due, or was delivered before and waits to be tried
# again (abandoned with a delay): Service Bus hands an abandoned message of a session out again before the next.
_NEXT_MESSAGE = """
SELECT m.seq FROM messages m
WHERE m.queue = :queue AND m.visible_at <= :now AND m.locked_until <= :now
  AND (m.session_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM messages e WHERE e.queue = m.queue AND e.session_id = m.session_id AND e.seq < m.seq
          AND (e.visible_at <= :now OR e.delivery_count > 0)))
  AND (m.session_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM messages l WHERE l.queue = m.queue AND l.session_id = m.session_id AND l.locked_until > :now))
ORDER BY m.visible_at, m.seq LIMIT 1
"""
_LOCK_AND_RETURN = """
UPDATE messages SET locked_until = :locked_until, lock_token = :token, lock_owner = :owner,
                    delivery_count = delivery_count + 1
WHERE seq {which}
RETURNING seq, message_id, session_id, body, enqueued_at, delivery_count
"""
# Peek-lock, in one statement (so one implicit transaction: a crash leaves the batch untaken or taken whole), the
# message ``receive`` hands out next and, when it has a session, that session's later messages that are due and
# unlocked, in order, up to one held back for its redelivery, ``:more`` at most. A scheduled one not yet due is
# skipped, as the first is picked: it is not in the queue until its time.
_TAKE_NEXT_MESSAGES = f"""
WITH first AS MATERIALIZED (SELECT seq, session_id FROM messages WHERE seq = ({_NEXT_MESSAGE}))
""" + _LOCK_AND_RETURN.format(which="""IN (
    SELECT seq FROM first
    UNION ALL
    SELECT seq FROM (
      SELECT r.seq FROM messages r, first f
      WHERE f.session_id IS NOT NULL AND r.queue = :queue AND r.session_id = f.session_id AND r.seq > f.seq
        AND r.visible_at <= :now AND r.locked_until <= :now
        AND NOT EXISTS (SELECT 1 FROM messages h WHERE h.queue = :queue AND h.session_id = f.session_id
                          AND h.seq > f.seq AND h.seq < r.seq AND h.visible_at > :now AND h.delivery_count > 0)
      ORDER BY r.seq LIMIT :more))""")


@dataclass(frozen=True)
class ReceivedMessage:
    seq: int
    queue: str
    message_id: str
    session_id: str | None
    body: bytes
    enqueued_at: datetime
    delivery_count: int
    lock_token: str


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    message_id: str
    body: bytes
    reason: str
    delivery_count: int
    dead_lettered_at: str


def _held_by(messages: Sequence[ReceivedMessage]) -> tuple[str, list[object]]:
    """A WHERE condition matching ``messages`` only while their lock token is the one they were received with
    (settled, or taken again since: no match), and its parameters."""
    pairs = ",".join("(?, ?)" for _ in messages)
    return f"(seq, lock_token) IN (VALUES {pairs})", [v for m in messages for v in (m.seq, m.lock_token)]


class SqliteQueue:
    def __init__(self, path: Path, clock: Clock, lock_duration: timedelta = timedelta(seconds=30),
                 duplicate_window: timedelta = timedelta(minutes=10)) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path, self._clock = path, clock
        self._lock_duration, self._duplicate_window = lock_duration, duplicate_window
        self._owner = f"{os.uname().nodename}:{os.getpid()}"
        self._conn = ConnectionPerThread(self._path)
        self._arrivals: dict[str, threading.Event] = {}
        self._conn().executescript(SCHEMA)

    # --- EventBus port -----------------------------------------------------------------------------------------
    def publish(self, event: CloudEvent, *, not_before: datetime | None = None) -> None:
        self.send(event.queue, event.id, event.to_json(), session_id=event.session_id, not_before=not_before)

    def dead_letter(self, queue: str, message_id: str, body: bytes, reason: str) -> None:
        self._conn().execute(
            "INSERT INTO dead_letters (queue, message_id, body, reason, delivery_count, dead_lettered_at) "
            "VALUES (?, ?, ?, ?, 0, ?)", (queue, message_id, body, reason, self._now()))

    # --- sender ------------------------------------------------------------------------------------------------
    def send(self, queue: str, message_id: str, body: bytes, *, session_id: str | None = None,
             not_before: datetime | None = None) -> bool:
        """Enqueue unless the same message id was sent within the duplicate-detection window."""
        now = self._clock.now()
        visible = max(not_before, now) if not_before else now
        sent = self._conn().execute(_SEND, {
            "queue": queue, "message_id": message_id, "session_id": session_id, "body": body,
            "now": format_utc(now), "visible": format_utc(visible),
            "window_start": format_utc(now - self._duplicate_window)}).rowcount == 1
        if not sent:
            return False  # a duplicate: sent within the window
        if not_before is None or not_before <= now:
            self._arrival(queue).set()
        return True

    def _arrival(self, queue: str) -> threading.Event:
        arrival = self._arrivals.get(queue)  # (setdefault would build an Event on every send)
        return arrival if arrival is not None else self._arrivals.setdefault(queue, threading.Event())

    def wait_for_message(self, queue: str, timeout: float) -> None:
        """Sleep until a message is sent to ``queue`` from this process, or ``timeout`` (other processes and
        scheduled messages are found by polling)."""
        arrival = self._arrival(queue)
        arrival.wait(timeout)
        arrival.clear()

    def wake_all(self) -> None:
        for arrival in self._arrivals.values():
            arrival.set()

    # --- receiver ----------------------------------------------------------------------------------------------
    def receive(self, queue: str) -> ReceivedMessage | None:
        """Peek-lock the next deliverable message and count the delivery."""
        taken = self.receive_batch(queue, 1)
        return taken[0] if taken else None

    def receive_batch(self, queue: str, max_messages: int) -> list[ReceivedMessage]:
        """Peek-lock the next deliverable message, as ``receive`` picks it, and with it up to ``max_messages - 1`` of
        its session's later due messages, in seq order, counting a delivery on each; one lock token for them all.

        One statement, so no other receiver can take a later message of the session between the first and the
        rest, and a crash leaves the batch either untaken or taken whole. A message without a session comes alone:
        nothing orders it with any other."""
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, not {max_messages}")
        now = self._clock.now()
        conn = self._conn()
        if conn.execute("SELECT 1 FROM messages WHERE queue=? AND visible_at<=? AND locked_until<=? LIMIT 1",
                        (queue, format_utc(now), format_utc(now))).fetchone() is None:
            return []  # nothing to take: do not contend for the write lock
        token = uuid.uuid4().hex
        rows = conn.execute(_TAKE_NEXT_MESSAGES, {  # fetchall: the statement ends, and so commits, here
            "queue": queue, "now": format_utc(now), "locked_until": format_utc(now + self._lock_duration),
            "token": token, "owner": self._owner, "more": max_messages - 1}).fetchall()
        return sorted((_received(queue, row, token) for row in rows), key=lambda message: message.seq)

    def complete(self, message: ReceivedMessage) -> None:
        self._conn().execute("DELETE FROM messages WHERE seq=? AND lock_token=?", (message.seq, message.lock_token))

    def complete_all(self, messages: Sequence[ReceivedMessage]) -> None:
        """Complete a handled batch in one statement, so one commit (one write to the log, not one per message)."""
        if not messages:
            return
        held, values = _held_by(messages)
        self._conn().execute(f"DELETE FROM messages WHERE {held}", values)

    def abandon(self, message: ReceivedMessage, retry_after: timedelta = timedelta(0)) -> None:
        visible = format_utc(self._clock.now() + retry_after)
        self._conn().execute("UPDATE messages SET locked_until='', lock_token=NULL, visible_at=? "
                             "WHERE seq=? AND lock_token=?", (visible, message.seq, message.lock_token))

    @property
    def lock_duration(self) -> timedelta:
        return self._lock_duration

    def renew_locks(self, messages: Sequence[ReceivedMessage]) -> int:
        """Lock ``messages`` for another lock duration from now, as Service Bus renews a message lock; returns how
        many were renewed. A lock that lapsed (or a message settled) is not renewed: it may be someone else's now."""
        if not messages:
            return 0
        now = self._clock.now()
        held, values = _held_by(messages)
        return self._conn().execute(f"UPDATE messages SET locked_until=? WHERE {held} AND locked_until>?",
                                    [format_utc(now + self._lock_duration), *values, format_utc(now)]).rowcount

    def release_untried(self, messages: Sequence[ReceivedMessage]) -> None:
        """Hand back messages of a batch that stopped before them: never tried, so their delivery is not counted
        (they must not reach the dead-letter queue for another message's failures). They stay behind the failed
        one, which keeps its session's later messages back until it is delivered again."""
        if not messages:
            return
        held, values = _held_by(messages)
        self._conn().execute(
            "UPDATE messages SET locked_until='', lock_token=NULL, delivery_count=max(delivery_count - 1, 0) "
            f"WHERE {held}", values)

    def dead_letter_received(self, message: ReceivedMessage, reason: str) -> None:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = conn.execute("DELETE FROM messages WHERE seq=? AND lock_token=?",
                                  (message.seq, message.lock_token))
            if cursor.rowcount == 1:
                conn.execute(
                    "INSERT INTO dead_letters (queue, message_id, body, reason, delivery_count, dead_lettered_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (message.queue, message.message_id, message.body, reason, message.delivery_count, self._now()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def release_locks_of_dead_owners(self) -> int:
        """After a crash, messages locked by a process that no longer exists are handed out again at once."""
        released = 0
        host = os.uname().nodename
        owners = [r[0] for r in self._conn().execute(
            "SELECT DISTINCT lock_owner FROM messages WHERE lock_owner IS NOT NULL AND locked_until > ''")]
        for owner in owners:
            name, _, pid = owner.rpartition(":")
            if name == host and pid.isdigit() and not _process_alive(int(pid)):
                released += self._conn().execute(
                    "UPDATE messages SET locked_until='', lock_token=NULL, lock_owner=NULL WHERE lock_owner=?",
                    (owner,)).rowcount
        return released

    # --- inspection --------------------------------------------------------------------------------------------
    def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        sql = "SELECT queue, message_id, body, reason, delivery_count, dead_lettered_at FROM dead_letters"
        rows = (self._conn().execute(sql + " WHERE queue=? ORDER BY seq", (queue,)) if queue
                else self._conn().execute(sql + " ORDER BY seq"))
        return [DeadLetter(q, m, bytes(b), r, c, t) for q, m, b, r, c, t in rows]

    def pending(self, queue: str | None = None) -> int:
        if queue is None:
            return int(self._conn().execute("SELECT COUNT(*) FROM messages").fetchone()[0])
        return int(self._conn().execute("SELECT COUNT(*) FROM messages WHERE queue=?", (queue,)).fetchone()[0])

    def ready(self, queue: str) -> tuple[int, datetime | None]:
        """Messages due now (scheduled ones not yet), and since when the oldest of them has waited."""
        count, oldest = self._conn().execute("SELECT COUNT(*), MIN(visible_at) FROM messages "
                                             "WHERE queue=? AND visible_at<=?", (queue, self._now())).fetchone()
        return int(count), datetime.fromisoformat(oldest) if oldest else None

    def dead_letter_count(self, queue: str) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM dead_letters WHERE queue=?", (queue,)).fetchone()[0])

    def next_visible_at(self, queue: str) -> datetime | None:
        row = self._conn().execute("SELECT MIN(visible_at) FROM messages WHERE queue=?", (queue,)).fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    def _now(self) -> str:
        return format_utc(self._clock.now())


def _received(queue: str, row: tuple[int, str, str | None, bytes, str, int], token: str) -> ReceivedMessage:
    seq, message_id, session_id, body, enqueued_at, count = row
    return ReceivedMessage(seq=seq, queue=queue, message_id=message_id, session_id=session_id, body=bytes(body),
                           enqueued_at=datetime.fromisoformat(enqueued_at), delivery_count=count, lock_token=token)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

