"""``computeplane job ...``: submit (optionally waiting and streaming its output), show, list, logs, cancel."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from computeplane.cli_clusters import AfterPreemptionRetries
from computeplane.cli_context import GlobalOptionsCommand, settings_of
from computeplane.cli_output import emit, job_detail, job_table, print_json
from computeplane.cli_progress import ProgressLines, job_progress_line
from computeplane.cli_values import parse_key_values
from computeplane.client import ComputePlaneClient
from computeplane.errors import NotFoundError
from computeplane.snapshot_archive import SnapshotRejected
from computeplane.waiting import DEFAULT_WAIT_TIMEOUT_SECONDS, OutputCallback, wait_for_job

job_app = typer.Typer(help="Submit jobs to a cluster and follow them.", no_args_is_help=True)

JobIdArgument = Annotated[str, typer.Argument(help="Job id (printed by `job submit`, listed by `job list`).")]


@job_app.command("submit", cls=GlobalOptionsCommand, context_settings={"allow_interspersed_args": False})
def submit(
    ctx: typer.Context,
    command: Annotated[list[str], typer.Argument(help="The program and its arguments, after `--` (no shell).",
                                                 metavar="COMMAND")],
    cluster: Annotated[str, typer.Option("--cluster", "-c", help="Cluster to run on.")],
    node_count: Annotated[int | None, typer.Option("--node-count", help="Nodes for the job \\[default: 1].",
                                                   show_default=False)] = None,
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE environment variable (repeat).",
                                                  show_default=False)] = None,
    max_retries: Annotated[int | None, typer.Option("--max-retries", help="Retries after a lost node \\[default: 3].",
                                                    show_default=False)] = None,
    code: Annotated[Path | None, typer.Option(
        "--code", help="Project directory: snapshotted (minus .amlignore/.gitignore), uploaded once, and the working "
                       "directory of every node.", show_default=False, exists=True, file_okay=False,
        dir_okay=True)] = None,
    max_preemption_retries: Annotated[int | None, typer.Option(
        "--max-preemption-retries", help="Low priority: preemptions before the cluster's after-retries choice "
        "applies \\[default: 3].", show_default=False)] = None,
    on_preemption_retries_exhausted: Annotated[AfterPreemptionRetries | None, typer.Option(
        "--on-preemption-retries-exhausted", help="dedicated, requeue or fail (default: the cluster's).",
        show_default=False)] = None,
    checkpoint_interval: Annotated[int | None, typer.Option(
        "--checkpoint-interval", help="Seconds between the job's checkpoints (in $COMPUTEPLANE_CHECKPOINT_DIR): a "
        "preemption then loses only the work since the last one.", show_default=False)] = None,
    deadline: Annotated[str | None, typer.Option(
        "--deadline", help="ISO-8601 time the job must finish by (needs --expected-runtime); on a cluster with "
        "the fallback, it moves to dedicated nodes rather than miss it.", show_default=False)] = None,
    expected_runtime: Annotated[int | None, typer.Option(
        "--expected-runtime", help="Seconds the job runs, for the deadline check.", show_default=False)] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job, showing its state and output.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait with --wait.")] =
        DEFAULT_WAIT_TIMEOUT_SECONDS,
) -> None:
    """Queue COMMAND on a cluster: nodes scale up at once; exit code with --wait is 0 only if it Completed."""
    settings = settings_of(ctx)
    environment = parse_key_values(env or [], "--env") or None
    with settings.client() as client:
        try:
            job = client.submit_job(
                cluster, command, node_count=node_count, environment_variables=environment, max_retries=max_retries,
                max_preemption_retries=max_preemption_retries,
                on_preemption_retries_exhausted=on_preemption_retries_exhausted.value
                if on_preemption_retries_exhausted else None,
                checkpoint_interval_seconds=checkpoint_interval, deadline=deadline,
                expected_runtime_seconds=expected_runtime, code=code)
        except SnapshotRejected as exc:
            raise typer.BadParameter(str(exc), param_hint="--code") from None
        if not settings.json:
            with_code = f" with code snapshot {job['code'][:12]} of {code}" if job.get("code") else ""
            typer.echo(f"Submitted job {job['id']} to cluster '{cluster}'{with_code}.", err=True)
        if wait:
            with still_running_on_interrupt(job["id"]):
                job = _follow(client, job["id"], timeout, stream_output=not settings.json)
    if settings.json or not wait:
        emit(settings, job, job_detail)


def _follow(client: ComputePlaneClient, job_id: str, timeout: float, stream_output: bool,
            first_attempt: int = 1) -> dict[str, Any]:
    """Wait for the job, printing state changes on stderr and (if asked) its output on stdout as it grows."""
    with ProgressLines(f"job {job_id}") as progress:
        final = wait_for_job(client, job_id, timeout=timeout, first_attempt=first_attempt,
                             on_progress=lambda j: progress.show(job_progress_line(j)),
                             on_output=_print_output(progress) if stream_output else None)
        progress.note(f"Job {job_id} {final.get('state')} (exit code {final.get('exit_code')}).")
    return final


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


@contextmanager
def still_running_on_interrupt(job_id: str) -> Iterator[None]:
    """Ctrl-C stops the waiting, not the job: say so, and how to follow or cancel it."""
    try:
        yield
    except KeyboardInterrupt:
        typer.echo(f"\nStopped waiting. Job {job_id} goes on: follow it with `computeplane job logs {job_id} "
                   f"--follow`, cancel it with `computeplane job cancel {job_id}`.", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _print_output(progress: ProgressLines) -> OutputCallback:
    shown: list[int] = []

    def print_output(attempt: int, text: str) -> None:
        if shown and shown[-1] != attempt:
            progress.note(f"--- attempt {attempt} ---")
        if not shown or shown[-1] != attempt:
            shown.append(attempt)
        typer.echo(text, nl=False)

    return print_output


@job_app.command("show", cls=GlobalOptionsCommand)
def show(ctx: typer.Context, job_id: JobIdArgument) -> None:
    """A job: state, reason, nodes, attempts, exit code and history."""
    settings = settings_of(ctx)
    with settings.client() as client:
        emit(settings, client.get_job(job_id), job_detail)


@job_app.command("list", cls=GlobalOptionsCommand)
def list_jobs(ctx: typer.Context, cluster: Annotated[str | None, typer.Option(
        "--cluster", "-c", help="Only the jobs of this cluster.", show_default=False)] = None) -> None:
    """The jobs of the workspace (or of one cluster)."""
    settings = settings_of(ctx)
    with settings.client() as client:
        try:
            jobs = client.list_jobs(cluster)
        except NotFoundError as error:
            if cluster is None:
                raise
            # A deleted cluster's jobs stay in the workspace's list; --cluster names a cluster that exists now.
            raise NotFoundError(error.status, error.code, f"{error.message}; `computeplane job list` without "
                                "--cluster lists every job of the workspace, those of deleted clusters too") from None
        emit(settings, jobs, job_table)


@job_app.command("logs", cls=GlobalOptionsCommand)
def logs(
    ctx: typer.Context,
    job_id: JobIdArgument,
    attempt: Annotated[int | None, typer.Option("--attempt", help="Attempt number \\[default: the latest].",
                                                show_default=False, min=1)] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
) -> None:
    """The output of a job (one attempt). With --output json: the API's {job_id, attempt, state, logs}."""
    settings = settings_of(ctx)
    with settings.client() as client:
        if follow and not settings.json:
            with still_running_on_interrupt(job_id):
                _follow(client, job_id, float("inf"), stream_output=True, first_attempt=attempt or 1)
            return
        if follow:
            with still_running_on_interrupt(job_id):
                wait_for_job(client, job_id, timeout=float("inf"), raise_on_error=False)
        body = client.job_logs(job_id, attempt)
    if settings.json:
        print_json(body)
    else:
        typer.echo(body.get("logs") or "", nl=False)


@job_app.command("cancel", cls=GlobalOptionsCommand)
def cancel(ctx: typer.Context, job_id: JobIdArgument) -> None:
    """Cancel a queued or running job (a finished job cannot be canceled: exit code 1)."""
    settings = settings_of(ctx)
    with settings.client() as client:
        job = client.cancel_job(job_id)
    if not settings.json:
        typer.echo(f"Cancel requested for job {job_id} (state {job.get('state')}); it shows Canceled once its run "
                   "has stopped (`computeplane job show`).", err=True)
    emit(settings, job, job_detail)
