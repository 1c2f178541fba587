"""The real clock (tests move a fake one by hand: ``tests/fakes/clock.py``)."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)
