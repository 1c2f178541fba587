"""An in-memory Service Bus stand-in whose delivery can be made hostile: ``DuplicatingBus``.

It is the EventBus the handlers publish to AND the queue a test pumps. Each publish can be delivered two or three
times, copies arriving late (after newer messages), queues interleaved at random, and scheduled messages held back
past their time. The messages of one session visible together are handed out as one batch (``take_batch``), as to
a queue trigger declared with ``cardinality=many``. A delivery that fails is abandoned and offered again after the
local host's back-off; after ``MAX_DELIVERY_COUNT`` deliveries it is dead-lettered with the reason, keeping the
original body, as Service Bus does.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.domain.events import CloudEvent
from shared.local.host import redelivery_delay
from shared.ports import MAX_DELIVERY_COUNT, Clock


@dataclass(frozen=True)
class DeliveryChaos:
    copies: tuple[int, int] = (1, 1)  # each publish is delivered between this many times (inclusive)
    duplicate_delay: tuple[float, float] = (0.0, 0.0)  # extra copies arrive this many seconds later
    late_scheduled: tuple[float, float] = (0.0, 0.0)  # scheduled messages arrive this many seconds after their time
    shuffle: bool = False  # hand out any deliverable message, not the oldest
    respect_sessions: bool = True  # never hand out a session's message while an older one of it is visible or locked
    lock_seconds: float = 30.0  # a message taken by a process that died is offered again after this


@dataclass
class Message:
    seq: int
    queue: str
    message_id: str
    session: str | None
    body: bytes
    visible_at: datetime
    copy: int = 0  # 0 for the message as published, n for its n-th extra copy
    delivery_count: int = 0
    locked_until: datetime | None = None
    delivered_at: list[datetime] = field(default_factory=list)


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    message_id: str
    body: bytes
    reason: str
    delivery_count: int


@dataclass
class BrokerStats:
    published: int = 0
    deliveries: int = 0
    duplicate_deliveries: int = 0
    abandoned: int = 0


class DuplicatingBus:
    def __init__(self, clock: Clock, chaos: DeliveryChaos = DeliveryChaos(), seed: int = 0) -> None:
        self._clock, self.chaos = clock, chaos
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._groups: dict[tuple[str, str | None], list[Message]] = {}  # (queue, session) -> messages by seq
        self._seq = 0
        self.dead_letters: list[DeadLetter] = []
        self.bodies: dict[str, bytes] = {}  # message id -> the body first published under it
        self.completed_ids: Counter[str] = Counter()
        self.finished: list[Message] = []  # completed or dead-lettered, with their delivery times
        self.stats = BrokerStats()

    # --- EventBus ----------------------------------------------------------------------------------------------
    def publish(self, event: CloudEvent, *, not_before: datetime | None = None) -> None:
        self.send(event.queue, event.id, event.to_json(), session=event.session_id, not_before=not_before)

    def dead_letter(self, queue: str, message_id: str, body: bytes, reason: str) -> None:
        with self._lock:
            self.dead_letters.append(DeadLetter(queue, message_id, body, reason, 0))

    # --- sending -----------------------------------------------------------------------------------------------
    def send(self, queue: str, message_id: str, body: bytes, *, session: str | None = None,
             not_before: datetime | None = None) -> None:
        with self._lock:
            now = self._clock.now()
            self.stats.published += 1
            self.bodies.setdefault(message_id, body)
            visible = max(not_before, now) if not_before else now
            if not_before is not None:
                visible += timedelta(seconds=self._rng.uniform(*self.chaos.late_scheduled))
            copies = self._rng.randint(*self.chaos.copies)
            for n in range(copies):
                late = timedelta(seconds=self._rng.uniform(*self.chaos.duplicate_delay)) if n else timedelta(0)
                self._seq += 1
                self._groups.setdefault((queue, session), []).append(
                    Message(self._seq, queue, message_id, session, body, visible + late, copy=n))

    # --- receiving ---------------------------------------------------------------------------------------------
    def take(self) -> Message | None:
        """Lock and hand out one deliverable message (visible now, its session free), counting the delivery."""
        batch = self.take_batch(1)
        return batch[0] if batch else None

    def take_batch(self, max_messages: int) -> list[Message]:
        """What a session-enabled trigger with ``cardinality=many`` is handed: the message ``take`` would pick, then,
        when sessions are respected and it has one, the messages of its session that follow it and are visible now,
        in order, up to ``max_messages`` in all; each locked and its delivery counted. Otherwise that one message
        (without sessions the chaos hands out any visible message, so a batch would promise an order it breaks)."""
        if max_messages < 1:
            raise ValueError(f"a batch holds at least one message, not {max_messages}")
        with self._lock:
            now = self._clock.now()
            first = self._first_ready(now)
            if first is None:
                return []
            batch = [first]
            if self.chaos.respect_sessions and first.session is not None:
                group = self._groups[(first.queue, first.session)]  # kept in seq order: appended as sent
                batch += [m for m in group if m.seq > first.seq and m.visible_at <= now][:max_messages - 1]
            for message in batch:
                self._hand_out(message, now)
            return batch

    def _first_ready(self, now: datetime) -> Message | None:
        ready: list[Message] = []
        for (_, session), group in self._groups.items():
            if self.chaos.respect_sessions and session is not None:
                if any(self._locked(m, now) for m in group):
                    continue
                visible = [m for m in group if m.visible_at <= now]
                ready += [min(visible, key=lambda m: m.seq)] if visible else []
            else:
                ready += [m for m in group if m.visible_at <= now and not self._locked(m, now)]
        if not ready:
            return None
        return self._rng.choice(ready) if self.chaos.shuffle else min(ready, key=lambda m: (m.visible_at, m.seq))

    def _hand_out(self, message: Message, now: datetime) -> None:
        message.delivery_count += 1
        message.delivered_at.append(now)
        message.locked_until = now + timedelta(seconds=self.chaos.lock_seconds)
        self.stats.deliveries += 1
        if message.copy or message.delivery_count > 1:
            self.stats.duplicate_deliveries += 1

    def _locked(self, message: Message, now: datetime) -> bool:
        return message.locked_until is not None and message.locked_until > now

    def _remove(self, message: Message) -> None:
        group = self._groups[(message.queue, message.session)]
        group.remove(message)
        if not group:
            del self._groups[(message.queue, message.session)]

    def complete(self, message: Message) -> None:
        with self._lock:
            self._remove(message)
            self.finished.append(message)
            self.completed_ids[message.message_id] += 1

    def abandon(self, message: Message, reason: str) -> None:
        """The handler failed: offer it again after the host's back-off, or dead-letter it after the last try."""
        with self._lock:
            if message.delivery_count >= MAX_DELIVERY_COUNT:
                self._dead_letter(message, reason)
                return
            message.locked_until = None
            message.visible_at = self._clock.now() + redelivery_delay(message.delivery_count)
            self.stats.abandoned += 1

    def release_untried(self, message: Message) -> None:
        """A message of a batch that stopped before it: handed back, its delivery not counted, never dead-lettered
        for another message's failure (as the local host does with the embedded queue)."""
        with self._lock:
            message.delivery_count -= 1
            message.locked_until = None

    def lose_lock(self, message: Message) -> None:
        """The process holding the message died: the lock runs out and the message is offered again."""
        with self._lock:
            if message.delivery_count >= MAX_DELIVERY_COUNT:
                self._dead_letter(message, "the process died each time")

    def _dead_letter(self, message: Message, reason: str) -> None:
        self._remove(message)
        self.finished.append(message)
        self.dead_letters.append(DeadLetter(message.queue, message.message_id, message.body,
                                            f"MaxDeliveryCountExceeded: {reason}", message.delivery_count))

    def next_visible_at(self) -> datetime | None:
        """When a message may next be handed out (later than now: what is visible now waits for a session lock)."""
        with self._lock:
            now = self._clock.now()
            times = [t for m in self._messages() if (t := max(m.visible_at, m.locked_until or m.visible_at)) > now]
            return min(times) if times else None

    def _messages(self) -> list[Message]:
        return [m for group in self._groups.values() for m in group]
