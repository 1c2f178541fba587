"""v1's ``ScriptRunConfig``, ``Experiment`` and ``Run``: a script from a source directory on a compute target.

    src = ScriptRunConfig(source_directory=".", script="train.py", arguments=["--lr", 0.01],
                          compute_target=cluster, distributed_job_config=PyTorchConfiguration(node_count=2))
    run = Experiment(ws, "mnist").submit(src)
    run.wait_for_completion(show_output=True)

``source_directory`` is snapshotted as v1 does (``.amlignore``, else ``.gitignore``), uploaded once, and is the
working directory of every node. ``run_config.environment_variables`` are passed to the job; ``environment``
(a conda or Docker image) is accepted and not used: nodes run the Python that runs ComputePlane.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from computeplane.errors import OperationFailed
from computeplane.waiting import DEFAULT_WAIT_TIMEOUT_SECONDS, wait_for_job

if TYPE_CHECKING:
    from computeplane.azureml.compute_target import ComputeTarget
    from computeplane.azureml.workspace import Workspace

__all__ = ["ActivityFailedException", "Experiment", "MpiConfiguration", "PyTorchConfiguration", "Run",
           "RunConfiguration", "ScriptRunConfig"]


class ActivityFailedException(Exception):
    """As v1's ``azureml.exceptions.ActivityFailedException``: the run ended Failed or Canceled."""


@dataclass
class PyTorchConfiguration:
    node_count: int = 1
    process_count: int | None = None


@dataclass
class MpiConfiguration:
    node_count: int = 1
    process_count_per_node: int = 1


@dataclass
class RunConfiguration:
    environment_variables: dict[str, str] = field(default_factory=dict)
    node_count: int = 1


class ScriptRunConfig:
    def __init__(self, source_directory: str | os.PathLike[str] = ".", script: str | None = None,
                 arguments: list[Any] | None = None, run_config: RunConfiguration | None = None,
                 compute_target: ComputeTarget | str | None = None, environment: object = None,
                 distributed_job_config: PyTorchConfiguration | MpiConfiguration | None = None,
                 command: list[str] | str | None = None, max_run_duration_seconds: int | None = None) -> None:
        if (script is None) == (command is None):
            raise ValueError("give either script or command (as v1's ScriptRunConfig)")
        self.source_directory = source_directory
        self.script, self.arguments, self.command = script, list(arguments or []), command
        self.run_config = run_config or RunConfiguration()
        self.target = compute_target
        self.environment = environment
        self.distributed_job_config = distributed_job_config

    def command_line(self) -> list[str]:
        if self.command is not None:
            command = self.command.split() if isinstance(self.command, str) else list(self.command)
            return [*command, *map(str, self.arguments)]
        return ["python", str(self.script), *map(str, self.arguments)]

    def node_count(self) -> int:
        config = self.distributed_job_config
        return config.node_count if config is not None else self.run_config.node_count

    def target_name(self) -> str:
        if self.target is None:
            raise ValueError("compute_target is required: ComputePlane runs scripts on clusters only")
        return self.target if isinstance(self.target, str) else self.target.name


class Experiment:
    def __init__(self, workspace: Workspace, name: str) -> None:
        self.workspace, self.name = workspace, name

    def submit(self, config: ScriptRunConfig, tags: dict[str, str] | None = None) -> Run:
        client = self.workspace.client
        job = client.submit_job(config.target_name(), config.command_line(), node_count=config.node_count(),
                                environment_variables=dict(config.run_config.environment_variables) or None,
                                code=config.source_directory)
        return Run(self, job)


class Run:
    def __init__(self, experiment: Experiment, job: dict[str, Any]) -> None:
        self.experiment = experiment
        self.id: str = job["id"]
        self._job = job

    def get_status(self) -> str:
        self._job = self.experiment.workspace.client.get_job(self.id)
        return str(self._job["state"])

    def get_details(self) -> dict[str, Any]:
        job = self._job
        return {"runId": self.id, "target": job.get("cluster"), "status": job.get("state"),
                "startTimeUtc": job.get("started_at"), "endTimeUtc": job.get("finished_at"),
                "error": {"message": job.get("reason")} if job.get("state") in ("Failed", "Canceled") else None}

    def get_logs(self) -> str:
        return str(self.experiment.workspace.client.job_logs(self.id).get("logs") or "")

    def cancel(self) -> None:
        self.experiment.workspace.client.cancel_job(self.id)

    def wait_for_completion(self, show_output: bool = False, wait_post_processing: bool = False,
                            raise_on_error: bool = True,
                            timeout_seconds: float = DEFAULT_WAIT_TIMEOUT_SECONDS) -> dict[str, Any]:
        if show_output:
            print(f"RunId: {self.id}")
        try:
            self._job = wait_for_job(self.experiment.workspace.client, self.id, timeout=timeout_seconds,
                                     on_output=_write if show_output else None, raise_on_error=raise_on_error)
        except OperationFailed as error:
            self._job = error.resource
            raise ActivityFailedException(f"Run {self.id} {self._job.get('state')}: {self._job.get('reason')}") \
                from None
        if show_output:
            print(f"\nExecution Summary\n=================\nRunId: {self.id}\nStatus: {self._job.get('state')}")
        return self.get_details()


def _write(attempt: int, text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
