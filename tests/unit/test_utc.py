"""Stored times are fixed-width UTC text, so SQLite and Cosmos order them as strings in time order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from shared.domain.utc import as_utc, format_utc

ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
times = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.sampled_from(ZONES))


@given(times, times)
def test_text_order_is_time_order_and_the_text_reads_back(a: datetime, b: datetime) -> None:
    text_a, text_b = format_utc(a), format_utc(b)
    assert len(text_a) == len(text_b) == len("2026-01-01T00:00:00.000000Z")
    assert (text_a < text_b) == (a < b)
    assert datetime.fromisoformat(text_a) == a


def test_naive_times_are_taken_as_utc() -> None:
    assert format_utc(datetime(999, 1, 2, 3, 4, 5)) == "0999-01-02T03:04:05.000000Z"
    assert as_utc(datetime(2026, 1, 1)).tzinfo is UTC
