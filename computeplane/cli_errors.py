"""The one place where client errors become a message on stderr and an exit code (never a traceback).

Exit codes: 0 success; 1 a failed operation (404, 409, job or cluster Failed/Canceled, wait timeout, server error);
2 bad input (the API's 400/422 naming the field, a usage error, a missing or wrong key); 3 the server cannot be
reached (the message names the address tried).
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from computeplane.cli_context import wants_json
from computeplane.errors import (
    AccessDeniedError,
    ComputePlaneError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    ServerUnreachable,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3

stderr_console = Console(stderr=True, highlight=False, soft_wrap=True)


def exit_code_for(error: ComputePlaneError) -> int:
    if isinstance(error, ServerUnreachable):
        return EXIT_UNREACHABLE
    if isinstance(error, InvalidInputError):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


def report_error(error: ComputePlaneError) -> None:
    stderr_console.print(f"[bold red]Error:[/] {escape(error.message)} [dim]({escape(error.code)})[/]")
    for detail in error.details:
        stderr_console.print(f"  - {escape(_describe_detail(detail))}")
    hint = _hint_for(error)
    if hint:
        stderr_console.print(f"[dim]{escape(hint)}[/]")


def _describe_detail(detail: dict[str, Any]) -> str:
    field = detail.get("field", "?")
    if "rule" in detail:
        return f"{field}: {detail['rule']}"
    if "existing" in detail or "requested" in detail:
        return f"{field}: existing {detail.get('existing')!r}, requested {detail.get('requested')!r}"
    rest = ", ".join(f"{k}={v!r}" for k, v in detail.items() if k != "field")
    return f"{field}: {rest}" if rest else str(field)


def _hint_for(error: ComputePlaneError) -> str | None:
    if isinstance(error, AccessDeniedError):
        return "The server requires a key: pass --api-key or set COMPUTEPLANE_API_KEY."
    if isinstance(error, ConflictError) and error.code == "ComputeTargetSpecConflict":
        return "Use another name, or `computeplane cluster update` for min/max nodes and the idle timeout."
    if isinstance(error, NotFoundError) and error.code == "ComputeTargetNotFound":
        return "`computeplane cluster list` shows the clusters of this workspace (--workspace to choose another)."
    return None


def report_error_as_json(code: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
    """Under ``-o json`` an error is one JSON object on stderr (the API's shape), so a script can parse it too."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    typer.echo(json.dumps({"error": body}, ensure_ascii=False), err=True)


class ErrorReportingGroup(TyperGroup):
    """The root command group: runs the command, and turns a ComputePlaneError into a message and an exit code
    (under ``-o json``, usage errors and refusals alike are a JSON object on stderr)."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except ComputePlaneError as error:
            if wants_json(ctx):
                report_error_as_json(error.code, error.message, error.details)
            else:
                report_error(error)
            raise typer.Exit(exit_code_for(error)) from None
        except typer.BadParameter as error:  # typer's own usage errors (bad or missing option values)
            if not wants_json(ctx):
                raise
            report_error_as_json("UsageError", error.format_message())
            raise typer.Exit(EXIT_BAD_INPUT) from None
