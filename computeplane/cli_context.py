"""What every CLI command needs: where the server is, which workspace, how to print, the key.

The global options are read before the command (``computeplane --output json cluster list``) and, through
:class:`GlobalOptionsCommand`, after it too (``computeplane cluster list -o json``), as ``az`` allows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import typer
from typer.core import TyperCommand

from computeplane.client import DEFAULT_ENDPOINT, DEFAULT_WORKSPACE, ComputePlaneClient

ENDPOINT_ENV = "COMPUTEPLANE_ENDPOINT"
WORKSPACE_ENV = "COMPUTEPLANE_WORKSPACE"


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


@dataclass(frozen=True)
class CliSettings:
    endpoint: str = DEFAULT_ENDPOINT
    workspace: str = DEFAULT_WORKSPACE
    output: OutputFormat = OutputFormat.TABLE
    api_key: str | None = None

    @property
    def json(self) -> bool:
        return self.output is OutputFormat.JSON

    def client(self) -> ComputePlaneClient:
        return ComputePlaneClient(self.endpoint, self.workspace, api_key=self.api_key)


OUTPUT_META_KEY = "computeplane.output"  # ctx.meta is shared by a command and its group: the error handler reads it


def wants_json(ctx: typer.Context) -> bool:
    return ctx.meta.get(OUTPUT_META_KEY) is OutputFormat.JSON


def settings_of(ctx: typer.Context) -> CliSettings:
    return ctx.obj if isinstance(ctx.obj, CliSettings) else CliSettings()


# option -> CliSettings field, for the options a command accepts after its own name
GLOBAL_OPTIONS = {"--endpoint": "endpoint", "--workspace": "workspace", "--output": "output", "-o": "output",
                  "--api-key": "api_key"}


class GlobalOptionsCommand(TyperCommand):
    """A command that also takes the global options after its name (they win over the ones before it).

    Scanning stops at ``--`` and, for commands that take a program and its arguments, at the first positional,
    so ``job submit -c cpu -- python train.py --output out`` keeps ``--output out`` for the program.
    """

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        remaining, overrides = self._extract_global_options(ctx, args)
        if overrides:
            if "output" in overrides:
                overrides["output"] = _output_format(overrides["output"])
                ctx.meta[OUTPUT_META_KEY] = overrides["output"]
            ctx.obj = replace(settings_of(ctx), **overrides)
        return super().parse_args(ctx, remaining)

    def _extract_global_options(self, ctx: typer.Context, args: list[str]) -> tuple[list[str], dict[str, Any]]:
        own_value_options, own_flags = self._own_options()
        remaining: list[str] = []
        overrides: dict[str, Any] = {}
        i = 0
        while i < len(args):
            token = args[i]
            name, has_inline_value, inline_value = token.partition("=")
            if token == "--":
                remaining.extend(args[i:])
                break
            if name in GLOBAL_OPTIONS and name not in own_value_options and name not in own_flags:
                if has_inline_value:
                    overrides[GLOBAL_OPTIONS[name]] = inline_value
                    i += 1
                    continue
                if i + 1 >= len(args):
                    raise typer.BadParameter(f"{name} needs a value")
                overrides[GLOBAL_OPTIONS[name]] = args[i + 1]
                i += 2
                continue
            remaining.append(token)
            i += 1
            if token.startswith("-") and len(token) > 1:
                if name in own_value_options and not has_inline_value and i < len(args):
                    remaining.append(args[i])
                    i += 1
            elif not ctx.allow_interspersed_args:
                remaining.extend(args[i:])
                break
        return remaining, overrides

    def _own_options(self) -> tuple[set[str], set[str]]:
        value_options: set[str] = set()
        flags: set[str] = set()
        for param in self.params:
            if getattr(param, "param_type_name", "") != "option":
                continue
            names = {*param.opts, *param.secondary_opts}
            if getattr(param, "is_flag", False) or getattr(param, "count", False):
                flags |= names
            else:
                value_options |= names
        return value_options, flags


def _output_format(value: str) -> OutputFormat:
    try:
        return OutputFormat(value)
    except ValueError:
        raise typer.BadParameter(f"--output must be 'table' or 'json', not {value!r}") from None
