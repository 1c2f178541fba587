"""How the CLI prints: the API's JSON body as it is (``--output json``), or rich tables (``--output table``)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.table import Table

from computeplane.cli_context import CliSettings

WIDTH_WHEN_NOT_A_TERMINAL = 200  # piped tables keep one row a line and ids whole


def stdout_console() -> Console:
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=WIDTH_WHEN_NOT_A_TERMINAL)

NODE_STATES = ("idle", "running", "preparing", "leaving", "preempted", "unusable")


def print_json(body: Any) -> None:
    """Exactly the API's body (re-indented), on stdout and nothing else, for scripts and ``jq``."""
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False))


def emit(settings: CliSettings, body: Any, render: Callable[[Any], RenderableType]) -> None:
    if settings.json:
        print_json(body)
    else:
        stdout_console().print(render(body))


def comparison_table(title: str, headers: list[str], rows: list[list[str]]) -> Table:
    """A table of figures: the first column names the row, the others are right-aligned numbers."""
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def cluster_table(clusters: list[dict[str, Any]]) -> Table:
    table = Table("NAME", "VM SIZE", "PRIORITY", "STATE", "ALLOCATION", "NODES", "MIN-MAX", "IDLE S", box=None)
    for c in clusters:
        scale = c.get("scale_settings") or {}
        table.add_row(c.get("name"), c.get("vm_size"), c.get("vm_priority"), c.get("provisioning_state"),
                      c.get("allocation_state"), f"{c.get('current_node_count')}/{c.get('target_node_count')}",
                      f"{scale.get('min_nodes')}-{scale.get('max_nodes')}",
                      str(scale.get("idle_seconds_before_scaledown")))
    return table


def cluster_detail(cluster: dict[str, Any]) -> Table:
    scale = cluster.get("scale_settings") or {}
    counts = cluster.get("node_state_counts") or {}
    rows: list[tuple[str, Any]] = [
        ("name", cluster.get("name")), ("workspace", cluster.get("workspace")),
        ("vm_size", cluster.get("vm_size")), ("vm_priority", cluster.get("vm_priority")),
        ("location", cluster.get("location")),
        ("provisioning_state", cluster.get("provisioning_state")),
        ("allocation_state", f"{cluster.get('allocation_state')} "
                             f"(since {cluster.get('allocation_state_transition_time')})"),
        ("nodes (current/target)", f"{cluster.get('current_node_count')}/{cluster.get('target_node_count')}"),
        ("node_state_counts", ", ".join(f"{s} {counts.get(s, 0)}" for s in NODE_STATES)),
        ("scale_settings", f"min {scale.get('min_nodes')}, max {scale.get('max_nodes')}, "
                           f"idle {scale.get('idle_seconds_before_scaledown')} s before scale-down"),
    ]
    rows += [("identity", identity_summary(cluster.get("identity")))] if cluster.get("identity") else []
    rows += low_priority_rows(cluster)
    rows += [("vnet", "/".join(str(v) for v in cluster["vnet"].values()))] if cluster.get("vnet") else []
    rows += [("tags", ", ".join(f"{k}={v}" for k, v in (cluster.get("tags") or {}).items()) or None),
             ("description", cluster.get("description")),
             ("errors", "; ".join(f"{e.get('code')}: {e.get('message')}" for e in cluster.get("errors") or [])
              or None),
             ("created_at", cluster.get("created_at")), ("modified_at", cluster.get("modified_at"))]
    rows += [("warnings", "; ".join(cluster["warnings"]))] if cluster.get("warnings") else []
    return key_value_table(rows)


def low_priority_rows(cluster: dict[str, Any]) -> list[tuple[str, Any]]:
    """A low-priority cluster's fallback to dedicated nodes, and how many nodes of each priority it holds."""
    if cluster.get("vm_priority") != "lowpriority":
        return []
    fallback = cluster.get("low_priority_fallback")
    described = "off" if not fallback else ", ".join(f"{k} {v}" for k, v in fallback.items())
    counts = cluster.get("node_priority_counts") or {}
    return [("low_priority_fallback", described),
            ("on_preemption_retries_exhausted", cluster.get("on_preemption_retries_exhausted") or "requeue"),
            ("nodes by priority",
             f"lowpriority {counts.get('lowpriority', 0)}, dedicated {counts.get('dedicated', 0)}")]


def identity_summary(identity: dict[str, Any] | None) -> str | None:
    """``SystemAssigned (client id ...)`` or ``UserAssigned: <resource id> (client id ...), ...``."""
    if not identity or not identity.get("type") or identity.get("type") == "None":
        return None
    users = identity.get("user_assigned_identities") or []
    if users:
        return "UserAssigned: " + ", ".join(f"{u.get('resource_id')} (client id {u.get('client_id')})" for u in users)
    return f"{identity.get('type')} (client id {identity.get('default_client_id')})"


def node_table(nodes: list[dict[str, Any]]) -> Table:
    table = Table("NODE", "STATE", "PRIORITY", "PRIVATE IP", "RUN", box=None)
    for n in nodes:
        table.add_row(n.get("node_id"), n.get("state"), n.get("priority"), n.get("private_ip"), n.get("run_id"))
    return table


def job_table(jobs: list[dict[str, Any]]) -> Table:
    table = Table(box=None)
    for column in ("ID", "CLUSTER", "STATE", "NODES", "ATTEMPTS", "EXIT", "SUBMITTED"):
        table.add_column(column, no_wrap=True)
    table.add_column("COMMAND", overflow="fold")
    for j in jobs:
        table.add_row(j.get("id"), j.get("cluster"), j.get("state"), str(j.get("node_count")),
                      str(j.get("attempts")), _text(j.get("exit_code")), _short_time(j.get("submitted_at")),
                      escape(_command_line(j.get("command") or [])))
    return table


def job_detail(job: dict[str, Any]) -> Table:
    rows: list[tuple[str, Any]] = [
        ("id", job.get("id")), ("cluster", job.get("cluster")), ("state", job.get("state")),
        ("reason", job.get("reason")), ("command", _command_line(job.get("command") or [])),
        ("node_count", job.get("node_count")), ("nodes", ", ".join(job.get("nodes") or []) or None),
        ("attempts", f"{job.get('attempts')} (max_retries {job.get('max_retries')})"),
        ("exit_code", job.get("exit_code")),
        ("environment", ", ".join(f"{k}={v}" for k, v in (job.get("environment_variables") or {}).items())
         or None),
        ("submitted_at", job.get("submitted_at")), ("started_at", job.get("started_at")),
        ("finished_at", job.get("finished_at")),
    ]
    table = key_value_table(rows)
    for entry in job.get("history") or []:
        reason = f" ({entry.get('reason')})" if entry.get("reason") else ""
        table.add_row("history" if entry is job["history"][0] else "",
                      escape(f"{entry.get('time')}  attempt {entry.get('attempt')}  {entry.get('state')}{reason}"))
    return table


def key_value_table(rows: list[tuple[str, Any]]) -> Table:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, escape(_text(value)))
    return table


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _short_time(value: Any) -> str:
    """``2026-11-28T14:53:31.355441Z`` -> ``2026-11-28 14:53:31`` (UTC)."""
    return str(value)[:19].replace("T", " ") if value else "-"


def _command_line(command: list[str]) -> str:
    return shlex.join(command)
