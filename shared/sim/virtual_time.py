"""Virtual time: seconds since the start of a simulation, and the domain's UTC datetimes for the same instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

SIM_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def to_datetime(seconds: float) -> datetime:
    return SIM_EPOCH + timedelta(seconds=seconds)


def to_seconds(moment: datetime) -> float:
    return (moment - SIM_EPOCH).total_seconds()
