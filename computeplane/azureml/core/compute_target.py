"""Mirror of ``azureml.core.compute_target``: ``from computeplane.azureml.core.compute_target import
ComputeTargetException``."""

from computeplane.azureml.exceptions import ComputeTargetException

__all__ = ["ComputeTargetException"]
