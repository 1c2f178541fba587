"""UTC datetimes in the domain, and how they serialise: fixed-width text, so stores can order them as strings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to it."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_utc(value: datetime) -> str:
    """Fixed width (microseconds always present) so lexical order is time order in SQLite and Cosmos."""
    utc = as_utc(value)
    return f"{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%S.%fZ")  # %Y does not pad years before 1000


UtcDatetime = Annotated[datetime, AfterValidator(as_utc), PlainSerializer(format_utc, return_type=str)]
