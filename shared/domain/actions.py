"""What a decision asks the world to do. The handler saves the cluster first, then carries these out;
each is safe to repeat, because a crash between the two means the next reconcile asks again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.domain.job import JobUpdate
from shared.domain.low_priority import Priority


@dataclass(frozen=True)
class ProvisionNode:
    node_id: str
    priority: Priority | None = None  # None: the cluster's vm_priority


@dataclass(frozen=True)
class ReleaseNode:
    node_id: str


@dataclass(frozen=True)
class StartRun:
    job_id: str
    attempt: int
    node_ids: tuple[str, ...]


@dataclass(frozen=True)
class StopRun:
    job_id: str
    attempt: int


@dataclass(frozen=True)
class ProjectJob:
    """Bring the job document in line. Terminal updates are written BEFORE the cluster is saved (a finished job
    must never be forgotten); others after it (a stale 'Queued' is healed by the next resync)."""

    update: JobUpdate


@dataclass(frozen=True)
class WakeUpAt:
    """Reconcile this cluster again at ``at`` (a scheduled message): idle deadlines, boot timeouts, releases."""

    at: datetime


Action = ProvisionNode | ReleaseNode | StartRun | StopRun | ProjectJob | WakeUpAt
