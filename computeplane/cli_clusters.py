"""``computeplane cluster ...``: create, show, list, update, delete, nodes, identity, preempt-node.

Flag names follow CLI v1 (``az ml computetarget create amlcompute``): ``-n/--name``, ``-s/--vm-size``,
``-p/--vm-priority``, ``-l/--location``, ``--assign-identity``, ``--tag``. The name can also come first, positionally.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any

import typer

from computeplane.cli_context import GlobalOptionsCommand, settings_of
from computeplane.cli_output import cluster_detail, cluster_table, emit, identity_summary, node_table
from computeplane.cli_progress import ProgressLines, cluster_progress_line
from computeplane.cli_values import parse_assign_identity, parse_key_values, parse_low_priority_fallback
from computeplane.client import ComputePlaneClient
from computeplane.waiting import DEFAULT_WAIT_TIMEOUT_SECONDS, wait_for_cluster, wait_for_cluster_deletion

cluster_app = typer.Typer(help="Create and manage compute clusters (AmlCompute).", no_args_is_help=True)
identity_app = typer.Typer(help="Managed identities of a cluster (system-assigned, or user-assigned ids).",
                           no_args_is_help=True)
cluster_app.add_typer(identity_app, name="identity")


class VmPriority(StrEnum):
    DEDICATED = "dedicated"
    LOWPRIORITY = "lowpriority"


class AfterPreemptionRetries(StrEnum):
    DEDICATED = "dedicated"
    REQUEUE = "requeue"
    FAIL = "fail"


NameArgument = Annotated[str | None, typer.Argument(help="Cluster name (or -n/--name).", metavar="NAME",
                                                    show_default=False)]
NameOption = Annotated[str | None, typer.Option("--name", "-n", help="Cluster name.", show_default=False)]
WaitOption = Annotated[bool, typer.Option("--wait", help="Wait and show progress until it is done.")]
TimeoutOption = Annotated[float, typer.Option("--timeout", help="Seconds to wait with --wait (25 minutes as the SDK).")]


def cluster_name(positional: str | None, option: str | None) -> str:
    if positional and option and positional != option:
        raise typer.BadParameter(f"two different names given: {positional!r} and --name {option!r}")
    name = positional or option
    if not name:
        raise typer.BadParameter("give the cluster name, as NAME or -n/--name NAME")
    return name


@cluster_app.command("create", cls=GlobalOptionsCommand)
def create(
    ctx: typer.Context,
    name_arg: NameArgument = None,
    name: NameOption = None,
    vm_size: Annotated[str, typer.Option("--vm-size", "-s", help="VM size, e.g. STANDARD_D2_V2.")] = "",
    max_nodes: Annotated[int | None, typer.Option("--max-nodes", help="Most nodes to scale up to (required).",
                                                  show_default=False)] = None,
    min_nodes: Annotated[int | None, typer.Option("--min-nodes", help="Nodes kept when idle \\[default: 0].",
                                                  show_default=False)] = None,
    vm_priority: Annotated[VmPriority | None, typer.Option("--vm-priority", "-p", help="\\[default: dedicated]",
                                                           show_default=False)] = None,
    idle_seconds: Annotated[int | None, typer.Option("--idle-seconds-before-scaledown",
                                                     help="Idle seconds before a node goes away \\[default: 1800].",
                                                     show_default=False)] = None,
    location: Annotated[str | None, typer.Option("--location", "-l", help="Region (default: the workspace's).",
                                                 show_default=False)] = None,
    assign_identity: Annotated[list[str] | None, typer.Option(
        "--assign-identity", help="'\\[system]' for a system-assigned identity, else user-assigned identity ids "
                                  "(repeat, or separate with commas).", show_default=False)] = None,
    vnet_resourcegroup_name: Annotated[str | None, typer.Option(show_default=False)] = None,
    vnet_name: Annotated[str | None, typer.Option(show_default=False)] = None,
    subnet_name: Annotated[str | None, typer.Option(show_default=False)] = None,
    admin_username: Annotated[str | None, typer.Option(show_default=False)] = None,
    admin_user_password: Annotated[str | None, typer.Option(show_default=False)] = None,
    admin_user_ssh_key: Annotated[str | None, typer.Option(show_default=False)] = None,
    remote_login_port_public_access: Annotated[str | None, typer.Option(
        help="Enabled, Disabled or NotSpecified.", show_default=False)] = None,
    enable_node_public_ip: Annotated[bool | None, typer.Option(
        "--enable-node-public-ip/--disable-node-public-ip", show_default=False)] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="KEY=VALUE (repeat).",
                                                  show_default=False)] = None,
    description: Annotated[str | None, typer.Option("--description", "-d", show_default=False)] = None,
    low_priority_fallback: Annotated[str | None, typer.Option(
        "--low-priority-fallback", help="Low priority: run jobs that preemption keeps back on dedicated nodes: on "
        "(the default trigger), preemptions[:N], lost_time[:SECONDS], deadline, or off.", show_default=False)] = None,
    on_preemption_retries_exhausted: Annotated[AfterPreemptionRetries | None, typer.Option(
        "--on-preemption-retries-exhausted", help="Low priority: what a job whose preemption retries ran out does "
        "\\[default: requeue].", show_default=False)] = None,
    wait: WaitOption = False,
    timeout: TimeoutOption = DEFAULT_WAIT_TIMEOUT_SECONDS,
) -> None:
    """Create a cluster, or find the same one (a different spec under the same name is refused)."""
    cluster = cluster_name(name_arg, name)
    if not vm_size:
        raise typer.BadParameter("--vm-size/-s is required, e.g. -s STANDARD_D2_V2", param_hint="--vm-size")
    if max_nodes is None:
        raise typer.BadParameter("--max-nodes is required", param_hint="--max-nodes")
    identity_type, identity_ids = parse_assign_identity(assign_identity or [])
    settings = settings_of(ctx)
    with settings.client() as client:
        result = client.create_cluster(
            cluster, vm_size, max_nodes, min_nodes=min_nodes, vm_priority=vm_priority.value if vm_priority else None,
            idle_seconds_before_scaledown=idle_seconds, location=location,
            tags=parse_key_values(tag or [], "--tag") or None, description=description,
            vnet_resourcegroup_name=vnet_resourcegroup_name, vnet_name=vnet_name, subnet_name=subnet_name,
            identity_type=identity_type, identity_id=identity_ids, admin_username=admin_username,
            admin_user_password=admin_user_password, admin_user_ssh_key=admin_user_ssh_key,
            remote_login_port_public_access=remote_login_port_public_access,
            enable_node_public_ip=enable_node_public_ip,
            low_priority_fallback=parse_low_priority_fallback(low_priority_fallback),
            on_preemption_retries_exhausted=on_preemption_retries_exhausted.value
            if on_preemption_retries_exhausted else None)
        body = result.cluster
        if not settings.json:
            verb = "Creating" if result.created else "Found existing"
            typer.echo(f"{verb} cluster '{cluster}' in workspace '{settings.workspace}'.", err=True)
        for warning in body.get("warnings") or []:
            typer.echo(f"Warning: {warning}", err=True)
        if wait:
            body = _wait_until_ready(client, cluster, timeout)
    emit(settings, body, cluster_detail)


def _wait_until_ready(client: ComputePlaneClient, name: str, timeout: float) -> dict[str, Any]:
    with ProgressLines(f"waiting for cluster {name}") as progress:
        ready = wait_for_cluster(client, name, timeout=timeout,
                                 on_progress=lambda c: progress.show(cluster_progress_line(c)))
        progress.note(f"Cluster '{name}' is ready: {ready.get('provisioning_state')}, "
                      f"{ready.get('current_node_count')} node(s).")
    return ready


@cluster_app.command("show", cls=GlobalOptionsCommand)
def show(ctx: typer.Context, name_arg: NameArgument = None, name: NameOption = None) -> None:
    """Status of a cluster: provisioning and allocation state, node counts, scale settings, errors."""
    settings = settings_of(ctx)
    with settings.client() as client:
        emit(settings, client.get_cluster(cluster_name(name_arg, name)), cluster_detail)


@cluster_app.command("list", cls=GlobalOptionsCommand)
def list_clusters(ctx: typer.Context) -> None:
    """The clusters of the workspace."""
    settings = settings_of(ctx)
    with settings.client() as client:
        emit(settings, client.list_clusters(), cluster_table)


@cluster_app.command("update", cls=GlobalOptionsCommand)
def update(
    ctx: typer.Context,
    name_arg: NameArgument = None,
    name: NameOption = None,
    min_nodes: Annotated[int | None, typer.Option("--min-nodes", show_default=False)] = None,
    max_nodes: Annotated[int | None, typer.Option("--max-nodes", show_default=False)] = None,
    idle_seconds: Annotated[int | None, typer.Option("--idle-seconds-before-scaledown", show_default=False)] = None,
) -> None:
    """Change min nodes, max nodes or the idle time before scale-down of a live cluster."""
    cluster = cluster_name(name_arg, name)
    if min_nodes is None and max_nodes is None and idle_seconds is None:
        raise typer.BadParameter("give at least one of --min-nodes, --max-nodes, --idle-seconds-before-scaledown")
    settings = settings_of(ctx)
    with settings.client() as client:
        emit(settings, client.update_cluster(cluster, min_nodes=min_nodes, max_nodes=max_nodes,
                                             idle_seconds_before_scaledown=idle_seconds), cluster_detail)


@cluster_app.command("delete", cls=GlobalOptionsCommand)
def delete(
    ctx: typer.Context,
    name_arg: NameArgument = None,
    name: NameOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    wait: WaitOption = False,
    timeout: TimeoutOption = DEFAULT_WAIT_TIMEOUT_SECONDS,
) -> None:
    """Delete a cluster and its nodes (running jobs are stopped)."""
    cluster = cluster_name(name_arg, name)
    settings = settings_of(ctx)
    if not yes:
        if not sys.stdin.isatty():
            raise typer.BadParameter("--yes is required to delete when not run interactively", param_hint="--yes")
        typer.confirm(f"Delete cluster '{cluster}' in workspace '{settings.workspace}'?", abort=True)
    with settings.client() as client:
        body = client.delete_cluster(cluster)
        if wait:
            with ProgressLines(f"deleting cluster {cluster}") as progress:
                wait_for_cluster_deletion(client, cluster, timeout=timeout,
                                          on_progress=lambda c: progress.show(cluster_progress_line(c)))
                progress.note(f"Cluster '{cluster}' is deleted.")
    emit(settings, body, cluster_detail)


@cluster_app.command("nodes", cls=GlobalOptionsCommand)
def nodes(ctx: typer.Context, name_arg: NameArgument = None, name: NameOption = None) -> None:
    """The nodes of a cluster: id, state, private IP and the run on it."""
    settings = settings_of(ctx)
    with settings.client() as client:
        emit(settings, client.list_nodes(cluster_name(name_arg, name)), node_table)


@cluster_app.command("preempt-node", cls=GlobalOptionsCommand)
def preempt_node(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Cluster name.", metavar="NAME")],
                 node_id: Annotated[str, typer.Argument(help="Node id (see `cluster nodes`).", metavar="NODE")]
                 ) -> None:
    """Preempt a node as Azure does a low-priority VM; its job is requeued."""
    settings = settings_of(ctx)
    with settings.client() as client:
        emit(settings, client.preempt_node(name, node_id), lambda node: node_table([node]))


IdentitiesOption = Annotated[list[str] | None, typer.Option(
    "--identities", "--identity", "-i",
    help="'\\[system]', or user-assigned identity ids (repeat, or separate with commas).", show_default=False)]


@identity_app.command("add", cls=GlobalOptionsCommand)
def identity_add(ctx: typer.Context, name_arg: NameArgument = None, name: NameOption = None,
                 identities: IdentitiesOption = None) -> None:
    """Assign a system-assigned identity ('\\[system]') or user-assigned identities to a cluster."""
    cluster = cluster_name(name_arg, name)
    identity_type, identity_ids = parse_assign_identity(identities or [])
    if identity_type is None:
        raise typer.BadParameter("give --identities '[system]' or one or more identity ids",
                                 param_hint="--identities")
    settings = settings_of(ctx)
    with settings.client() as client:
        emit(settings, client.add_identity(cluster, identity_type, identity_ids), _identity_view)


@identity_app.command("remove", cls=GlobalOptionsCommand)
def identity_remove(ctx: typer.Context, name_arg: NameArgument = None, name: NameOption = None,
                    identities: Annotated[list[str] | None, typer.Option(
                        "--identities", "--identity", "-i",
                        help="User-assigned identity ids to remove (none: remove every identity).",
                        show_default=False)] = None) -> None:
    """Remove user-assigned identities, or every identity of the cluster when none are given."""
    cluster = cluster_name(name_arg, name)
    ids = [i for value in identities or [] for i in value.split(",") if i.strip()]
    settings = settings_of(ctx)
    with settings.client() as client:
        emit(settings, client.remove_identity(cluster, ids or None), _identity_view)


@identity_app.command("show", cls=GlobalOptionsCommand)
def identity_show(ctx: typer.Context, name_arg: NameArgument = None, name: NameOption = None) -> None:
    """The identities of a cluster (with --output json: the ``identity`` part of the cluster's body)."""
    settings = settings_of(ctx)
    with settings.client() as client:
        body = client.get_cluster(cluster_name(name_arg, name))
    emit(settings, body.get("identity"), _identity_view)


def _identity_view(body: Any) -> str:
    """The identity part of a cluster body (or the identity view itself) as one line."""
    if isinstance(body, dict) and "provisioning_state" in body:
        body = body.get("identity")
    return identity_summary(body) or "(no identity)"
