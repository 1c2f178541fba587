"""A step that lost a race is made again on fresh state, a bounded number of times; other errors are not retried."""

from __future__ import annotations

import pytest

from shared.domain.errors import ConcurrencyConflict, InvalidEvent
from shared.handlers.retry import ATTEMPTS, retry_on_conflict


class Step:
    """Loses ``conflicts`` races, then answers with the number of its call."""

    def __init__(self, conflicts: int, error: type[Exception] = ConcurrencyConflict) -> None:
        self.conflicts, self.error, self.calls = conflicts, error, 0

    @retry_on_conflict
    def run(self, value: str, *, suffix: str = "") -> str:
        self.calls += 1
        if self.calls <= self.conflicts:
            raise self.error(f"lost race {self.calls}")
        return f"{value}{suffix} on call {self.calls}"


@pytest.mark.parametrize("conflicts", [0, 1, 2, ATTEMPTS - 1])
def test_a_step_that_lost_races_is_made_again_until_it_wins(conflicts: int) -> None:
    step = Step(conflicts)
    assert step.run("decided", suffix="!") == f"decided! on call {conflicts + 1}"
    assert step.calls == conflicts + 1


def test_a_step_that_keeps_losing_gives_up_with_the_last_conflict_after_every_attempt() -> None:
    step = Step(conflicts=ATTEMPTS + 5)
    with pytest.raises(ConcurrencyConflict, match=f"lost race {ATTEMPTS}$"):
        step.run("decided")
    assert step.calls == ATTEMPTS


def test_other_errors_are_not_retried() -> None:
    step = Step(conflicts=1, error=InvalidEvent)
    with pytest.raises(InvalidEvent):
        step.run("decided")
    assert step.calls == 1
