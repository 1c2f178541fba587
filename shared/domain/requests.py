"""Bodies of commands: what the HTTP API takes and what CloudEvents carry in ``data`` (the same JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.domain.cluster import ClusterSpec
from shared.domain.cluster_changes import ScaleSettingsUpdate, check_scale_settings
from shared.domain.errors import FieldErrors, InvalidField
from shared.domain.job import JobSpec
from shared.domain.validation import validate_cluster_spec_fields, validate_vm_size
from shared.domain.vm_sizes import normalize_location

MAX_COMMAND_ARGS = 1024
MAX_COMMAND_BYTES = 64 * 1024
MAX_ENV_VARS = 256
MAX_ENV_BYTES = 64 * 1024


class ClusterCreate(ClusterSpec):
    """The v1 ``AmlCompute.provisioning_configuration`` fields plus the name. ``max_nodes`` is optional here only so
    that its absence gets AmlCompute's own message ("max nodes count is mandatory"). Strict: ``true`` is not 1 and
    ``"4"`` is not 4; an unknown field is refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    max_nodes: int | None = None  # type: ignore[assignment]
    admin_user_password: str | None = Field(default=None, repr=False)
    identity_type: Literal["SystemAssigned", "UserAssigned"] | None = None
    identity_id: list[str] | None = None


class IdentityAssignment(BaseModel):
    """Body of add_identity (POST .../identity) and of the identity.add event."""

    model_config = ConfigDict(extra="forbid")

    identity_type: Literal["SystemAssigned", "UserAssigned"]
    identity_id: list[str] | None = None


class IdentityRemoval(BaseModel):
    """Body of remove_identity: no ids removes every identity."""

    model_config = ConfigDict(extra="forbid")

    identity_id: list[str] | None = None


@dataclass(frozen=True)
class CheckedCreate:
    spec: ClusterSpec
    warnings: list[str]


class JobSubmit(JobSpec):
    model_config = ConfigDict(extra="forbid")

    job_id: str | None = Field(default=None, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

    def spec(self) -> JobSpec:
        return JobSpec.model_validate(self.model_dump(exclude={"job_id"}))


class JobRef(BaseModel):
    job_id: str = Field(min_length=1, max_length=128)


class JobFinished(JobRef):
    attempt: int = Field(ge=1)
    exit_code: int


class NodeRef(BaseModel):
    node_id: str = Field(min_length=1, max_length=200)
    reason: str | None = None


class WakeUp(BaseModel):
    reason: str | None = None


class UnreadBody(BaseModel):
    """The ``data`` of an event whose handler reads nothing from it (any object is accepted)."""

    model_config = ConfigDict(extra="allow")


def check_cluster_create(body: ClusterCreate, workspace_location: str) -> CheckedCreate:
    """Every AmlCompute rule on a create (each error names the field and the rule), the v1 defaults, and the
    location: the workspace's when none is given; another one is accepted with a warning."""
    raw = body.model_dump()
    raw["location"] = normalize_location(body.location or workspace_location)
    validate_cluster_spec_fields(raw)
    raw["vm_size"] = validate_vm_size(body.vm_size, raw["location"]).name  # Azure's casing: one name, one size
    spec = ClusterSpec.model_validate({k: v for k, v in raw.items() if k in ClusterSpec.model_fields})
    check_scale_settings(spec)
    check_low_priority_settings(spec)
    warnings = []
    if spec.location != normalize_location(workspace_location):
        warnings.append(f"location '{spec.location}' differs from the workspace's '{workspace_location}': expect "
                        "higher network latency and data-transfer costs between the cluster, the workspace and "
                        "its datastores")
    return CheckedCreate(spec=spec, warnings=warnings)


def check_job_spec(spec: JobSpec) -> JobSpec:
    """Every rule of a job submit; all broken ones are reported together (``InvalidFields``)."""
    found = FieldErrors()
    for check in (_check_command, _check_datastores, _check_counts, _check_environment, check_preemption_settings):
        found.check(check, spec, default=None)
    found.raise_if_any()
    return spec


def _check_command(spec: JobSpec) -> None:
    if not spec.command:
        raise InvalidField("command", "must be a non-empty list of arguments (it is never passed to a shell)")
    if len(spec.command) > MAX_COMMAND_ARGS:
        raise InvalidField("command", f"at most {MAX_COMMAND_ARGS} arguments")
    if sum(len(a.encode()) for a in spec.command) > MAX_COMMAND_BYTES:
        raise InvalidField("command", f"at most {MAX_COMMAND_BYTES} bytes in all")
    if any("\x00" in a for a in spec.command):
        raise InvalidField("command", "arguments cannot contain NUL characters")
    if not spec.command[0]:
        raise InvalidField("command", "the program (first argument) cannot be empty")


def _check_datastores(spec: JobSpec) -> None:
    for resource in spec.datastores:
        if not resource.startswith("https://") or len(resource) > 512:
            raise InvalidField("datastores", f"each datastore is an https:// resource URI, got {resource[:80]!r}")


def _check_counts(spec: JobSpec) -> None:
    found = FieldErrors()
    if spec.node_count < 1:
        found.errors.append(InvalidField("node_count", "must be 1 or more"))
    if spec.max_retries < 0 or spec.max_retries > 100:
        found.errors.append(InvalidField("max_retries", "must be between 0 and 100"))
    found.raise_if_any()


def _check_environment(spec: JobSpec) -> None:
    env = spec.environment_variables
    if len(env) > MAX_ENV_VARS:
        raise InvalidField("environment_variables", f"at most {MAX_ENV_VARS} variables")
    if sum(len(k.encode()) + len(v.encode()) for k, v in env.items()) > MAX_ENV_BYTES:
        raise InvalidField("environment_variables", f"at most {MAX_ENV_BYTES} bytes in all")
    for key, value in env.items():
        if not key or "=" in key or "\x00" in key or "\x00" in value:
            raise InvalidField("environment_variables", f"invalid variable name or value: {key[:50]!r}")
        if key.upper().startswith("COMPUTEPLANE_") or key in RESERVED_ENV:
            raise InvalidField("environment_variables", f"{key} is set by ComputePlane and cannot be overridden")


def check_low_priority_settings(spec: ClusterSpec) -> None:
    """The fallback and the after-retries choice concern preempted jobs: only low-priority nodes are preempted."""
    if spec.vm_priority != "lowpriority":
        for name in ("low_priority_fallback", "on_preemption_retries_exhausted"):
            if getattr(spec, name) is not None:
                raise InvalidField(name, "applies only to a cluster with vm_priority 'lowpriority'")


def check_preemption_settings(spec: JobSpec) -> None:
    if spec.max_preemption_retries is not None and not 0 <= spec.max_preemption_retries <= 1000:
        raise InvalidField("max_preemption_retries", "must be between 0 and 1000")
    if spec.checkpoint_interval_seconds is not None and not 1 <= spec.checkpoint_interval_seconds <= 7 * 86400:
        raise InvalidField("checkpoint_interval_seconds", "must be between 1 and 604800 (a week)")
    if spec.expected_runtime_seconds is not None and not 1 <= spec.expected_runtime_seconds <= 365 * 86400:
        raise InvalidField("expected_runtime_seconds", "must be between 1 and 31536000 (a year)")
    if spec.deadline is not None and spec.expected_runtime_seconds is None:
        raise InvalidField("deadline", "needs expected_runtime_seconds, to tell whether the job can still meet it")


RESERVED_ENV = frozenset({"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET",
                          "DEFAULT_IDENTITY_CLIENT_ID"})

__all__ = [
    "ClusterCreate",
    "JobFinished",
    "JobRef",
    "JobSubmit",
    "NodeRef",
    "ScaleSettingsUpdate",
    "ValidationError",
    "WakeUp",
    "check_cluster_create",
    "check_job_spec",
]
