"""UTC datetimes in the domain, and how they serialise: fixed-width text, so stores can order them as strings."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to it."""
    if value.tzinfo is UTC:
        return value  # most are already: every stored time is validated through here
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@functools.lru_cache(maxsize=8192)
def format_utc(value: datetime) -> str:
    """Fixed width (microseconds always present) so lexical order is time order in SQLite and Cosmos.

    Remembered: a cluster document is written on nearly every event with the same node and job times in it, about
    30 of them, and a lookup costs a twentieth of formatting one. (Equal datetimes give equal text; a naive and an
    aware one are never equal.)"""
    # isoformat pads the year to four digits (strftime's %Y does not before 1000) and is a third faster.
    return as_utc(value).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


UtcDatetime = Annotated[datetime, AfterValidator(as_utc), PlainSerializer(format_utc, return_type=str)]
