"""The cluster aggregate: spec, nodes and the placement of jobs on them, saved in one conditional write."""

from __future__ import annotations

from base64 import urlsafe_b64encode
from datetime import datetime, timedelta
from enum import StrEnum
from hashlib import blake2b
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from shared.domain.identity import ClusterIdentity
from shared.domain.job import JobState
from shared.domain.low_priority import (
    DEDICATED,
    DEFAULT_MAX_PREEMPTION_RETRIES,
    AfterPreemptionRetries,
    LowPriorityFallback,
    Priority,
)
from shared.domain.utc import UtcDatetime
from shared.domain.validation import DEFAULT_IDLE_SECONDS_BEFORE_SCALEDOWN, DEFAULT_MIN_NODES, DEFAULT_VM_PRIORITY
from shared.domain.vm_sizes import VmPriority

APPLIED_EVENTS_KEPT = 200


APPLIED_EVENT_KEY_LENGTH = 10
_LEGACY_KEY_LENGTH = 12  # what versions before this one kept: the same digest's first 12 characters


def applied_event_key(event_id: str) -> str:
    """What ``Cluster.applied_events`` keeps of an event id: 10 characters of its BLAKE2b digest, not the id itself.
    Producers make ids as long as they like ("submit-" and a uuid is 43 characters), and the 200 kept are written
    with every save of the cluster: at steady state they are most of its document, and Cosmos DB charges a write by
    size. 60 bits: an event id taken for one of the 200 a cluster keeps has a chance of 2e-16, for one of the few
    thousand a tombstone keeps below 2e-15."""
    digest = urlsafe_b64encode(blake2b(event_id.encode(), digest_size=9).digest()).decode()
    return digest[:APPLIED_EVENT_KEY_LENGTH]


def _as_key(entry: str) -> str:
    """An entry of a list written before: a 12-character key (what the last version kept), or a whole id (what the
    versions before keys kept; one of exactly 12 characters, written by those and never rewritten since, is taken
    for a key)."""
    return entry[:APPLIED_EVENT_KEY_LENGTH] if len(entry) == _LEGACY_KEY_LENGTH else applied_event_key(entry)


def _joined_keys(value: object) -> object:
    """Documents written before held a list, of 12-character keys or of whole ids: read as the string of keys."""
    if isinstance(value, list):
        return "".join(_as_key(entry) for entry in value if isinstance(entry, str))
    return value


# The keys one after the other, in the order applied, in memory as in the document: a JSON list spent 3 more bytes
# on each, and a list of them cost a Python call per key to read and write.
AppliedEventKeys = Annotated[str, BeforeValidator(_joined_keys)]


class NodeState(StrEnum):
    PREPARING = "preparing"
    IDLE = "idle"
    RUNNING = "running"
    LEAVING = "leaving"
    PREEMPTED = "preempted"
    UNUSABLE = "unusable"


_NODE_STATE_NAMES = tuple(state.value for state in NodeState)


class ProvisioningState(StrEnum):
    CREATING = "Creating"
    UPDATING = "Updating"
    DELETING = "Deleting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"


class AllocationState(StrEnum):
    STEADY = "Steady"
    RESIZING = "Resizing"


class Node(BaseModel):
    node_id: str
    state: NodeState
    run_id: str | None = None
    requested_at: UtcDatetime
    ready_at: UtcDatetime | None = None
    idle_since: UtcDatetime | None = None
    private_ip: str | None = None
    priority: Priority | None = None  # None (documents of an older version): the cluster's vm_priority


class ClusterSpec(BaseModel):
    """What the user asked for. Every field takes part in the get-or-create comparison."""

    model_config = ConfigDict(extra="forbid")

    vm_size: str
    max_nodes: int
    min_nodes: int = DEFAULT_MIN_NODES  # the defaults are AmlCompute's, named once in shared.domain.validation
    vm_priority: VmPriority = DEFAULT_VM_PRIORITY
    idle_seconds_before_scaledown: int = DEFAULT_IDLE_SECONDS_BEFORE_SCALEDOWN
    location: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    description: str | None = None
    vnet_resourcegroup_name: str | None = None
    vnet_name: str | None = None
    subnet_name: str | None = None
    admin_username: str | None = None
    admin_user_ssh_key: str | None = None  # a public key; the password is checked and never stored
    remote_login_port_public_access: Literal["Enabled", "Disabled", "NotSpecified"] = "NotSpecified"
    enable_node_public_ip: bool = True
    inter_node_communication: Literal["Enabled", "Disabled"] = "Enabled"
    # Low priority only (see shared.domain.low_priority): dedicated nodes for jobs that preemption keeps back, and
    # what happens to a job whose preemption retries run out (None: requeue on low priority, never dropped).
    # Not strict (unlike the counts): enum values and a nested object arrive as JSON strings and dicts.
    low_priority_fallback: LowPriorityFallback | None = Field(default=None, strict=False)
    on_preemption_retries_exhausted: AfterPreemptionRetries | None = Field(default=None, strict=False)

    @property
    def idle_timeout(self) -> timedelta:
        return timedelta(seconds=self.idle_seconds_before_scaledown)

    def differences(self, other: ClusterSpec) -> dict[str, tuple[Any, Any]]:
        """Fields whose values differ, as (self, other)."""
        mine, theirs = self.model_dump(), other.model_dump()
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}


class ClusterErrorCode(StrEnum):
    """The conditions a cluster reports in ``errors`` (one entry per code), as AmlCompute names them."""

    NODE_PROVISIONING_FAILED = "NodeProvisioningFailed"
    QUOTA_EXCEEDED = "QuotaExceeded"  # the cluster cannot grow: a quota or the cloud's own quota refusal
    RESIZE_ERROR = "ResizeError"  # any other refusal of the cloud to resize
    RESOURCE_LOCKED = "ResourceLocked"


class Interruption(StrEnum):
    """Why a running attempt ended without an exit code (the job's reason starts with it)."""

    PREEMPTED = "Preempted"  # counted against max_preemption_retries
    NODE_FAILED = "NodeFailed"  # these against max_retries
    NODE_LOST = "NodeLost"
    RUN_LOST = "RunLost"


class JobPhase(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"


class JobEntry(BaseModel):
    """The cluster's scheduling view of a job: only what placement needs. Command and logs live in the job document."""

    job_id: str
    node_count: int
    max_retries: int
    submitted_at: UtcDatetime
    phase: JobPhase = JobPhase.QUEUED
    attempt: int = 1
    node_ids: list[str] = Field(default_factory=list)
    started_at: UtcDatetime | None = None
    # What the job document should show (Queued/Preparing/Running; None: nothing yet) and why; a change is
    # projected to the job document. ``interrupted_by``: the interruption that requeued it (its reason then stays
    # until it runs again).
    visible_state: JobState | None = JobState.QUEUED
    reason: str | None = None
    interrupted_by: Interruption | None = None
    # Interruptions, counted apart: infrastructure failures against max_retries, preemptions against
    # max_preemption_retries (see shared.domain.low_priority).
    failures: int = 0
    preemptions: int = 0
    lost_seconds: float = 0.0  # attempt time lost to preemption (work since the last checkpoint)
    progress_seconds: float = 0.0  # work saved by checkpoints of interrupted attempts
    on_dedicated: bool = False  # fallen back: its attempts run on dedicated nodes
    max_preemption_retries: int = DEFAULT_MAX_PREEMPTION_RETRIES
    on_preemption_retries_exhausted: AfterPreemptionRetries | None = None
    checkpoint_interval_seconds: int | None = None
    deadline: UtcDatetime | None = None
    expected_runtime_seconds: int | None = None

    @field_validator("visible_state", mode="before")
    @classmethod
    def _nothing_shown_yet(cls, value: object) -> object:
        return None if value == "" else value  # documents written before the enum said "" for None


class ClusterError(BaseModel):
    code: str
    message: str
    time: UtcDatetime


class Cluster(BaseModel):
    """One document per cluster. ``etag`` is the store's version of what was read (never part of the body)."""

    model_config = ConfigDict(validate_assignment=False)

    workspace: str
    name: str
    uid: str
    spec: ClusterSpec
    provisioning_state: ProvisioningState = ProvisioningState.CREATING
    allocation_state: AllocationState = AllocationState.STEADY
    allocation_state_transition_time: UtcDatetime
    target_node_count: int = 0
    nodes: list[Node] = Field(default_factory=list)
    jobs: list[JobEntry] = Field(default_factory=list)
    errors: list[ClusterError] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    identity: ClusterIdentity = Field(default_factory=ClusterIdentity)
    applied_events: AppliedEventKeys = ""  # keys of the last ids (``applied_event_key``), oldest first
    created_by_event: str | None = None  # the create event's id: kept in the tombstone when the cluster is deleted
    next_reconcile_at: UtcDatetime | None = None
    # The region's quota ledger may hold more cores for this cluster than its nodes need (cores are given back
    # lazily while quota has room, ``shared.handlers.quota``): the timer's resync gives them back by then. Set and
    # cleared by the decision that looked at the ledger; every decision keeps ``next_reconcile_at`` no later.
    quota_settle_by: UtcDatetime | None = None
    # The ledger's bookings that cover this cluster's nodes (ledger key -> booking id): growing within what one of
    # them still holds needs no new booking. A decision that gives cores back drops its entries in its own commit, so
    # the next growth books anew and the give-back, maybe still on its way, leaves that booking alone.
    quota_booked: dict[str, str] = Field(default_factory=dict)
    provisioning_failures: int = 0  # consecutive nodes the provider failed; reset when one becomes ready
    spec_changed_at: UtcDatetime | None = None  # when the last applied update was asked for
    wake_scheduled_for: UtcDatetime | None = None  # the last scheduled wake-up sent, so it is sent once
    node_seq: int = 0
    node_history: str = ""  # the dashboard's node timeline, compact (see node_history.py)
    created_at: UtcDatetime
    modified_at: UtcDatetime
    etag: str | None = Field(default=None, exclude=True)

    # --- queries -----------------------------------------------------------------------------------------------
    def node(self, node_id: str) -> Node | None:
        return next((n for n in self.nodes if n.node_id == node_id), None)

    def job(self, job_id: str) -> JobEntry | None:
        return next((j for j in self.jobs if j.job_id == job_id), None)

    def nodes_in(self, *states: NodeState, priority: Priority | None = None) -> list[Node]:
        return [n for n in self.nodes
                if n.state in states and (priority is None or self.priority_of(n) == priority)]

    def priority_of(self, node: Node) -> Priority:
        return node.priority or self.spec.vm_priority

    def priority_for(self, entry: JobEntry) -> Priority:
        """The nodes a job runs on: the cluster's, or dedicated once the job has fallen back."""
        return DEDICATED if entry.on_dedicated else self.spec.vm_priority

    def priorities(self) -> list[Priority]:
        """The cluster's own priority first, then dedicated if fallen-back jobs or nodes use it."""
        used = {self.spec.vm_priority, *(self.priority_of(n) for n in self.nodes),
                *(self.priority_for(j) for j in self.jobs)}
        fallback: list[Priority] = [DEDICATED] if DEDICATED in used and self.spec.vm_priority != DEDICATED else []
        return [self.spec.vm_priority, *fallback]

    @property
    def current_node_count(self) -> int:
        """Every node we hold (and pay for), whatever its state."""
        return len(self.nodes)

    def node_state_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(_NODE_STATE_NAMES, 0)
        for n in self.nodes:
            counts[n.state] += 1  # a StrEnum member finds its value's key: no per-node .value lookup
        return counts

    def node_priority_counts(self) -> dict[str, int]:
        """Nodes held, by priority (a low-priority cluster with a fallback may hold dedicated ones too)."""
        counts = {DEDICATED: 0, "lowpriority": 0}
        for n in self.nodes:
            counts[self.priority_of(n)] += 1
        return counts

    def has_applied(self, event_id: str) -> bool:
        keys, key = self.applied_events, applied_event_key(event_id)
        found = keys.find(key)
        while found > 0 and found % APPLIED_EVENT_KEY_LENGTH:  # a match across two keys is none: look further
            found = keys.find(key, found + 1)
        return found >= 0

    def applied_keys(self) -> list[str]:
        keys = self.applied_events
        return [keys[i:i + APPLIED_EVENT_KEY_LENGTH] for i in range(0, len(keys), APPLIED_EVENT_KEY_LENGTH)]

    # --- bookkeeping -------------------------------------------------------------------------------------------
    def record_applied(self, event_id: str) -> None:
        """The event id is saved in the same write as the change it caused: a redelivery finds it and stops."""
        if not self.has_applied(event_id):
            keys = self.applied_events + applied_event_key(event_id)
            self.applied_events = keys[-APPLIED_EVENTS_KEPT * APPLIED_EVENT_KEY_LENGTH:]

    def new_node_id(self) -> str:
        self.node_seq += 1
        return f"{self.name}-{self.uid[:6]}-{self.node_seq:04d}"

    def add_error(self, code: ClusterErrorCode, message: str, now: datetime) -> None:
        """One entry per code: the newest message replaces an older one, so errors never pile up."""
        self.errors = [e for e in self.errors if e.code != code]
        self.errors.append(ClusterError(code=code, message=message, time=now))

    def clear_error(self, code: ClusterErrorCode) -> None:
        self.errors = [e for e in self.errors if e.code != code]
