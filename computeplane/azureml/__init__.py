"""The v1 SDK's compute names (``azureml.core``), over a ComputePlane server, for code written for AmlCompute.

    from computeplane.azureml import Workspace, ComputeTarget, AmlCompute, ComputeTargetException

or, keeping v1's module paths: ``from computeplane.azureml.core.compute import ComputeTarget, AmlCompute`` and
``from computeplane.azureml.core.compute_target import ComputeTargetException``. Needs only httpx.
"""

from computeplane.azureml.amlcompute import AmlCompute
from computeplane.azureml.compute_target import ComputeTarget, ComputeTargetProvisioningConfiguration
from computeplane.azureml.exceptions import ComputeTargetException
from computeplane.azureml.provisioning import AmlComputeProvisioningConfiguration
from computeplane.azureml.script_run import (
    ActivityFailedException,
    Experiment,
    MpiConfiguration,
    PyTorchConfiguration,
    Run,
    RunConfiguration,
    ScriptRunConfig,
)
from computeplane.azureml.status import AmlComputeNodeStateCounts, AmlComputeStatus, ScaleSettings
from computeplane.azureml.workspace import Workspace

__all__ = ["ActivityFailedException", "AmlCompute", "AmlComputeNodeStateCounts", "AmlComputeProvisioningConfiguration",
           "AmlComputeStatus", "ComputeTarget", "ComputeTargetException", "ComputeTargetProvisioningConfiguration",
           "Experiment", "MpiConfiguration", "PyTorchConfiguration", "Run", "RunConfiguration", "ScaleSettings",
           "ScriptRunConfig", "Workspace"]
