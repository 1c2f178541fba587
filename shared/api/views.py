"""What the API returns: AmlCompute-shaped status views of the documents."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from shared.domain.cluster import AllocationState, Cluster
from shared.domain.job import Job, JobHistoryEntry
from shared.domain.low_priority import LowPriorityFallback
from shared.domain.validation import scale_settings_warnings


class ScaleSettings(BaseModel):
    min_nodes: int
    max_nodes: int
    idle_seconds_before_scaledown: int


class ErrorView(BaseModel):
    code: str
    message: str
    time: datetime


class IdentityView(BaseModel):
    type: str | None
    principal_ids: list[str]
    client_ids: list[str]
    default_client_id: str | None
    user_assigned_identities: list[dict[str, str | None]]

    @classmethod
    def of(cls, c: Cluster) -> IdentityView:
        ids = c.identity.identities
        default = c.identity.default
        return cls(type=c.identity.type, principal_ids=[i.principal_id for i in ids],
                   client_ids=[i.client_id for i in ids], default_client_id=default.client_id if default else None,
                   user_assigned_identities=[{"resource_id": i.resource_id, "client_id": i.client_id,
                                              "principal_id": i.principal_id} for i in ids
                                             if i.kind == "UserAssigned"])


class ClusterView(BaseModel):
    id: str
    name: str
    workspace: str
    vm_size: str
    vm_priority: str
    location: str | None
    tags: dict[str, str]
    description: str | None
    provisioning_state: str
    allocation_state: str
    allocation_state_transition_time: datetime
    current_node_count: int
    target_node_count: int
    node_state_counts: dict[str, int]
    node_priority_counts: dict[str, int]  # nodes held, dedicated and lowpriority
    low_priority_fallback: LowPriorityFallback | None
    on_preemption_retries_exhausted: str | None
    scale_settings: ScaleSettings
    errors: list[ErrorView]
    warnings: list[str]
    identity: IdentityView
    vnet: dict[str, str | None] | None
    admin_username: str | None
    remote_login_port_public_access: str
    enable_node_public_ip: bool
    inter_node_communication: str
    created_at: datetime
    modified_at: datetime

    @classmethod
    def of(cls, c: Cluster) -> ClusterView:
        s = c.spec
        return cls(
            id=f"/workspaces/{c.workspace}/clusters/{c.name}", name=c.name, workspace=c.workspace,
            vm_size=s.vm_size, vm_priority=s.vm_priority, location=s.location, tags=s.tags,
            description=s.description, provisioning_state=c.provisioning_state.value,
            allocation_state=c.allocation_state.value,
            allocation_state_transition_time=c.allocation_state_transition_time,
            current_node_count=c.current_node_count, target_node_count=shown_target_node_count(c),
            node_state_counts=c.node_state_counts(), node_priority_counts=c.node_priority_counts(),
            low_priority_fallback=s.low_priority_fallback,
            on_preemption_retries_exhausted=s.on_preemption_retries_exhausted,
            scale_settings=ScaleSettings(min_nodes=s.min_nodes, max_nodes=s.max_nodes,
                                         idle_seconds_before_scaledown=s.idle_seconds_before_scaledown),
            errors=[ErrorView(code=e.code, message=e.message, time=e.time) for e in c.errors],
            warnings=[*c.warnings, *scale_settings_warnings(s.max_nodes)], identity=IdentityView.of(c),
            vnet={"resource_group": s.vnet_resourcegroup_name, "vnet_name": s.vnet_name, "subnet_name": s.subnet_name}
            if s.vnet_name else None,
            admin_username=s.admin_username, remote_login_port_public_access=s.remote_login_port_public_access,
            enable_node_public_ip=s.enable_node_public_ip, inter_node_communication=s.inter_node_communication,
            created_at=c.created_at, modified_at=c.modified_at)


def shown_target_node_count(c: Cluster) -> int:
    """The target as AmlCompute shows it: a Steady cluster's target is the nodes it holds (idle nodes waiting out
    their idle timeout stay until then, so "1 of 1", not "1 of 0"); while Resizing, the count it is heading for."""
    return c.current_node_count if c.allocation_state is AllocationState.STEADY else c.target_node_count


class NodeView(BaseModel):
    node_id: str
    state: str
    run_id: str | None
    private_ip: str | None
    priority: str | None = None  # dedicated or lowpriority (a low-priority cluster's fallback nodes are dedicated)


class JobView(BaseModel):
    id: str
    workspace: str
    cluster: str
    state: str
    reason: str | None
    attempts: int
    nodes: list[str]
    exit_code: int | None
    command: list[str]
    node_count: int
    environment_variables: dict[str, str]
    max_retries: int
    code: str | None = None
    # Set in the answer to a cancel: the cancel is on its way to the cluster; ``state`` says Canceled once it is done.
    cancel_requested: bool = False
    max_preemption_retries: int | None
    on_preemption_retries_exhausted: str | None
    checkpoint_interval_seconds: int | None
    deadline: datetime | None
    expected_runtime_seconds: int | None
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    history: list[JobHistoryEntry]

    @classmethod
    def of(cls, j: Job) -> JobView:
        return cls(id=j.id, workspace=j.workspace, cluster=j.cluster, state=j.state.value, reason=j.reason,
                   attempts=j.attempts, nodes=j.nodes, exit_code=j.exit_code, command=j.spec.command,
                   node_count=j.spec.node_count, environment_variables=j.spec.environment_variables,
                   max_retries=j.spec.max_retries, max_preemption_retries=j.spec.max_preemption_retries,
                   on_preemption_retries_exhausted=j.spec.on_preemption_retries_exhausted,
                   checkpoint_interval_seconds=j.spec.checkpoint_interval_seconds, deadline=j.spec.deadline,
                   expected_runtime_seconds=j.spec.expected_runtime_seconds, code=j.spec.code,
                   submitted_at=j.submitted_at, started_at=j.started_at,
                   finished_at=j.finished_at, history=j.history)


class JobLogs(BaseModel):
    job_id: str
    attempt: int
    state: str
    logs: str


class EventAccepted(BaseModel):
    id: str
    type: str
    queue: str
