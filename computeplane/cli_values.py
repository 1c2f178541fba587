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


def parse_low_priority_fallback(value: str | None) -> dict[str, Any] | None:
    """``--low-priority-fallback``: on, off, preemptions[:N], lost_time[:SECONDS] or deadline -> the API's body."""
    if value is None:
        return None
    from shared.domain.low_priority import fallback_from_text  # pydantic only: light enough for the CLI

    try:
        fallback = fallback_from_text(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--low-priority-fallback") from None
    return None if fallback is None else fallback.model_dump(mode="json")
