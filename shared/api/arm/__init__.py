"""An Azure-Resource-Manager-shaped API for ``Microsoft.MachineLearningServices`` computes of type AmlCompute, so
the real ``azureml-core``, ``azure-ai-ml`` and ``az`` work unchanged once pointed at ComputePlane's cloud metadata.

It goes through the same command handlers, events and store as the ``/api`` routes; only the shapes differ.
"""
