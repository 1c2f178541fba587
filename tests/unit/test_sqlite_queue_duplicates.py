"""The embedded queue's duplicate detection, as Service Bus' (``requiresDuplicateDetection``): a message id sent again
within the window is dropped; once the window has passed since it was last sent, it is a new message."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from shared.adapters.sqlite_queue import SqliteQueue
from tests.fakes.clock import FakeClock


def _bodies(queue: SqliteQueue, name: str) -> list[bytes]:
    found = []
    while (message := queue.receive(name)) is not None:
        found.append(message.body)
        queue.complete(message)
    return found


def test_an_id_sent_again_within_the_window_is_dropped_and_after_it_is_sent(tmp_path: Path) -> None:
    clock = FakeClock()
    queue = SqliteQueue(tmp_path / "queue.db", clock, duplicate_window=timedelta(minutes=10))
    assert queue.send("job-events", "m-1", b"first") is True
    clock.advance(timedelta(minutes=9, seconds=59))
    assert queue.send("job-events", "m-1", b"again, too soon") is False
    assert queue.send("scale-events", "m-1", b"same id, other queue") is True  # detection is per queue
    assert _bodies(queue, "job-events") == [b"first"]
    clock.advance(timedelta(seconds=1))  # the window counts from the first sending, not from the dropped one
    assert queue.send("job-events", "m-1", b"after the window") is True
    assert queue.send("job-events", "m-1", b"and again at once") is False  # the window starts over
    assert _bodies(queue, "job-events") == [b"after the window"]
    assert _bodies(queue, "scale-events") == [b"same id, other queue"]
