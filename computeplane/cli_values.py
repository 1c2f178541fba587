"""Parsing the CLI's compound values: ``KEY=VALUE`` pairs and ``--assign-identity`` ('[system]' or identity ids)."""

from __future__ import annotations

from typing import Any

import typer

SYSTEM_IDENTITY = "[system]"


def parse_key_values(values: list[str], option: str) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}``; a value without ``=`` is a usage error."""
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {value!r}", param_hint=option)
        pairs[key] = rest
    return pairs


def parse_assign_identity(values: list[str]) -> tuple[str | None, list[str] | None]:
    """CLI v1's ``--assign-identity``: ``'[system]'`` -> SystemAssigned; ids (repeated or comma-separated) ->
    UserAssigned with those ids; nothing -> no identity. Both at once is refused: a cluster has one kind."""
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    if not items:
        return None, None
    system = [i for i in items if i.lower() == SYSTEM_IDENTITY]
    user = [i for i in items if i.lower() != SYSTEM_IDENTITY]
    if system and user:
        raise typer.BadParameter("a cluster has a system-assigned identity or user-assigned identities, not both",
                                 param_hint="--assign-identity")
    if system:
        return "SystemAssigned", None
    return "UserAssigned", user


FALLBACK_NUMBERS = {"preemptions": "after_preemptions", "lost_time": "lost_time_budget_seconds"}
FALLBACK_TRIGGERS = (*FALLBACK_NUMBERS, "uniform_progress", "deadline")


def parse_low_priority_fallback(value: str | None) -> dict[str, Any] | None:
    """``--low-priority-fallback``: on, off, preemptions[:N], lost_time[:SECONDS], uniform_progress or deadline ->
    the API's ``low_priority_fallback`` body (the server checks the numbers)."""
    if value is None:
        return None
    trigger, _, number = value.strip().lower().replace("-", "_").partition(":")
    if trigger in ("off", "none") and not number:
        return None
    if trigger in ("on", "default") and not number:
        return {}
    if trigger not in FALLBACK_TRIGGERS or (number and (trigger not in FALLBACK_NUMBERS or not number.isdigit())):
        raise typer.BadParameter(f"expected on, off, preemptions[:N], lost_time[:SECONDS], uniform_progress or "
                                 f"deadline, got {value!r}", param_hint="--low-priority-fallback")
    return {"trigger": trigger} | ({FALLBACK_NUMBERS[trigger]: int(number)} if number else {})
