"""The ports a handler receives. Built once by the composition root (``shared.bootstrap``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.domain.quota import QuotaLimits
from shared.domain.reconcile import ReconcilePolicy
from shared.handlers.recent_documents import RecentJobs, RecentLedgers
from shared.ports import Clock, EventBus, NodeProvider, SimulatedCloud, SnapshotStore, Store, TokenProvider


@dataclass
class Deps:
    store: Store
    bus: EventBus
    provider: NodeProvider
    tokens: TokenProvider
    clock: Clock
    policy: ReconcilePolicy = field(default_factory=ReconcilePolicy)
    workspace_location: str = "eastus"
    quota_limits: QuotaLimits = field(default_factory=QuotaLimits)
    snapshots: SnapshotStore | None = None  # jobs' code (None: this deployment takes no code snapshots)
    simulation: SimulatedCloud | None = None  # only where the cloud is simulated (the local provider)
    recent_jobs: RecentJobs = field(default_factory=RecentJobs)  # job documents this process wrote last
    recent_ledgers: RecentLedgers = field(default_factory=RecentLedgers)  # quota ledgers it read or wrote last
