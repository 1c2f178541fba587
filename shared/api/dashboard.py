"""The dashboard's routes: its page (no key needed: it holds no data) and the two reads it needs beyond the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from shared.api.auth import request_key
from shared.api.deps import DepsDep
from shared.dashboard.assets import asset
from shared.domain.node_history import NodeCountSample, samples_of, timeline
from shared.handlers import use_cases

DASHBOARD_PATH = "/api/dashboard/"  # under /api/ so the Functions host (route prefix "api") reaches it in Azure

routes = APIRouter()


class VisibleWorkspaces(BaseModel):
    """The workspaces the presented key may see; None: every workspace (an unlimited key)."""

    workspaces: list[str] | None


class NodeTimeline(BaseModel):
    cluster: str
    now: datetime
    created_at: datetime
    samples: list[NodeCountSample]


@routes.get("/", include_in_schema=False)
@routes.get("/dashboard", include_in_schema=False)
@routes.get("/api/dashboard", include_in_schema=False)
def to_dashboard() -> RedirectResponse:
    return RedirectResponse(DASHBOARD_PATH, status_code=307)


@routes.get(DASHBOARD_PATH, include_in_schema=False)
@routes.get(DASHBOARD_PATH + "{name}", include_in_schema=False)
def dashboard_file(name: str = "") -> Response:
    found = asset(name)
    if found is None:
        return Response(status_code=404)
    return Response(found.body, headers=found.headers)


@routes.get("/api/workspaces", response_model=VisibleWorkspaces, tags=["dashboard"])
def visible_workspaces(request: Request) -> VisibleWorkspaces:
    """What the dashboard offers: a workspace-limited key sees only its own workspaces."""
    key = request_key(request.scope)
    limited = key.workspaces if key is not None else None
    return VisibleWorkspaces(workspaces=sorted(limited) if limited is not None else None)


@routes.get("/api/workspaces/{workspace}/clusters/{name}/node-timeline", response_model=NodeTimeline,
            tags=["dashboard"])
def node_timeline(workspace: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")],
                  name: Annotated[str, Path(min_length=1, max_length=64)], deps: DepsDep) -> NodeTimeline:
    """The cluster's node counts by state each time they changed (bounded: the latest samples)."""
    cluster = use_cases.get_cluster(deps, workspace, name)
    archive = deps.store.get_node_history_archive(workspace, name)
    return NodeTimeline(cluster=cluster.name, now=deps.clock.now(), created_at=cluster.created_at,
                        samples=samples_of(timeline(cluster.node_history, archive, cluster.uid)))
