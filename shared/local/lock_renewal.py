"""The local host's lock renewal: what the Functions host does for a queue trigger still running (up to host.json's
``maxAutoLockRenewalDuration``). Without it a function slower than the queue's lock duration would lose its
messages while it runs: another worker would be handed them, and with them the session's later messages, out of
the order the session keeps."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta

from shared.adapters.sqlite_queue import ReceivedMessage, SqliteQueue
from shared.ports import MAX_LOCK_RENEWAL

log = logging.getLogger(__name__)


class LockRenewal:
    """The batches being handled (``holding``), their locks renewed every third of the lock duration
    by ``run`` until ``max_renewal`` after they were taken, as Service Bus's auto lock renewer does."""

    def __init__(self, queue: SqliteQueue, max_renewal: timedelta = MAX_LOCK_RENEWAL) -> None:
        self._queue, self._max_renewal = queue, max_renewal.total_seconds()
        self._interval = queue.lock_duration.total_seconds() / 3
        self._held: dict[int, tuple[Sequence[ReceivedMessage], float]] = {}
        self._keys = itertools.count()
        self._lock = threading.Lock()

    @contextmanager
    def holding(self, messages: Sequence[ReceivedMessage]) -> Iterator[None]:
        """The locks of ``messages`` renewed while inside (however it is left: a function that died with its
        thread holds nothing)."""
        key = next(self._keys)
        with self._lock:
            self._held[key] = (messages, time.monotonic())
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(key, None)  # (gone already if its lock lapsed)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval):
            try:
                self.renew_held()
            except Exception:  # the queue's database busy: the next round tries again, within the lock
                log.exception("renewing message locks failed")

    def renew_held(self) -> None:
        now = time.monotonic()
        with self._lock:
            held = list(self._held.items())
        for key, (messages, taken_at) in held:
            if now - taken_at >= self._max_renewal:
                continue  # renewed long enough: the lock lapses and the messages come again
            renewed = self._queue.renew_locks(messages)
            if renewed == len(messages):
                continue
            with self._lock:  # a lapsed lock is never renewed again: warned of once, then left to lapse
                still_held = self._held.pop(key, None) is not None
            if still_held:
                log.warning("the lock of %d of %d message(s) from %s lapsed before it was renewed; they may be "
                            "delivered again while their function runs", len(messages) - renewed, len(messages),
                            messages[0].queue)
