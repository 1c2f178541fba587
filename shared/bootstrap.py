"""The composition root: the one place that decides which adapter sits behind each port."""

from __future__ import annotations

import functools
import gc
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.types import ASGIApp

from shared.adapters.clock import SystemClock
from shared.adapters.file_snapshots import FileSnapshotStore
from shared.adapters.identity_grants import SqliteIdentityGrants
from shared.adapters.local_provider import LocalNodeProvider, Publish
from shared.adapters.local_tokens import LocalTokens
from shared.adapters.no_identity import NoIdentityTokens
from shared.adapters.sqlite_queue import SqliteQueue
from shared.adapters.sqlite_store import SqliteStore
from shared.adapters.token_endpoint import create_token_endpoint_app
from shared.adapters.token_signer import TokenSigner
from shared.api.auth import ApiKeys
from shared.config import Settings
from shared.domain.events import CloudEvent
from shared.domain.quota import QuotaLimits
from shared.handlers.deps import Deps
from shared.ports import Clock, EventBus, NodeProvider, SnapshotStore, Store, TokenProvider
from shared.telemetry.setup import TelemetrySettings, configure_telemetry
from shared.telemetry.wiring import observe_queue, traced_bus, traced_deps


@dataclass
class Container:
    """Deps for handlers plus the concrete pieces the local host drives (queue pump, provider shutdown)."""

    settings: Settings
    deps: Deps
    queue: SqliteQueue | None = None
    provider: NodeProvider | None = None
    local_nodes: LocalNodeProvider | None = None  # the local host's job sandbox and shutdown; None with Azure Batch
    identity_app: ASGIApp | None = None
    api_keys: ApiKeys | None = None  # checked by the app locally; in Azure the Functions host checks its keys


def build(settings: Settings, clock: Clock | None = None) -> Container:
    clock = clock or SystemClock()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store: Store = _store(settings)
    queue = SqliteQueue(settings.data_dir / "queue.db", clock) if settings.bus == "sqlite" else None
    bus: EventBus = traced_bus(queue if queue is not None else _service_bus(settings))  # as is when telemetry is off

    def publish(event: CloudEvent, not_before: datetime | None) -> None:
        bus.publish(event, not_before=not_before)

    snapshots = _snapshot_store(settings)
    quota_limits = settings.quota_limits
    local_nodes: LocalNodeProvider | None = None
    provider: NodeProvider
    if settings.provider == "azurebatch":
        provider, quota_limits = _azure_batch(settings, clock, publish, quota_limits)
    else:
        provider = local_nodes = LocalNodeProvider(
            settings.data_dir, settings.runs_root, clock, publish, timedelta(seconds=settings.node_boot_seconds),
            fail_provisioning=settings.fail_provisioning,
            preemption_rate_per_node_hour=settings.preemption_rate_per_node_hour,
            job_sandbox=settings.job_sandbox, snapshots=snapshots)
    tokens: TokenProvider = NoIdentityTokens()
    identity_app: ASGIApp | None = None
    if settings.identity_endpoint:
        grants = SqliteIdentityGrants(settings.data_dir / "identity.db")
        signer = TokenSigner(settings.data_dir / "keys")
        tokens = LocalTokens(grants, settings.identity_endpoint, signer, clock, settings.denied_resources)
        identity_app = create_token_endpoint_app(grants, signer, clock)
    deps = traced_deps(Deps(store=store, bus=bus, provider=provider, tokens=tokens, clock=clock, policy=settings.policy,
                            workspace_location=settings.workspace_location, quota_limits=quota_limits,
                            simulation=local_nodes, snapshots=snapshots))
    if queue is not None:
        observe_queue(queue, clock)
    return Container(settings=settings, deps=deps, queue=queue, provider=provider, local_nodes=local_nodes,
                     identity_app=identity_app)


def _azure_batch(settings: Settings, clock: Clock, publish: Publish,
                 limits: QuotaLimits) -> tuple[NodeProvider, QuotaLimits]:
    """The Azure Batch provider, and the quota limits with the Batch account's own core quotas in them."""
    # Imported here so the embedded runtime never loads the Batch SDKs.
    from shared.adapters.azure_batch.provider import AzureBatchNodeProvider

    provider = AzureBatchNodeProvider.from_settings(settings, clock, publish)
    return provider, provider.account_quota_limits(limits)


def _store(settings: Settings) -> Store:
    if settings.store == "sqlite":
        return SqliteStore(settings.data_dir / "state.db")
    # Imported here so the embedded runtime never loads the Azure SDK.
    from shared.adapters.cosmos_store import CosmosStore

    return CosmosStore.from_settings(settings)


def _snapshot_store(settings: Settings) -> SnapshotStore:
    """Jobs' code: in Blob Storage when COMPUTEPLANE_SNAPSHOT_ACCOUNT_URL is set, else in the data directory."""
    account_url = settings.snapshot_account_url
    if not account_url:
        return FileSnapshotStore(settings.data_dir / "snapshots")
    from shared.adapters.blob_snapshots import BlobSnapshotStore  # the embedded runtime never loads the SDK

    return BlobSnapshotStore.from_settings(account_url, settings.snapshot_container,
                                           settings.azure_client_id)


def _service_bus(settings: Settings) -> EventBus:
    # Imported here so the embedded runtime never loads the Service Bus SDK. Raises ValueError naming
    # ServiceBusConnection__fullyQualifiedNamespace when neither it nor a connection string is set.
    from shared.adapters.servicebus_bus import ServiceBusEventBus

    return ServiceBusEventBus.from_settings(settings)


_container: Container | None = None
_lock = threading.Lock()


def container() -> Container:
    """The process's container, built from the environment on first use (never at import)."""
    global _container
    with _lock:
        if _container is None:
            configure_telemetry(TelemetrySettings.from_env())
            _container = build(Settings.from_env())
            freeze_startup_objects()
        return _container


@functools.cache  # only the first call freezes
def freeze_startup_objects() -> None:
    """Call once a process has started (its modules imported, its container built): what exists then lives as long
    as the process, so the cyclic garbage collector stops walking it (``gc.freeze``). A full collection walked the
    ~90,000 objects of the SDKs, pydantic and our modules in about 50 ms on the 2-core machine, stalling every
    event in flight: it alone set ``bench.throughput``'s reaction p99. Garbage is collected first, so none is kept
    for good; once per process (a frozen cycle is never collected, and a test process builds many containers; so
    it is not in ``build`` either)."""
    gc.collect()
    gc.freeze()


def use_container(value: Container | None) -> None:
    """The local host and tests install the container they built."""
    global _container
    with _lock:
        _container = value
