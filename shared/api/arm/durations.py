"""ISO-8601 durations as ARM writes ``nodeIdleTimeBeforeScaleDown`` (``PT1M40S``, ``PT30M``, ``P1DT2H``)."""

from __future__ import annotations

import re

from shared.domain.errors import InvalidField

_DURATION = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


def parse_duration(value: object, field: str) -> int:
    """Whole seconds of an ISO-8601 duration (days, hours, minutes, seconds; no years or months)."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None or value in ("P", "PT"):
        raise InvalidField(field, f"must be an ISO-8601 duration such as PT2M or PT1H30M, got {value!r}")
    d, h, m, s = (match.group(k) for k in "dhms")
    return int(d or 0) * 86400 + int(h or 0) * 3600 + int(m or 0) * 60 + int(float(s or 0))


def format_duration(seconds: int) -> str:
    """As Azure answers: ``PT1M40S`` for 100 seconds, ``PT30M`` for 1800, ``PT0S`` for 0."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{secs}S" if secs else "")
    return text if text != "PT" else "PT0S"
