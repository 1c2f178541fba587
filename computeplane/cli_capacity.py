"""``computeplane vm-sizes list`` and ``computeplane quota show|usages``: what can be provisioned, and where."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from computeplane.cli_context import GlobalOptionsCommand, settings_of
from computeplane.cli_output import emit

vm_sizes_app = typer.Typer(help="The VM size catalogue.", no_args_is_help=True)
quota_app = typer.Typer(help="vCPU quotas and their usage, per region.", no_args_is_help=True)

LocationOption = Annotated[str | None, typer.Option("--location", "-l", help="Region (default: the workspace's).",
                                                    show_default=False)]


@vm_sizes_app.command("list", cls=GlobalOptionsCommand)
def list_vm_sizes(ctx: typer.Context, location: LocationOption = None) -> None:
    """VM sizes: family, vCPUs, memory, GPUs and the list price per hour (dedicated and low priority)."""
    settings = settings_of(ctx)
    with settings.client() as client:
        emit(settings, client.list_vm_sizes(location), vm_size_table)


@quota_app.command("show", cls=GlobalOptionsCommand)
def show_quota(ctx: typer.Context, location: LocationOption = None) -> None:
    """vCPU limits: dedicated per VM family, the regional total, and the low-priority pool."""
    settings = settings_of(ctx)
    with settings.client() as client:
        emit(settings, client.list_quotas(location), quota_table)


@quota_app.command("usages", cls=GlobalOptionsCommand)
def show_usages(ctx: typer.Context, location: LocationOption = None) -> None:
    """vCPUs in use against each limit."""
    settings = settings_of(ctx)
    with settings.client() as client:
        emit(settings, client.list_usages(location), usage_table)


def vm_size_table(sizes: list[dict[str, Any]]) -> Table:
    table = Table("NAME", "FAMILY", "VCPUS", "MEMORY GB", "GPUS", "$/H DEDICATED", "$/H LOW PRIORITY", box=None)
    for s in sizes:
        gpus = f"{s.get('gpus')} x {s.get('gpu_model')}" if s.get("gpus") else "0"
        table.add_row(s.get("name"), s.get("family"), str(s.get("vcpus")), str(s.get("memory_gb")), gpus,
                      str(s.get("price_per_hour_dedicated")), str(s.get("price_per_hour_low_priority")))
    return table


def quota_table(quotas: dict[str, Any]) -> Table:
    table = Table("QUOTA", "VCPU LIMIT", box=None, title=f"region {quotas.get('location')}", title_justify="left")
    table.add_row("total regional dedicated", str(quotas.get("total_regional_dedicated_vcpus")))
    table.add_row("low priority (all families)", str(quotas.get("low_priority_vcpus")))
    for family, limit in (quotas.get("families") or {}).items():
        table.add_row(f"dedicated {family}", str(limit))
    return table


def usage_table(usages: dict[str, Any]) -> Table:
    table = Table("QUOTA", "IN USE", "LIMIT", box=None, title=f"region {usages.get('location')}",
                  title_justify="left")
    for label, key in (("total regional dedicated", "total_regional_dedicated_vcpus"),
                       ("low priority (all families)", "low_priority_vcpus")):
        entry = usages.get(key) or {}
        table.add_row(label, str(entry.get("current")), str(entry.get("limit")))
    for family in usages.get("families") or []:
        table.add_row(f"dedicated {family.get('family')}", str(family.get("current")), str(family.get("limit")))
    return table
