"""Mirror of ``azureml.core.compute``: ``from computeplane.azureml.core.compute import ComputeTarget, AmlCompute``."""

from computeplane.azureml.amlcompute import AmlCompute
from computeplane.azureml.compute_target import ComputeTarget
from computeplane.azureml.provisioning import AmlComputeProvisioningConfiguration

__all__ = ["AmlCompute", "AmlComputeProvisioningConfiguration", "ComputeTarget"]
