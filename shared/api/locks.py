"""Resource locks on the nodes' resource group. In Azure they are set in ARM; locally they are simulated here so
people can see what a lock does to scaling (and how ComputePlane reports it instead of hanging). With real nodes
(no simulated cloud wired) every route answers 501 ``NotSupportedByNodeProvider``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from shared.api.deps import DepsDep
from shared.api.errors import answers
from shared.domain.errors import DomainError, SimulationOnly
from shared.domain.observation import LockLevel, ResourceLock
from shared.handlers.deps import Deps
from shared.ports import SimulatedCloud

routes = APIRouter(prefix="/api/locks")


class LockRequest(BaseModel):
    name: str = Field(min_length=1, max_length=90, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    level: LockLevel = LockLevel.CAN_NOT_DELETE


class LockView(BaseModel):
    name: str
    level: str
    scope: str

    @classmethod
    def of(cls, lock: ResourceLock) -> LockView:
        return cls(name=lock.name, level=lock.level.value, scope=lock.scope)


@answers(404)
class LockNotFound(DomainError):
    code = "LockNotFound"


def _simulated_cloud(deps: Deps) -> SimulatedCloud:
    if deps.simulation is None:
        raise SimulationOnly("resource locks are set in Azure Resource Manager for this control plane (its nodes are "
                             "real, COMPUTEPLANE_PROVIDER=azurebatch): use 'az lock create' on the node resource "
                             "group; ComputePlane reads them from there")
    return deps.simulation


@routes.get("", response_model=list[LockView])
def list_locks(deps: DepsDep) -> list[LockView]:
    return [LockView.of(lock) for lock in _simulated_cloud(deps).locks()]


@routes.post("", status_code=201, response_model=LockView)
def add_lock(body: LockRequest, deps: DepsDep) -> LockView:
    return LockView.of(_simulated_cloud(deps).add_lock(body.name, body.level))


@routes.delete("/{name}", status_code=204)
def remove_lock(name: Annotated[str, Path(max_length=90)], deps: DepsDep) -> None:
    if not _simulated_cloud(deps).remove_lock(name):
        raise LockNotFound(f"no lock named '{name}'")
