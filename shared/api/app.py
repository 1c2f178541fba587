"""Routes. Each validates, calls one command handler, and answers; the work happens in the queue functions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from shared.api import catalogue, dashboard, locks, snapshots
from shared.api.arm import cloud as arm_cloud
from shared.api.arm import routes as arm_routes
from shared.api.arm.paths import ArmPathCasing
from shared.api.auth import ApiKeyMiddleware, ApiKeys
from shared.api.deps import ContainerSource, DepsDep
from shared.api.errors import install_error_handlers
from shared.api.limits import BodySizeLimit
from shared.api.openapi_docs import install_docs
from shared.api.views import ClusterView, EventAccepted, JobLogs, JobView, NodeView
from shared.domain.cluster_changes import ScaleSettingsUpdate
from shared.domain.errors import InvalidField
from shared.domain.job import JobSpec
from shared.domain.requests import ClusterCreate, IdentityAssignment, IdentityRemoval
from shared.handlers import identity, use_cases
from shared.handlers.registry import decode_event
from shared.telemetry.http import RequestTelemetry

Workspace = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", description="workspace name")]
ClusterName = Annotated[str, Path(min_length=1, max_length=64)]
JobId = Annotated[str, Path(min_length=1, max_length=128)]
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", pattern=r"^[A-Za-z0-9._:-]{1,128}$",
    description="Sending a submit again with the same key (after a timeout, a 503 or a lost answer) returns the job "
                "the first one created instead of queuing another")]


workspace_routes = APIRouter(prefix="/api/workspaces/{workspace}")


@workspace_routes.post("/clusters", status_code=202, response_model=ClusterView,
                       responses={200: {"model": ClusterView}, 409: {}, 422: {}})
def create_cluster(workspace: Workspace, body: ClusterCreate, deps: DepsDep, request: Request,
                   response: Response) -> ClusterView:
    cluster, created = use_cases.create_cluster(deps, workspace, body)
    response.status_code = 202 if created else 200
    response.headers["Location"] = str(request.url_for("show_cluster", workspace=workspace, name=cluster.name))
    return ClusterView.of(cluster)


@workspace_routes.get("/clusters", response_model=list[ClusterView])
def list_clusters(workspace: Workspace, deps: DepsDep) -> list[ClusterView]:
    return [ClusterView.of(c) for c in deps.store.list_clusters(workspace)]


@workspace_routes.get("/clusters/{name}", response_model=ClusterView, name="show_cluster")
def show_cluster(workspace: Workspace, name: ClusterName, deps: DepsDep) -> ClusterView:
    return ClusterView.of(use_cases.get_cluster(deps, workspace, name))


@workspace_routes.patch("/clusters/{name}", response_model=ClusterView)
def update_cluster(workspace: Workspace, name: ClusterName, body: ScaleSettingsUpdate, deps: DepsDep) -> ClusterView:
    return ClusterView.of(use_cases.update_cluster(deps, workspace, name, body))


@workspace_routes.delete("/clusters/{name}", status_code=202, response_model=ClusterView)
def delete_cluster(workspace: Workspace, name: ClusterName, deps: DepsDep) -> ClusterView:
    return ClusterView.of(use_cases.delete_cluster(deps, workspace, name))


@workspace_routes.get("/clusters/{name}/nodes", response_model=list[NodeView])
def list_nodes(workspace: Workspace, name: ClusterName, deps: DepsDep) -> list[NodeView]:
    cluster = use_cases.get_cluster(deps, workspace, name)
    return [NodeView(node_id=n.node_id, state=n.state.value, run_id=n.run_id, private_ip=n.private_ip,
                     priority=cluster.priority_of(n))
            for n in cluster.nodes]


@workspace_routes.post("/clusters/{name}/identity", response_model=ClusterView)
def add_identity(workspace: Workspace, name: ClusterName, body: IdentityAssignment, deps: DepsDep) -> ClusterView:
    """AmlCompute's add_identity: a system-assigned identity, or user-assigned ones (never both)."""
    return ClusterView.of(identity.assign_identity(deps, workspace, name, body))


@workspace_routes.delete("/clusters/{name}/identity", response_model=ClusterView)
def remove_identity(workspace: Workspace, name: ClusterName, deps: DepsDep,
                    identity_id: Annotated[list[str] | None, Query()] = None) -> ClusterView:
    """AmlCompute's remove_identity: all identities, or the user-assigned ones listed as ``identity_id``."""
    return ClusterView.of(identity.unassign_identity(deps, workspace, name, IdentityRemoval(identity_id=identity_id)))


@workspace_routes.post("/clusters/{name}/nodes/{node_id}/preempt", status_code=202, response_model=NodeView)
def preempt_node(workspace: Workspace, name: ClusterName, node_id: Annotated[str, Path(max_length=200)],
                 deps: DepsDep) -> NodeView:
    """Take a low-priority node away, as Azure may at any time (local provider: for trying out preemption)."""
    node = use_cases.preempt_node(deps, workspace, name, node_id)
    return NodeView(node_id=node.node_id, state="preempted", run_id=node.run_id, private_ip=node.private_ip,
                    priority="lowpriority")


@workspace_routes.post("/clusters/{name}/jobs", status_code=202, response_model=JobView,
                       responses={200: {"model": JobView}, 409: {}, 422: {}})
def submit_job(workspace: Workspace, name: ClusterName, body: JobSpec, deps: DepsDep, request: Request,
               response: Response, idempotency_key: IdempotencyKey = None) -> JobView:
    job, created = use_cases.submit_job(deps, workspace, name, body, idempotency_key)
    response.status_code = 202 if created else 200
    response.headers["Location"] = str(request.url_for("show_job", workspace=workspace, job_id=job.id))
    return JobView.of(job)


@workspace_routes.get("/clusters/{name}/jobs", response_model=list[JobView])
def list_cluster_jobs(workspace: Workspace, name: ClusterName, deps: DepsDep) -> list[JobView]:
    use_cases.get_cluster(deps, workspace, name)
    return [JobView.of(j) for j in deps.store.list_jobs(workspace, name)]


@workspace_routes.get("/jobs", response_model=list[JobView])
def list_jobs(workspace: Workspace, deps: DepsDep) -> list[JobView]:
    return [JobView.of(j) for j in deps.store.list_jobs(workspace)]


@workspace_routes.get("/jobs/{job_id}", response_model=JobView, name="show_job")
def show_job(workspace: Workspace, job_id: JobId, deps: DepsDep) -> JobView:
    return JobView.of(use_cases.get_job(deps, workspace, job_id))


@workspace_routes.get("/jobs/{job_id}/logs", response_model=JobLogs)
def job_logs(workspace: Workspace, job_id: JobId, deps: DepsDep,
             attempt: Annotated[int | None, Query(ge=1)] = None) -> JobLogs:
    job = use_cases.get_job(deps, workspace, job_id)
    chosen = attempt or max(job.attempts, 1)
    if chosen > max(job.attempts, 1):
        raise InvalidField("attempt", f"the job has had {job.attempts} attempt(s)")
    return JobLogs(job_id=job.id, attempt=chosen, state=job.state.value,
                   logs=deps.provider.read_logs(job.id, chosen) or "")


@workspace_routes.post("/jobs/{job_id}/cancel", status_code=202, response_model=JobView)
def cancel_job(workspace: Workspace, job_id: JobId, deps: DepsDep) -> JobView:
    """202 with the job as it is now and ``cancel_requested: true``; its state becomes Canceled shortly after."""
    return JobView.of(use_cases.cancel_job(deps, workspace, job_id)).model_copy(update={"cancel_requested": True})


system_routes = APIRouter(prefix="/api")


@system_routes.post("/events", status_code=202, response_model=EventAccepted,
                    openapi_extra={"requestBody": {"required": True, "content": {
                        "application/cloudevents+json": {"schema": {"type": "object"}},
                        "application/json": {"schema": {"type": "object"}}}}})
async def accept_event(request: Request, deps: DepsDep) -> EventAccepted:
    """A structured-mode CloudEvent from another system, routed to its queue by type."""
    event = decode_event(await request.body())
    deps.bus.publish(event)
    return EventAccepted(id=event.id, type=event.type, queue=event.queue)


@system_routes.get("/health")
def health() -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app(container: ContainerSource) -> FastAPI:
    """The API of the given container (a callable, so that it can be built on first use)."""
    app = FastAPI(title="ComputePlane", version="0.1.0",
                  description="A serverless control plane for ML compute clusters with AmlCompute semantics.",
                  docs_url=None, openapi_url="/api/openapi.json", redoc_url=None)
    install_docs(app)  # Swagger UI from a pinned package, the key scheme and the error bodies
    install_error_handlers(app)
    app.state.container = container

    def api_keys() -> ApiKeys | None:
        return container().api_keys

    app.add_middleware(ApiKeyMiddleware, keys=api_keys)
    app.add_middleware(BodySizeLimit)
    app.add_middleware(ArmPathCasing)
    app.add_middleware(RequestTelemetry)  # outermost: refused requests are traced and logged too
    app.include_router(workspace_routes)
    app.include_router(system_routes)
    app.include_router(catalogue.routes)
    app.include_router(locks.routes)
    app.include_router(arm_routes.routes)  # the ARM-shaped API (shared/api/arm), next to /api
    app.include_router(arm_cloud.routes)
    app.include_router(snapshots.routes)
    app.include_router(dashboard.routes)
    return app
