"""The Azure Batch node provider: one Batch pool per cluster, driven by the control plane's managed identity.

Modules: ``calls`` (timeouts, retries honouring Retry-After, errors), ``clients`` (the SDK clients), ``runs`` (a
job per cluster, a task per attempt), ``pools`` (pure: pool ids, the pool body from
a cluster, the node map kept in pool metadata, Batch node states), ``provider`` (the ``NodeProvider``), and
``cluster_identity`` (the user-assigned identity a SystemAssigned cluster gets). Imported only when
``COMPUTEPLANE_PROVIDER=azurebatch``: the embedded runtime never loads the Batch SDKs.
"""
