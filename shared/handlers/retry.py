"""Retry a read-decide-write step that lost a race: read fresh state and decide again."""

from __future__ import annotations

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from shared.domain.errors import ConcurrencyConflict

retry_on_conflict = retry(
    retry=retry_if_exception_type(ConcurrencyConflict),
    stop=stop_after_attempt(10),
    wait=wait_random_exponential(multiplier=0.005, max=0.5),
    reraise=True,
)
