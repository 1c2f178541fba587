"""Settings, read once from the environment into one typed object by the composition root (never at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal, get_args

from shared.domain.events import QUEUE_NAMES
from shared.domain.quota import QuotaLimits
from shared.domain.reconcile import ReconcilePolicy
from shared.settings_quota import QUOTA_SETTING_NAMES, SETTING_FAMILY_PREFIX, limits_from_env

COSMOS_DATABASE_DEFAULT = "computeplane"
COSMOS_CONTAINER_DEFAULT = "state"
SERVICE_BUS_CONNECTION = "ServiceBusConnection"

# Every setting the app reads; local.settings.example.json lists each one with a placeholder.
SETTING_NAMES = (
    "COMPUTEPLANE_STORE", "COMPUTEPLANE_BUS", "COMPUTEPLANE_DATA_DIR", "COMPUTEPLANE_WORKSPACE_LOCATION",
    "COMPUTEPLANE_NODE_BOOT_SECONDS", "COMPUTEPLANE_BOOT_TIMEOUT_SECONDS", "COMPUTEPLANE_RESYNC_SECONDS",
    "COMPUTEPLANE_RELEASE_POLL_SECONDS", "COMPUTEPLANE_FAIL_PROVISIONING", "COMPUTEPLANE_IDENTITY_ENDPOINT",
    "COSMOS__accountEndpoint", "COSMOS_DATABASE", "COSMOS_CONTAINER", "AZURE_CLIENT_ID",
    "ServiceBusConnection__fullyQualifiedNamespace", "COMPUTEPLANE_PREEMPTION_RATE_PER_NODE_HOUR",
    "COMPUTEPLANE_DENIED_RESOURCES", "COMPUTEPLANE_API_KEY", "COMPUTEPLANE_PROVISION_BACKOFF_SECONDS",
    "COMPUTEPLANE_RUNS_DIR", "COMPUTEPLANE_JOB_SANDBOX",
    # The ARM-shaped API (shared/api/arm/context.py checks them when it is first called).
    "COMPUTEPLANE_ARM_AUTH", "COMPUTEPLANE_ARM_TENANT_ID", "COMPUTEPLANE_ARM_AUDIENCE", "COMPUTEPLANE_ARM_WORKSPACES",
    "COMPUTEPLANE_ARM_SUBSCRIPTION",
    "COMPUTEPLANE_SNAPSHOT_ACCOUNT_URL", "COMPUTEPLANE_SNAPSHOT_CONTAINER",
    "COMPUTEPLANE_PROVIDER", "AZURE_SUBSCRIPTION_ID", "COMPUTEPLANE_NODE_RESOURCE_GROUP", "COMPUTEPLANE_BATCH_ACCOUNT",
    "COMPUTEPLANE_BATCH_ACCOUNT_ENDPOINT", "COMPUTEPLANE_BATCH_NODE_IMAGE", "COMPUTEPLANE_ARM_ENDPOINT",
    # read by shared.telemetry.setup.TelemetrySettings
    "APPLICATIONINSIGHTS_CONNECTION_STRING", "OTEL_EXPORTER_OTLP_ENDPOINT", "COMPUTEPLANE_TELEMETRY_CONSOLE",
    "COMPUTEPLANE_BATCH_NODE_IDENTITY", "COMPUTEPLANE_CHECKPOINT_CONTAINER", "COMPUTEPLANE_BATCH_POLL_SECONDS",
    "COMPUTEPLANE_BATCH_EXPECTED_BOOT_SECONDS",
    # read at import by functions/queues.py (a trigger's shape is fixed when the host indexes the app)
    "COMPUTEPLANE_QUEUE_BATCHES",
    *QUOTA_SETTING_NAMES,
)
# The settings infra/app/api.bicep gives the app in Azure (the others keep their defaults there).
DEPLOYED_SETTING_NAMES = (
    "COMPUTEPLANE_STORE", "COMPUTEPLANE_BUS", "COMPUTEPLANE_WORKSPACE_LOCATION", "COMPUTEPLANE_PROVIDER",
    "COSMOS__accountEndpoint", "COSMOS_DATABASE", "COSMOS_CONTAINER", "AZURE_CLIENT_ID",
    "ServiceBusConnection__fullyQualifiedNamespace", "COMPUTEPLANE_SNAPSHOT_ACCOUNT_URL",
    "COMPUTEPLANE_SNAPSHOT_CONTAINER", "AZURE_SUBSCRIPTION_ID", "COMPUTEPLANE_NODE_RESOURCE_GROUP",
    "COMPUTEPLANE_BATCH_ACCOUNT", "COMPUTEPLANE_BATCH_ACCOUNT_ENDPOINT", "COMPUTEPLANE_BATCH_NODE_IMAGE",
    "APPLICATIONINSIGHTS_CONNECTION_STRING", "COMPUTEPLANE_BATCH_NODE_IDENTITY", "COMPUTEPLANE_CHECKPOINT_CONTAINER",
    "COMPUTEPLANE_ARM_AUTH", "COMPUTEPLANE_ARM_TENANT_ID", "COMPUTEPLANE_ARM_AUDIENCE", "COMPUTEPLANE_QUEUE_BATCHES",
)
# Settings named by a prefix and a free part (one per VM family): not in SETTING_NAMES, which names fixed settings.
SETTING_PREFIXES = (SETTING_FAMILY_PREFIX,)
ProviderKind = Literal["local", "azurebatch"]
PROVIDER_KINDS: tuple[str, ...] = get_args(ProviderKind)
# An Ubuntu marketplace image (publisher:offer:sku:version) and the Batch node agent that goes with it.
BATCH_NODE_IMAGE_DEFAULT = "canonical:ubuntu-24_04-lts:server:latest"
ARM_ENDPOINT_DEFAULT = "https://management.azure.com"


@dataclass(frozen=True)
class AzureBatchSettings:
    """Where the Azure Batch node provider creates pools (COMPUTEPLANE_PROVIDER=azurebatch)."""

    subscription_id: str
    resource_group: str  # the node resource group: the Batch account, per-cluster identities, locks read here
    account_name: str
    account_endpoint: str  # https://<account>.<region>.batch.azure.com
    node_image: str = BATCH_NODE_IMAGE_DEFAULT
    arm_endpoint: str = ARM_ENDPOINT_DEFAULT
    # Jobs' code and checkpoints on nodes (shared/adapters/azure_batch/node_code.py): the snapshot container's URL,
    # the checkpoint container every pool mounts (None: checkpoints stay on the node), and a user-assigned identity
    # every pool carries to read and write them (None: the cluster's own identity is used).
    snapshot_container_url: str | None = None
    checkpoint_container_url: str | None = None
    node_identity_id: str | None = None
    # Batch sends no events: a cluster is looked at again when its nodes are expected to be ready, and then every
    # poll interval while a node boots or a task runs (shared/adapters/azure_batch/wakeups.py).
    poll_seconds: float = 10.0
    expected_boot_seconds: float = 300.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AzureBatchSettings:
        names = {"subscription_id": "AZURE_SUBSCRIPTION_ID", "resource_group": "COMPUTEPLANE_NODE_RESOURCE_GROUP",
                 "account_name": "COMPUTEPLANE_BATCH_ACCOUNT",
                 "account_endpoint": "COMPUTEPLANE_BATCH_ACCOUNT_ENDPOINT"}
        missing = [name for name in names.values() if not env.get(name)]
        if missing:
            raise ValueError(f"{', '.join(missing)}: required when COMPUTEPLANE_PROVIDER=azurebatch")
        image = env.get("COMPUTEPLANE_BATCH_NODE_IMAGE") or BATCH_NODE_IMAGE_DEFAULT
        if len(image.split(":")) != 4:
            raise ValueError(f"COMPUTEPLANE_BATCH_NODE_IMAGE: must be publisher:offer:sku:version, got {image!r}")
        for name in ("COMPUTEPLANE_BATCH_ACCOUNT_ENDPOINT", "COMPUTEPLANE_ARM_ENDPOINT"):
            if env.get(name) and not env[name].startswith("https://"):
                raise ValueError(f"{name}: must be an https:// URL (bearer tokens never go over plain http), "
                                 f"got {env[name]!r}")
        storage = (env.get("COMPUTEPLANE_SNAPSHOT_ACCOUNT_URL") or "").rstrip("/")
        checkpoints = env.get("COMPUTEPLANE_CHECKPOINT_CONTAINER")
        return cls(**{field_name: env[name] for field_name, name in names.items()}, node_image=image,
                   arm_endpoint=env.get("COMPUTEPLANE_ARM_ENDPOINT") or ARM_ENDPOINT_DEFAULT,
                   snapshot_container_url=(f"{storage}/{env.get('COMPUTEPLANE_SNAPSHOT_CONTAINER') or 'snapshots'}"
                                           if storage else None),
                   checkpoint_container_url=f"{storage}/{checkpoints}" if storage and checkpoints else None,
                   node_identity_id=env.get("COMPUTEPLANE_BATCH_NODE_IDENTITY") or None,
                   poll_seconds=_float(env, "COMPUTEPLANE_BATCH_POLL_SECONDS", 10.0),
                   expected_boot_seconds=_float(env, "COMPUTEPLANE_BATCH_EXPECTED_BOOT_SECONDS", 300.0))
JobSandboxMode = Literal["auto", "required", "off"]
JOB_SANDBOX_MODES: tuple[str, ...] = get_args(JobSandboxMode)

__all__ = ["COSMOS_CONTAINER_DEFAULT", "COSMOS_DATABASE_DEFAULT", "DEPLOYED_SETTING_NAMES", "JOB_SANDBOX_MODES",
           "PROVIDER_KINDS", "QUEUE_NAMES", "SETTING_NAMES", "SETTING_PREFIXES", "AzureBatchSettings", "JobSandboxMode",
           "ProviderKind", "Settings"]


@dataclass(frozen=True)
class Settings:
    store: Literal["sqlite", "cosmos"] = "sqlite"
    bus: Literal["sqlite", "servicebus"] = "sqlite"
    provider: ProviderKind = "local"  # who provisions nodes: local processes, or Azure Batch pools
    azure_batch: AzureBatchSettings | None = None  # set when provider is azurebatch
    data_dir: Path = Path(".computeplane")
    runs_dir: Path | None = None  # local jobs' working directories; None: next to the data directory (runs_root)
    job_sandbox: JobSandboxMode = "auto"  # local jobs in user and mount namespaces (shared/adapters/job_sandbox.py)
    workspace_location: str = "eastus"
    node_boot_seconds: float = 2.0
    boot_timeout_seconds: float = 600.0
    resync_seconds: float = 60.0
    release_poll_seconds: float = 1.0
    provision_backoff_seconds: float = 60.0
    fail_provisioning: bool = False
    identity_endpoint: str | None = None  # base URL of the local token endpoint, set by the local host
    cosmos_endpoint: str | None = None
    cosmos_database: str = COSMOS_DATABASE_DEFAULT
    cosmos_container: str = COSMOS_CONTAINER_DEFAULT
    azure_client_id: str | None = None
    service_bus_namespace: str | None = None
    quota_limits: QuotaLimits = field(default_factory=QuotaLimits)
    preemption_rate_per_node_hour: float = 0.0  # simulated preemptions of local low-priority nodes
    denied_resources: frozenset[str] = frozenset()  # token audiences the local token endpoint refuses
    api_key: str | None = None  # an extra API key of the local runtime
    snapshot_account_url: str | None = None  # jobs' code in Blob Storage; None: in the data directory
    snapshot_container: str = ""
    # The ARM-shaped API's settings, as given: shared/api/arm/context.py checks them when it is first called, so a
    # mistake there answers ARM's callers with the reason and leaves the rest of the app running.
    arm_auth: str | None = None
    arm_tenant_id: str | None = None
    arm_audience: str | None = None
    arm_workspaces: str | None = None
    arm_subscription: str | None = None

    def __post_init__(self) -> None:
        if self.runs_dir is not None and self.runs_root.is_relative_to(self.data_dir.resolve()):
            raise ValueError(f"COMPUTEPLANE_RUNS_DIR: must be outside the data directory {self.data_dir} (a job "
                             f"would reach the data directory through its own working directory), got "
                             f"{self.runs_dir}")

    @property
    def runs_root(self) -> Path:
        """Where local jobs run: ``runs_dir``, or ``<data dir>-runs`` beside the data directory. Never inside it,
        which the job sandbox hides from jobs."""
        if self.runs_dir is not None:
            return self.runs_dir.resolve()
        data_dir = self.data_dir.resolve()
        return data_dir.parent / f"{data_dir.name}-runs"

    @property
    def policy(self) -> ReconcilePolicy:
        return ReconcilePolicy(boot_timeout=timedelta(seconds=self.boot_timeout_seconds),
                               resync_interval=timedelta(seconds=self.resync_seconds),
                               release_poll=timedelta(seconds=self.release_poll_seconds),
                               provision_backoff=timedelta(seconds=self.provision_backoff_seconds))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        store = env.get("COMPUTEPLANE_STORE", "sqlite")
        bus = env.get("COMPUTEPLANE_BUS", "sqlite")
        if store not in ("sqlite", "cosmos"):
            raise ValueError(f"COMPUTEPLANE_STORE: must be sqlite or cosmos, got {store!r}")
        if bus not in ("sqlite", "servicebus"):
            raise ValueError(f"COMPUTEPLANE_BUS: must be sqlite or servicebus, got {bus!r}")
        job_sandbox = env.get("COMPUTEPLANE_JOB_SANDBOX") or "auto"
        if job_sandbox not in JOB_SANDBOX_MODES:
            raise ValueError(f"COMPUTEPLANE_JOB_SANDBOX: must be auto, required or off, got {job_sandbox!r}")
        runs_dir = env.get("COMPUTEPLANE_RUNS_DIR")
        provider = env.get("COMPUTEPLANE_PROVIDER") or "local"
        if provider not in PROVIDER_KINDS:
            raise ValueError(f"COMPUTEPLANE_PROVIDER: must be local or azurebatch, got {provider!r}")
        return cls(
            store=store,  # type: ignore[arg-type]
            bus=bus,  # type: ignore[arg-type]
            provider=provider,  # type: ignore[arg-type]
            azure_batch=AzureBatchSettings.from_env(env) if provider == "azurebatch" else None,
            data_dir=Path(env.get("COMPUTEPLANE_DATA_DIR", ".computeplane")),
            runs_dir=Path(runs_dir) if runs_dir else None,
            job_sandbox=job_sandbox,  # type: ignore[arg-type]
            workspace_location=env.get("COMPUTEPLANE_WORKSPACE_LOCATION", "eastus"),
            node_boot_seconds=_float(env, "COMPUTEPLANE_NODE_BOOT_SECONDS", 2.0),
            boot_timeout_seconds=_float(env, "COMPUTEPLANE_BOOT_TIMEOUT_SECONDS", 600.0),
            resync_seconds=_float(env, "COMPUTEPLANE_RESYNC_SECONDS", 60.0),
            release_poll_seconds=_float(env, "COMPUTEPLANE_RELEASE_POLL_SECONDS", 1.0),
            provision_backoff_seconds=_float(env, "COMPUTEPLANE_PROVISION_BACKOFF_SECONDS", 60.0),
            fail_provisioning=env.get("COMPUTEPLANE_FAIL_PROVISIONING", "").lower() in ("1", "true", "yes"),
            identity_endpoint=env.get("COMPUTEPLANE_IDENTITY_ENDPOINT"),
            cosmos_endpoint=env.get("COSMOS__accountEndpoint") or env.get("COSMOS_ENDPOINT"),
            cosmos_database=env.get("COSMOS_DATABASE", COSMOS_DATABASE_DEFAULT),
            cosmos_container=env.get("COSMOS_CONTAINER", COSMOS_CONTAINER_DEFAULT),
            azure_client_id=env.get("AZURE_CLIENT_ID"),
            service_bus_namespace=env.get("ServiceBusConnection__fullyQualifiedNamespace"),
            quota_limits=limits_from_env(env),
            preemption_rate_per_node_hour=_float(env, "COMPUTEPLANE_PREEMPTION_RATE_PER_NODE_HOUR", 0.0,
                                                 "a number of preemptions per node-hour"),
            denied_resources=frozenset(r for r in env.get("COMPUTEPLANE_DENIED_RESOURCES", "").split(",") if r),
            api_key=env.get("COMPUTEPLANE_API_KEY"),
            snapshot_account_url=env.get("COMPUTEPLANE_SNAPSHOT_ACCOUNT_URL") or None,
            snapshot_container=env.get("COMPUTEPLANE_SNAPSHOT_CONTAINER", ""),
            arm_auth=env.get("COMPUTEPLANE_ARM_AUTH") or None,
            arm_tenant_id=env.get("COMPUTEPLANE_ARM_TENANT_ID") or None,
            arm_audience=env.get("COMPUTEPLANE_ARM_AUDIENCE") or None,
            arm_workspaces=env.get("COMPUTEPLANE_ARM_WORKSPACES") or None,
            arm_subscription=env.get("COMPUTEPLANE_ARM_SUBSCRIPTION") or None,
        )


def queue_batches_on(env: Mapping[str, str] | None = None) -> bool:
    """``COMPUTEPLANE_QUEUE_BATCHES``: whether the queue triggers take a batch of one session per call (``on``) or
    one message (``off``). Unset, it is on with the embedded queue and off with Service Bus (``COMPUTEPLANE_BUS``);
    infra/app/api.bicep says ``off``. Read when ``functions.queues`` is imported, not by the composition root: the
    Functions host fixes a trigger's shape when it indexes the app.

    Off in Azure because the Service Bus extension runs a batch trigger on sessions one session at a time per
    instance, ignoring ``maxConcurrentSessions`` and holding each drained session for ``sessionIdleTimeout``
    (Azure/azure-functions-dotnet-worker#3087, Azure/azure-sdk-for-net#47981): with many clusters, each would wait
    for the others. The local host and the Service Bus receiver of ``computeplane serve`` take a batch and move on
    to the next session at once, so batches may be turned on there with Service Bus too."""
    env = os.environ if env is None else env
    default = "on" if env.get("COMPUTEPLANE_BUS", "sqlite") == "sqlite" else "off"
    raw = (env.get("COMPUTEPLANE_QUEUE_BATCHES") or default).lower()
    if raw not in ("on", "off"):
        raise ValueError(f"COMPUTEPLANE_QUEUE_BATCHES: must be on or off, got {raw!r}")
    return raw == "on"


def _float(env: Mapping[str, str], name: str, default: float, what: str = "a number of seconds") -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}: must be {what}, got {raw!r}") from None
