"""The Python client against a fake transport: what it sends, and which error class each answer becomes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from computeplane.client import API_KEY_HEADER, ComputePlaneClient
from computeplane.errors import (
    AccessDeniedError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    OperationFailed,
    ServerError,
    ServerUnreachable,
    WaitTimeout,
)
from computeplane.waiting import cluster_is_ready, wait_for_cluster, wait_for_job
from tests.e2e.server import Server


def client_answering(status: int, body: Any, seen: list[httpx.Request] | None = None,
                     api_key: str | None = None) -> ComputePlaneClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, json=body)

    return ComputePlaneClient("http://cp.test", "ws1", api_key=api_key, transport=httpx.MockTransport(handle))


def test_create_cluster_sends_only_the_fields_given_and_reports_whether_it_created() -> None:
    seen: list[httpx.Request] = []
    result = client_answering(202, {"name": "c1"}, seen).create_cluster("c1", "STANDARD_D2_V2", 4,
                                                                         vm_priority="lowpriority")
    assert result.created and result.cluster == {"name": "c1"}
    assert seen[0].url.path == "/api/workspaces/ws1/clusters"
    assert json.loads(seen[0].content) == {"name": "c1", "vm_size": "STANDARD_D2_V2", "max_nodes": 4,
                                           "vm_priority": "lowpriority"}
    assert not client_answering(200, {"name": "c1"}).create_cluster("c1", "STANDARD_D2_V2", 4).created


def test_api_key_is_sent_in_the_functions_key_header_from_the_argument_or_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []
    monkeypatch.setenv("COMPUTEPLANE_API_KEY", "from-env")
    client_answering(200, [], seen, api_key="s3cret").list_clusters()
    client_answering(200, [], seen).list_clusters()
    client_answering(200, [], seen, api_key="").list_clusters()
    monkeypatch.delenv("COMPUTEPLANE_API_KEY")
    client_answering(200, [], seen).list_clusters()
    assert [r.headers.get(API_KEY_HEADER) for r in seen] == ["s3cret", "from-env", None, None]


@pytest.mark.parametrize(("status", "code", "kind"), [
    (422, "InvalidField", InvalidInputError), (400, "JobNodeCountExceedsCoreQuota", InvalidInputError),
    (401, "Unauthorized", AccessDeniedError), (404, "ComputeTargetNotFound", NotFoundError),
    (409, "ComputeTargetSpecConflict", ConflictError), (500, "HttpError", ServerError)])
def test_each_error_status_becomes_its_exception_with_code_message_and_details(status: int, code: str,
                                                                               kind: type[Exception]) -> None:
    body = {"error": {"code": code, "message": "what went wrong", "details": [{"field": "max_nodes", "rule": "r"}]}}
    with pytest.raises(kind) as raised:
        client_answering(status, body).get_cluster("c1")
    error = raised.value
    assert (error.status, error.code, error.message) == (status, code, "what went wrong")  # type: ignore[attr-defined]
    assert error.details == [{"field": "max_nodes", "rule": "r"}]  # type: ignore[attr-defined]


def test_an_unknown_endpoint_says_the_server_lacks_it() -> None:
    with pytest.raises(NotFoundError, match="no such endpoint"):
        client_answering(404, {"error": {"code": "NotFound", "message": "Not Found"}}).list_vm_sizes()


def test_remove_identity_sends_the_ids_as_query_and_none_for_all() -> None:
    seen: list[httpx.Request] = []
    client_answering(200, {}, seen).remove_identity("c1", ["/id/a", "/id/b"])
    client_answering(200, {}, seen).remove_identity("c1")
    assert seen[0].method == "DELETE" and seen[0].url.path == "/api/workspaces/ws1/clusters/c1/identity"
    assert seen[0].url.params.get_list("identity_id") == ["/id/a", "/id/b"]
    assert "identity_id" not in seen[1].url.params


def test_nothing_listening_is_server_unreachable_naming_the_address() -> None:
    with pytest.raises(ServerUnreachable, match=r"http://127\.0\.0\.1:9"):
        ComputePlaneClient("http://127.0.0.1:9", timeout=2).list_clusters()


class ScriptedClient:
    """Answers get_cluster / get_job with the next body of a script (the last one repeats)."""

    def __init__(self, bodies: list[dict[str, Any]]) -> None:
        self.bodies = bodies

    def _next(self) -> dict[str, Any]:
        return self.bodies.pop(0) if len(self.bodies) > 1 else self.bodies[0]

    def get_cluster(self, name: str) -> dict[str, Any]:
        return self._next()

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._next()


def cluster(state: str, idle: int = 0, min_nodes: int = 0, errors: list[dict[str, str]] | None = None
            ) -> dict[str, Any]:
    return {"name": "c1", "provisioning_state": state, "current_node_count": idle, "errors": errors or [],
            "node_state_counts": {"idle": idle, "running": 0, "preparing": 0},
            "scale_settings": {"min_nodes": min_nodes}}


def test_wait_for_cluster_reports_each_poll_and_returns_when_min_nodes_are_ready() -> None:
    client = ScriptedClient([cluster("Creating"), cluster("Succeeded", 0, 1), cluster("Succeeded", 1, 1)])
    seen: list[str] = []
    final = wait_for_cluster(client, "c1", poll_interval=0.01,  # type: ignore[arg-type]
                             on_progress=lambda c: seen.append(c["provisioning_state"]))
    assert seen == ["Creating", "Succeeded", "Succeeded"] and final["current_node_count"] == 1


def test_wait_for_cluster_stops_on_failure_and_on_timeout() -> None:
    with pytest.raises(OperationFailed, match="Failed"):
        wait_for_cluster(ScriptedClient([cluster("Failed")]), "c1", poll_interval=0.01)  # type: ignore[arg-type]
    quota = cluster("Succeeded", 0, 2, [{"code": "QuotaExceeded", "message": "no cores"}])
    with pytest.raises(OperationFailed, match="no cores"):
        wait_for_cluster(ScriptedClient([quota]), "c1", poll_interval=0.01)  # type: ignore[arg-type]
    with pytest.raises(WaitTimeout):
        wait_for_cluster(ScriptedClient([cluster("Creating")]), "c1", timeout=0.05,  # type: ignore[arg-type]
                         poll_interval=0.01)


def test_a_cluster_counts_as_ready_only_with_idle_or_running_nodes() -> None:
    booting = cluster("Succeeded", 0, 1) | {"current_node_count": 1, "node_state_counts": {"preparing": 1}}
    assert not cluster_is_ready(booting)
    assert cluster_is_ready(cluster("Succeeded", 1, 1))


def test_wait_for_job_raises_for_a_failed_job_unless_asked_not_to() -> None:
    failed = {"id": "j1", "state": "Failed", "reason": "exit code 3"}
    with pytest.raises(OperationFailed, match="exit code 3"):
        wait_for_job(ScriptedClient([{"state": "Running"}, failed]), "j1", poll_interval=0.01)  # type: ignore[arg-type]
    assert wait_for_job(ScriptedClient([failed]), "j1", raise_on_error=False)["state"] == "Failed"  # type: ignore[arg-type]


def test_a_client_of_a_local_server_finds_the_key_serve_created(shared_server: Server,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    server = shared_server
    monkeypatch.delenv("COMPUTEPLANE_API_KEY", raising=False)
    monkeypatch.setenv("COMPUTEPLANE_DATA_DIR", str(server.data_dir))
    assert isinstance(ComputePlaneClient(server.url).list_clusters(), list)
    monkeypatch.setenv("COMPUTEPLANE_DATA_DIR", str(server.data_dir / "elsewhere"))
    assert isinstance(ComputePlaneClient(server.url).list_clusters(), list)  # serve's record of its port wins
    monkeypatch.setenv("XDG_STATE_HOME", str(server.data_dir / "no-record-here"))
    with pytest.raises(AccessDeniedError):
        ComputePlaneClient(server.url).list_clusters()
