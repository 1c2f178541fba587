"""The ``computeplane`` command."""

from __future__ import annotations

import logging
import os
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated

import typer

from computeplane.cli_capacity import quota_app, vm_sizes_app
from computeplane.cli_clusters import cluster_app
from computeplane.cli_context import (
    ENDPOINT_ENV,
    OUTPUT_META_KEY,
    WORKSPACE_ENV,
    CliSettings,
    GlobalOptionsCommand,
    OutputFormat,
)
from computeplane.cli_errors import ErrorReportingGroup
from computeplane.cli_jobs import job_app
from computeplane.cli_keys import keys_app
from computeplane.cli_simulate import simulate
from computeplane.cli_token import token_app
from computeplane.client import API_KEY_ENV, DEFAULT_ENDPOINT, DEFAULT_WORKSPACE

app = typer.Typer(help="ComputePlane: ML compute clusters with AmlCompute semantics.", no_args_is_help=True,
                  pretty_exceptions_enable=False, cls=ErrorReportingGroup)
app.add_typer(cluster_app, name="cluster")
app.add_typer(job_app, name="job")
app.add_typer(vm_sizes_app, name="vm-sizes")
app.add_typer(quota_app, name="quota")
app.add_typer(token_app, name="token")
app.add_typer(keys_app, name="keys")
app.command("simulate", cls=GlobalOptionsCommand)(simulate)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"computeplane {package_version('computeplane')}")
        raise typer.Exit()


@app.callback()
def cli(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Option(envvar=ENDPOINT_ENV, help="Address of the ComputePlane server.")] =
        DEFAULT_ENDPOINT,
    workspace: Annotated[str, typer.Option(envvar=WORKSPACE_ENV, help="Workspace of the clusters and jobs.")] =
        DEFAULT_WORKSPACE,
    output: Annotated[OutputFormat, typer.Option("--output", "-o", help="table, or json: the API's body as it is.")]
        = OutputFormat.TABLE,
    api_key: Annotated[str | None, typer.Option(envvar=API_KEY_ENV, show_default=False,
                                                help="Key for a server that requires one (x-functions-key).")] =
        None,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                          callback=_print_version)] = False,
) -> None:
    """ComputePlane: ML compute clusters with AmlCompute semantics.

    Exit codes: 0 done; 1 the operation failed (not found, conflict, job or cluster Failed, timeout);
    2 bad input; 3 the server cannot be reached.
    """
    ctx.obj = CliSettings(endpoint=endpoint, workspace=workspace, output=output, api_key=api_key)
    ctx.meta[OUTPUT_META_KEY] = output


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API.")] = 7071,
    data_dir: Annotated[Path, typer.Option(help="Where state, queue and keys live (jobs run in DIR-runs beside "
                                                "it, or COMPUTEPLANE_RUNS_DIR).",
                                           envvar="COMPUTEPLANE_DATA_DIR")] = Path(".computeplane"),
    sweep_seconds: Annotated[float | None, typer.Option(
        help="Run the timer every N seconds instead of its NCRONTAB schedule (for tests).")] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "WARNING",
    store: Annotated[str | None, typer.Option(
        help="sqlite (embedded, the default) or cosmos (COSMOS_ENDPOINT, e.g. the local @vercel/cosmosdb-server).",
        envvar="COMPUTEPLANE_STORE")] = None,
    tls: Annotated[bool, typer.Option(
        "--tls", help="Serve HTTPS with a local CA kept in the data directory (needed by the Azure SDKs and az).")]
        = False,
    telemetry_console: Annotated[bool, typer.Option(
        help="Print OpenTelemetry spans and metrics (OTLP export: set OTEL_EXPORTER_OTLP_ENDPOINT).")] = False,
) -> None:
    """Run the control plane locally: embedded SQLite store and queue, local nodes, local token endpoint."""
    from shared.adapters.job_sandbox import JobSandboxUnavailable
    from shared.api.arm.context import InvalidArmSetting
    from shared.config import Settings
    from shared.local.serve import serve as run

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {"COMPUTEPLANE_DATA_DIR": str(data_dir)} | ({"COMPUTEPLANE_STORE": store} if store else {})
    if telemetry_console:
        os.environ["COMPUTEPLANE_TELEMETRY_CONSOLE"] = "1"
    try:
        settings = Settings.from_env({**os.environ, **overrides})
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        run(settings, host, port, sweep_seconds=sweep_seconds, tls=tls)
    except InvalidArmSetting as exc:  # a setting, as those Settings.from_env refuses: bad input
        raise typer.BadParameter(str(exc)) from None
    except JobSandboxUnavailable as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    app()
