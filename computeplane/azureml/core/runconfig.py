"""Mirror of ``azureml.core.runconfig``."""

from computeplane.azureml.script_run import MpiConfiguration, PyTorchConfiguration, RunConfiguration

__all__ = ["MpiConfiguration", "PyTorchConfiguration", "RunConfiguration"]
