"""Code snapshots: ``PUT .../snapshots/{sha256}`` stores a project's archive once per content hash; a job names it
in ``code`` and every node of every attempt starts in an unpacked copy (computeplane/snapshot_archive.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from computeplane.snapshot_archive import (
    DIGEST_PATTERN,
    MAX_ARCHIVE_BYTES,
    SnapshotRejected,
    check_archive,
    digest_of,
)
from shared.api.deps import DepsDep
from shared.api.errors import answers
from shared.domain.errors import DomainError, InvalidField
from shared.handlers.deps import Deps
from shared.ports import SnapshotStore

Workspace = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", description="workspace name")]
Digest = Annotated[str, Path(pattern=DIGEST_PATTERN, description="SHA-256 of the archive's bytes (hex)")]

routes = APIRouter(prefix="/api/workspaces/{workspace}")


@answers(501)
class SnapshotsUnavailable(DomainError):
    code = "SnapshotsUnavailable"


@answers(404)
class SnapshotNotFound(DomainError):
    code = "SnapshotNotFound"


class SnapshotView(BaseModel):
    digest: str
    bytes: int | None = None  # of the archive, in the answer to an upload
    files: int | None = None


def snapshot_store(deps: Deps) -> SnapshotStore:
    if deps.snapshots is None:
        raise SnapshotsUnavailable("this server keeps no code snapshots (no snapshot store is configured)")
    return deps.snapshots


@routes.put("/snapshots/{digest}", status_code=201, response_model=SnapshotView,
            responses={200: {"model": SnapshotView}, 413: {}, 422: {}},
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload_snapshot(workspace: Workspace, digest: Digest, request: Request, response: Response,
                          deps: DepsDep) -> SnapshotView:
    """A gzipped tar of the project (the client builds it), sent as application/octet-stream. Checked entry by
    entry before it is stored: relative names only, no '..', no links leading outside, no devices, size limits.
    The same archive again is 200."""
    store = snapshot_store(deps)
    archive = await request.body()
    if digest_of(archive) != digest:
        raise InvalidField("digest", f"the body's SHA-256 is {digest_of(archive)}, not the {digest} in the URL "
                                     "(the upload was cut short or changed)")
    try:
        entries = await run_in_threadpool(check_archive, archive)
    except SnapshotRejected as exc:
        raise InvalidField("code", str(exc)) from None
    created = await run_in_threadpool(store.put, workspace, digest, archive)
    response.status_code = 201 if created else 200
    return SnapshotView(digest=digest, bytes=len(archive), files=len(entries))


@routes.get("/snapshots/{digest}", response_model=SnapshotView)
def show_snapshot(workspace: Workspace, digest: Digest, deps: DepsDep) -> SnapshotView:
    """Whether the snapshot is stored (a client checks before it uploads; the archive itself is not read)."""
    if not snapshot_store(deps).exists(workspace, digest):
        raise SnapshotNotFound(f"no snapshot {digest} in workspace '{workspace}'")
    return SnapshotView(digest=digest)


__all__ = ["MAX_ARCHIVE_BYTES", "routes"]
