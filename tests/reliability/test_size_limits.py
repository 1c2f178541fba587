"""Size limits, against the running server: a job command too long, too many or too large environment variables,
an event body over Service Bus' 256 KB, a request body over 1 MB. Each is refused with a clear 4xx that names the
field (or says what the limit is), and nothing is accepted half-way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.adapters.clock import SystemClock
from shared.adapters.sqlite_queue import SqliteQueue
from shared.api.limits import MAX_BODY_BYTES
from shared.domain.requests import MAX_COMMAND_ARGS, MAX_COMMAND_BYTES, MAX_ENV_BYTES, MAX_ENV_VARS
from shared.ports import MAX_EVENT_BYTES
from tests.e2e.server import Server, running_server
from tests.reliability.http import client, create_cluster, submit


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, httpx.Client]]:
    with running_server(tmp_path_factory.mktemp("limits") / "data") as server, client(server) as http:
        assert create_cluster(http, "limited", max_nodes=1).status_code == 202
        yield server, http


def _names_field(response: httpx.Response, field: str) -> None:
    assert 400 <= response.status_code < 500, response.text[:300]
    error = response.json()["error"]
    fields = {d.get("field") for d in error.get("details", [])}
    assert field in fields or error["message"].startswith(field), error


@pytest.mark.parametrize("command", [
    ["echo", *["x"] * MAX_COMMAND_ARGS],
    ["echo", "x" * (MAX_COMMAND_BYTES + 1)],
], ids=["too-many-arguments", "too-many-bytes"])
def test_a_job_command_that_is_too_long_is_refused_naming_the_command(
        limited: tuple[Server, httpx.Client], command: list[str]) -> None:
    _names_field(submit(limited[1], "limited", command), "command")


@pytest.mark.parametrize("environment", [
    {f"VAR_{n}": "1" for n in range(MAX_ENV_VARS + 1)},
    {"BIG": "x" * (MAX_ENV_BYTES + 1)},
], ids=["too-many-variables", "too-many-bytes"])
def test_a_job_environment_that_is_too_large_is_refused_naming_it(
        limited: tuple[Server, httpx.Client], environment: dict[str, str]) -> None:
    response = submit(limited[1], "limited", ["true"], environment_variables=environment)
    _names_field(response, "environment_variables")


def _event(size: int) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"big-{size}", "source": "/test", "type": "computeplane.scale.request",
            "subject": "workspaces/default/clusters/limited", "data": {"reason": "x" * size}}


def test_an_event_over_256_kb_is_refused_saying_the_limit_and_never_queued(
        limited: tuple[Server, httpx.Client]) -> None:
    server, http = limited
    body = json.dumps(_event(MAX_EVENT_BYTES)).encode()
    response = http.post("/api/events", content=body, headers={"content-type": "application/cloudevents+json"})
    assert response.status_code in (400, 413, 422)
    message = response.json()["error"]["message"]
    assert str(MAX_EVENT_BYTES) in message and "bytes" in message
    queue = SqliteQueue(server.data_dir / "queue.db", SystemClock())
    assert queue.dead_letters() == []  # refused at the door, not queued and dead-lettered


def test_an_event_just_under_256_kb_is_accepted(limited: tuple[Server, httpx.Client]) -> None:
    body = json.dumps(_event(MAX_EVENT_BYTES - 1000)).encode()
    assert len(body) <= MAX_EVENT_BYTES
    assert limited[1].post("/api/events", content=body).status_code == 202


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_request_body_over_1_mb_is_refused_with_413(limited: tuple[Server, httpx.Client], chunked: bool) -> None:
    payload = json.dumps({"name": "huge", "vm_size": "STANDARD_D2_V2", "max_nodes": 1,
                          "description": "x" * MAX_BODY_BYTES}).encode()
    content: bytes | Iterator[bytes] = payload
    if chunked:
        content = iter([payload[i:i + 65536] for i in range(0, len(payload), 65536)])
    response = limited[1].post("/api/workspaces/default/clusters", content=content,
                               headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "limit" in response.json()["error"]["message"]
    assert limited[1].get("/api/workspaces/default/clusters/huge").status_code == 404


def test_a_cluster_whose_event_would_exceed_256_kb_is_refused_naming_the_field(
        limited: tuple[Server, httpx.Client]) -> None:
    tags = {f"tag{n:05d}": "v" * 200 for n in range(1500)}  # about 310 KB
    _names_field(create_cluster(limited[1], "tagged", tags=tags), "tags")


@pytest.mark.parametrize("path,body", [
    ("/api/events", '{"specversion":"1.0","id":"s","source":"/t","type":"computeplane.scale.request",'
                    '"subject":"workspaces/default/clusters/limited","data":{"reason":"\\ud800"}}'),
    ("/api/workspaces/default/clusters/limited/jobs", '{"command":["echo","\\ud800"]}'),
], ids=["event", "job"])
def test_a_lone_surrogate_in_a_request_is_a_4xx(limited: tuple[Server, httpx.Client], path: str, body: str) -> None:
    response = limited[1].post(path, content=body.encode(), headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.status_code


def test_the_server_survived_every_refusal(limited: tuple[Server, httpx.Client]) -> None:
    server, http = limited
    assert http.get("/api/health").status_code == 200
    assert server.process.poll() is None
