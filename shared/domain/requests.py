"""Bodies of commands: what the HTTP API takes and what CloudEvents carry in ``data`` (the same JSON)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.domain.cluster import ClusterSpec
from shared.domain.commands import ScaleSettingsUpdate, check_scale_settings
from shared.domain.errors import InvalidField
from shared.domain.job import JobSpec

MAX_COMMAND_ARGS = 1024
MAX_COMMAND_BYTES = 64 * 1024
MAX_ENV_VARS = 256
MAX_ENV_BYTES = 64 * 1024


class ClusterCreate(ClusterSpec):
    name: str

    def spec(self) -> ClusterSpec:
        return ClusterSpec.model_validate(self.model_dump(exclude={"name"}))


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


def check_cluster_create(body: ClusterCreate) -> ClusterSpec:
    """Field rules beyond types. Each error names the field and the rule."""
    spec = body.spec()
    check_scale_settings(spec)
    return spec


def check_job_spec(spec: JobSpec) -> JobSpec:
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
    if spec.node_count < 1:
        raise InvalidField("node_count", "must be 1 or more")
    if spec.max_retries < 0 or spec.max_retries > 100:
        raise InvalidField("max_retries", "must be between 0 and 100")
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
    return spec


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
