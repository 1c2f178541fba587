"""Mirror of ``azureml.core``: ``from computeplane.azureml.core import Workspace, ComputeTarget``."""

from computeplane.azureml.compute_target import ComputeTarget
from computeplane.azureml.script_run import Experiment, Run, RunConfiguration, ScriptRunConfig
from computeplane.azureml.workspace import Workspace

__all__ = ["ComputeTarget", "Experiment", "Run", "RunConfiguration", "ScriptRunConfig", "Workspace"]
