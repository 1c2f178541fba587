"""A Python client for the ComputePlane HTTP API. Needs only httpx: usable from a job, a notebook or a script.

Every method returns the API's JSON body as it is (plain dicts and lists), and raises a
:class:`~computeplane.errors.ComputePlaneError` subclass when the API refuses the request.

    from computeplane.client import ComputePlaneClient, wait_for_cluster, wait_for_job

    with ComputePlaneClient("http://127.0.0.1:7071") as cp:
        cp.create_cluster("cpucluster", vm_size="STANDARD_D2_V2", max_nodes=4)
        wait_for_cluster(cp, "cpucluster")
        job = cp.submit_job("cpucluster", ["python", "-c", "print('hi')"])
        wait_for_job(cp, job["id"])
        print(cp.job_logs(job["id"])["logs"])
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from computeplane.errors import (
    AccessDeniedError,
    ComputePlaneError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    OperationFailed,
    ServerError,
    ServerUnreachable,
    WaitTimeout,
)
from computeplane.local_servers import discover_key
from computeplane.waiting import wait_for_cluster, wait_for_cluster_deletion, wait_for_job

DEFAULT_ENDPOINT = "http://127.0.0.1:7071"
DEFAULT_WORKSPACE = "default"
DEFAULT_TIMEOUT_SECONDS = 30.0
API_KEY_HEADER = "x-functions-key"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
SUBMIT_ATTEMPTS = 4
API_KEY_ENV = "COMPUTEPLANE_API_KEY"
WORKSPACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # as the API's path rule

JsonObject = dict[str, Any]

__all__ = ["API_KEY_ENV", "API_KEY_HEADER", "DEFAULT_ENDPOINT", "DEFAULT_WORKSPACE", "AccessDeniedError",
           "ClusterCreateResult", "ComputePlaneClient", "ComputePlaneError", "ConflictError", "InvalidInputError",
           "JsonObject", "NotFoundError", "OperationFailed", "ServerError", "ServerUnreachable", "WaitTimeout",
           "wait_for_cluster", "wait_for_cluster_deletion", "wait_for_job"]


@dataclass(frozen=True)
class ClusterCreateResult:
    """The API's body for a create, and whether it created the cluster (202) or found the same spec (200)."""

    cluster: JsonObject
    created: bool


def local_server_key(endpoint: str) -> str | None:
    """The first key of a local ``computeplane serve`` on that port, wherever its data directory is (see
    computeplane/local_servers.py), if this is one."""
    found = discover_key(endpoint)
    return found.key if found else None


class ComputePlaneClient:
    """Typed calls for every endpoint of one workspace of a ComputePlane server.

    ``api_key`` is sent as the ``x-functions-key`` header; when None, COMPUTEPLANE_API_KEY is used if set, and
    for a server on this machine the key ``computeplane serve`` created in its data directory (found through the
    per-user record ``serve`` keeps, else COMPUTEPLANE_DATA_DIR or ``.computeplane``), as ``func`` does with local
    keys. Pass ``""`` to send none.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, workspace: str = DEFAULT_WORKSPACE,
                 api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        if not WORKSPACE_NAME.fullmatch(workspace):
            raise InvalidInputError(None, "InvalidWorkspaceName",
                                    f"workspace {workspace!r}: a workspace name is 1 to 64 letters, digits, '-' or "
                                    "'_', starting with a letter or digit")
        self.workspace = workspace
        key = (os.environ.get(API_KEY_ENV) or local_server_key(self.endpoint)) if api_key is None else api_key
        headers = {API_KEY_HEADER: key} if key else {}
        self._http = httpx.Client(base_url=self.endpoint, headers=headers, timeout=timeout, transport=transport)

    # --- lifecycle -------------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ComputePlaneClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ComputePlaneClient(endpoint={self.endpoint!r}, workspace={self.workspace!r})"

    # --- clusters --------------------------------------------------------------------------------------------------
    def create_cluster(self, name: str, vm_size: str, max_nodes: int, *, min_nodes: int | None = None,
                       vm_priority: str | None = None, idle_seconds_before_scaledown: int | None = None,
                       location: str | None = None, tags: dict[str, str] | None = None,
                       description: str | None = None, vnet_resourcegroup_name: str | None = None,
                       vnet_name: str | None = None, subnet_name: str | None = None,
                       identity_type: str | None = None, identity_id: list[str] | None = None,
                       admin_username: str | None = None, admin_user_password: str | None = None,
                       admin_user_ssh_key: str | None = None, remote_login_port_public_access: str | None = None,
                       enable_node_public_ip: bool | None = None,
                       inter_node_communication: bool | str | None = None,
                       low_priority_fallback: dict[str, Any] | None = None,
                       on_preemption_retries_exhausted: str | None = None) -> ClusterCreateResult:
        """Get-or-create: the same spec again is a no-op (``created`` False), a different spec a ConflictError.
        Only the fields given (not None) are sent; the server applies the AmlCompute defaults to the rest.
        ``inter_node_communication``: True/False or the API's own "Enabled"/"Disabled"."""
        if isinstance(inter_node_communication, bool):
            inter_node_communication = "Enabled" if inter_node_communication else "Disabled"
        fields: dict[str, Any] = {
            "name": name, "vm_size": vm_size, "max_nodes": max_nodes, "min_nodes": min_nodes,
            "vm_priority": vm_priority, "idle_seconds_before_scaledown": idle_seconds_before_scaledown,
            "location": location, "tags": tags, "description": description,
            "vnet_resourcegroup_name": vnet_resourcegroup_name, "vnet_name": vnet_name, "subnet_name": subnet_name,
            "identity_type": identity_type, "identity_id": identity_id, "admin_username": admin_username,
            "admin_user_password": admin_user_password, "admin_user_ssh_key": admin_user_ssh_key,
            "remote_login_port_public_access": remote_login_port_public_access,
            "enable_node_public_ip": enable_node_public_ip, "inter_node_communication": inter_node_communication,
            "low_priority_fallback": low_priority_fallback,
            "on_preemption_retries_exhausted": on_preemption_retries_exhausted,
        }
        response = self._send("POST", self._ws("clusters"), json=_without_none(fields))
        return ClusterCreateResult(cluster=response.json(), created=response.status_code == 202)

    def list_clusters(self) -> list[JsonObject]:
        return self._list("GET", self._ws("clusters"))

    def get_cluster(self, name: str) -> JsonObject:
        return self._object("GET", self._ws(f"clusters/{name}"))

    def update_cluster(self, name: str, *, min_nodes: int | None = None, max_nodes: int | None = None,
                       idle_seconds_before_scaledown: int | None = None) -> JsonObject:
        """Change the scale settings of a live cluster (only the values given)."""
        body = _without_none({"min_nodes": min_nodes, "max_nodes": max_nodes,
                              "idle_seconds_before_scaledown": idle_seconds_before_scaledown})
        return self._object("PATCH", self._ws(f"clusters/{name}"), json=body)

    def delete_cluster(self, name: str) -> JsonObject:
        """Start deleting: the cluster shows ``Deleting``, then GET answers 404 (see wait_for_cluster_deletion)."""
        return self._object("DELETE", self._ws(f"clusters/{name}"))

    def list_nodes(self, name: str) -> list[JsonObject]:
        return self._list("GET", self._ws(f"clusters/{name}/nodes"))

    def preempt_node(self, name: str, node_id: str) -> JsonObject:
        """Preempt one node as Azure would a low-priority VM (its job is requeued); returns the node."""
        return self._object("POST", self._ws(f"clusters/{name}/nodes/{node_id}/preempt"))

    def add_identity(self, name: str, identity_type: str, identity_id: list[str] | None = None) -> JsonObject:
        """``SystemAssigned``, or ``UserAssigned`` with a list of ARM ids of user-assigned identities; returns
        the cluster."""
        body = _without_none({"identity_type": identity_type, "identity_id": identity_id})
        return self._object("POST", self._ws(f"clusters/{name}/identity"), json=body)

    def remove_identity(self, name: str, identity_id: list[str] | None = None) -> JsonObject:
        """Remove the given user-assigned identities, or every identity when none are given; returns the cluster."""
        params = {"identity_id": list(identity_id)} if identity_id else None
        return self._object("DELETE", self._ws(f"clusters/{name}/identity"), params=params)

    # --- jobs ------------------------------------------------------------------------------------------------------
    def upload_code(self, directory: str | os.PathLike[str]) -> str:
        """Snapshot ``directory`` (honouring .amlignore / .gitignore) and upload it unless the workspace has it
        already; returns its digest, which ``submit_job(code=...)`` also accepts."""
        from computeplane.code_snapshot import snapshot_directory  # pathspec is needed only for code snapshots

        snapshot = snapshot_directory(directory)
        path = self._ws(f"snapshots/{snapshot.digest}")
        try:
            self._object("GET", path)
        except NotFoundError:
            self._object("PUT", path, content=snapshot.archive, headers={"content-type": "application/octet-stream"})
        return snapshot.digest

    def submit_job(self, cluster: str, command: list[str], *, node_count: int | None = None,
                   environment_variables: dict[str, str] | None = None,
                   max_retries: int | None = None, max_preemption_retries: int | None = None,
                   on_preemption_retries_exhausted: str | None = None,
                   checkpoint_interval_seconds: int | None = None, deadline: str | None = None,
                   expected_runtime_seconds: int | None = None,
                   code: str | os.PathLike[str] | None = None) -> JsonObject:
        """Queue ``command`` (an argument list, never passed to a shell) on ``cluster``; returns the job (``id``).
        ``code``: a project directory (snapshotted and uploaded, see ``upload_code``) or the digest of one already
        uploaded; every node runs ``command`` in its own unpacked copy. ``deadline`` is an ISO-8601 time (with its
        offset)."""
        digest = None if code is None else str(code) if _is_digest(code) else self.upload_code(code)
        body = _without_none({"command": list(command), "node_count": node_count,
                              "environment_variables": environment_variables, "max_retries": max_retries,
                              "max_preemption_retries": max_preemption_retries,
                              "on_preemption_retries_exhausted": on_preemption_retries_exhausted,
                              "checkpoint_interval_seconds": checkpoint_interval_seconds, "deadline": deadline,
                              "expected_runtime_seconds": expected_runtime_seconds, "code": digest})
        # One key for every attempt: when an answer is lost (timeout, 503), the next attempt gets the same job back.
        headers = {IDEMPOTENCY_KEY_HEADER: uuid.uuid4().hex}
        retrying = Retrying(retry=retry_if_exception(_answer_may_be_lost), stop=stop_after_attempt(SUBMIT_ATTEMPTS),
                            wait=wait_exponential_jitter(initial=1, max=8), reraise=True)
        return retrying(self._object, "POST", self._ws(f"clusters/{cluster}/jobs"), json=body, headers=headers)

    def list_jobs(self, cluster: str | None = None) -> list[JsonObject]:
        path = f"clusters/{cluster}/jobs" if cluster else "jobs"
        return self._list("GET", self._ws(path))

    def get_job(self, job_id: str) -> JsonObject:
        return self._object("GET", self._ws(f"jobs/{job_id}"))

    def job_logs(self, job_id: str, attempt: int | None = None) -> JsonObject:
        """``{"job_id", "attempt", "state", "logs"}`` of one attempt (the latest when not given)."""
        params = {"attempt": attempt} if attempt is not None else None
        return self._object("GET", self._ws(f"jobs/{job_id}/logs"), params=params)

    def cancel_job(self, job_id: str) -> JsonObject:
        return self._object("POST", self._ws(f"jobs/{job_id}/cancel"))

    # --- capacity --------------------------------------------------------------------------------------------------
    def list_vm_sizes(self, location: str | None = None) -> list[JsonObject]:
        """The VM sizes offered (in ``location``): family, vcpus, memory_gb, gpus, prices per hour, locations."""
        return self._list("GET", "/api/vm-sizes", params=_without_none({"location": location}))

    def list_quotas(self, location: str | None = None) -> JsonObject:
        """vCPU limits of the region: per VM family (dedicated), low priority, and the regional total."""
        return self._object("GET", "/api/quotas", params=_without_none({"location": location}))

    def list_usages(self, location: str | None = None) -> JsonObject:
        """vCPUs in use in the region, by family and priority, next to their limits."""
        return self._object("GET", "/api/usages", params=_without_none({"location": location}))

    def health(self) -> JsonObject:
        return self._object("GET", "/api/health")

    # --- transport -------------------------------------------------------------------------------------------------
    def _ws(self, path: str) -> str:
        return f"/api/workspaces/{self.workspace}/{path}"

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs).json()

    def _object(self, method: str, path: str, **kwargs: Any) -> JsonObject:
        return cast(JsonObject, self._json(method, path, **kwargs))

    def _list(self, method: str, path: str, **kwargs: Any) -> list[JsonObject]:
        return cast(list[JsonObject], self._json(method, path, **kwargs))

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.endpoint, _describe_transport_error(exc)) from exc
        if response.is_error:
            raise error_from_response(response)
        return response


def error_from_response(response: httpx.Response) -> ComputePlaneError:
    """The API's ``{"error": {"code", "message", "details"}}`` as the exception class its status calls for."""
    status = response.status_code
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = str(error.get("code") or response.reason_phrase or "HttpError")
    message = str(error.get("message") or response.text or response.reason_phrase)
    details = error.get("details") if isinstance(error.get("details"), list) else None
    if status == 404 and code == "NotFound":
        message = (f"{response.request.method} {response.request.url.path}: no such endpoint on this server; check "
                   "the endpoint address and the names in the path (workspace, cluster, job)")
    kind: type[ComputePlaneError]
    if status in (401, 403):
        kind = AccessDeniedError
    elif status == 404:
        kind = NotFoundError
    elif status == 409:
        kind = ConflictError
    elif 400 <= status < 500:
        kind = InvalidInputError
    else:
        kind = ServerError
    return kind(status, code, message, details)


def _answer_may_be_lost(error: BaseException) -> bool:
    """Worth sending a submit again (with its idempotency key): the server was busy, or the request was sent and
    no answer came. Not when the connection was refused: nothing listens, so a retry only delays the error."""
    if isinstance(error, ServerError):
        return error.status in (502, 503, 504)
    return isinstance(error, ServerUnreachable) and not isinstance(error.__cause__, httpx.ConnectError)


def _describe_transport_error(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or no such host"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return type(exc).__name__


def _is_digest(code: str | os.PathLike[str]) -> bool:
    return isinstance(code, str) and len(code) == 64 and all(c in "0123456789abcdef" for c in code) \
        and not Path(code).exists()


def _without_none(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}
