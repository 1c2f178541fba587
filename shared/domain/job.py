"""The job document: what a user submitted and what happened to it. Scheduling lives in the cluster aggregate."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.low_priority import AfterPreemptionRetries
from shared.domain.utc import UtcDatetime


class JobState(StrEnum):
    QUEUED = "Queued"
    PREPARING = "Preparing"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELED})


class JobSpec(BaseModel):
    """What a job asks for; the body of job-submit (HTTP and CloudEvent alike). Strict, and closed: an unknown
    field (a misspelt ``timeout``) is refused, not ignored."""

    model_config = ConfigDict(extra="forbid", strict=True)

    command: list[str]
    node_count: int = 1
    environment_variables: dict[str, str] = Field(default_factory=dict)
    max_retries: int = 3
    # Resources the system reaches with the cluster's default identity before the job starts (the seed: storage
    # mounts, datastores, container registry), e.g. "https://storage.azure.com/".
    datastores: list[str] = Field(default_factory=list)
    registry: str | None = None
    # The job's code: the SHA-256 of a snapshot uploaded to the workspace, unpacked as every node's working
    # directory (ScriptRunConfig's source_directory).
    code: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    # On low-priority nodes (see shared.domain.low_priority). None: the cluster's setting or the default.
    max_preemption_retries: int | None = None
    on_preemption_retries_exhausted: AfterPreemptionRetries | None = Field(default=None, strict=False)  # a JSON string
    # A job that saves its state every so often (in COMPUTEPLANE_CHECKPOINT_DIR, kept across its attempts) loses
    # only the work since its last checkpoint to a preemption.
    checkpoint_interval_seconds: int | None = None
    # A job that must finish by a time falls back to dedicated nodes when preemptions would make it miss it;
    # the check needs how long the job runs.
    deadline: UtcDatetime | None = Field(default=None, strict=False)  # an ISO-8601 string in JSON bodies
    expected_runtime_seconds: int | None = None

    def system_resources(self) -> list[str]:
        return [*self.datastores, *([REGISTRY_RESOURCE] if self.registry else [])]


REGISTRY_RESOURCE = "https://containerregistry.azure.net/"


class JobHistoryEntry(BaseModel):
    time: UtcDatetime
    state: JobState
    attempt: int
    reason: str | None = None


class Job(BaseModel):
    workspace: str
    id: str
    cluster: str
    spec: JobSpec
    state: JobState = JobState.QUEUED
    reason: str | None = None
    attempts: int = 0
    nodes: list[str] = Field(default_factory=list)
    exit_code: int | None = None
    scheduled: bool = False  # the cluster has taken the job into its queue
    submitted_at: UtcDatetime
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    history: list[JobHistoryEntry] = Field(default_factory=list)
    etag: str | None = Field(default=None, exclude=True)

    @classmethod
    def submitted(cls, workspace: str, job_id: str, cluster: str, spec: JobSpec, at: datetime) -> Job:
        """A job as it is first recorded, by the HTTP submit or by a submit event from another system."""
        return cls(workspace=workspace, id=job_id, cluster=cluster, spec=spec, submitted_at=at,
                   reason="submitted; waiting for the scheduler")

    def working_copy(self) -> Job:
        """A copy ``apply_job_update`` may change without changing this one: it assigns fields and appends to the
        history, so a new history list is all the copy needs (a deep copy cost as much as a store read)."""
        return self.model_copy(update={"history": list(self.history)})


class JobUpdate(BaseModel):
    """A change to project onto the job document. Applying it twice, or late, changes nothing."""

    job_id: str
    state: JobState
    attempt: int
    reason: str | None = None
    nodes: list[str] | None = None
    exit_code: int | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal


def apply_job_update(job: Job, update: JobUpdate, now: datetime) -> bool:
    """Apply ``update`` if it is news; return whether the document changed.

    A terminal state is final. An update for an older attempt than the document has seen is stale.
    """
    if job.state.is_terminal:
        return False
    if update.attempt < job.attempts:
        return False
    changed = (job.state, job.attempts, job.reason, job.scheduled) != (
        update.state, max(job.attempts, update.attempt), update.reason, True)
    if update.nodes is not None and update.nodes != job.nodes:
        changed = True
    if not changed:
        return False
    job.scheduled = True
    job.attempts = max(job.attempts, update.attempt)
    job.state = update.state
    job.reason = update.reason
    if update.nodes is not None:
        job.nodes = list(update.nodes)
    if update.state is JobState.RUNNING and job.started_at is None:
        job.started_at = now
    if update.is_terminal:
        job.finished_at = now
        job.exit_code = update.exit_code
    job.history.append(JobHistoryEntry(time=now, state=update.state, attempt=job.attempts, reason=update.reason))
    return True
