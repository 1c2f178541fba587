"""schemathesis against the running server's OpenAPI document: for every operation, valid and invalid requests
(positive and negative generation), the server never answers 5xx and every 4xx body says what was wrong
(``error.message``). Bounded: a few dozen examples per operation and mode.

Needs ``schemathesis==4.32.5`` (a dev dependency)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.e2e.server import TEST_API_KEY, Server
from tests.reliability.http import client, create_cluster, submit

schemathesis = pytest.importorskip("schemathesis")

EXAMPLES_PER_OPERATION = 25


def _problem(status: int, body: Any) -> str | None:
    if status >= 500:
        return f"answered {status}"
    if 400 <= status < 500:
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if not isinstance(message, str) or not message.strip():
            return f"answered {status} without error.message: {str(body)[:200]}"
    return None


def _harmless(case: Any) -> None:
    """Generated jobs may really run on a generated cluster: keep their program harmless, fuzz the rest."""
    body = getattr(case, "body", None)
    if case.method == "POST" and case.path.endswith("/jobs") and isinstance(body, dict):
        command = body.get("command")
        if isinstance(command, list) and command and isinstance(command[0], str):
            command[0] = "true"


def _fuzz(server: Server, operation: Any, mode: Any, problems: list[str]) -> None:
    """Send EXAMPLES_PER_OPERATION generated requests for one operation and mode, noting every broken promise."""

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: Any) -> None:
        _harmless(case)
        response = case.call(base_url=server.url, headers={"x-functions-key": TEST_API_KEY}, timeout=15)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        problem = _problem(response.status_code, body)
        if problem:
            problems.append(f"{case.method} {case.formatted_path[:120]} ({mode.value}) {problem}; "
                            f"body={str(getattr(case, 'body', ''))[:200]}")

    with contextlib.suppress(Unsatisfiable):  # nothing invalid to send (no parameters, no body)
        call()


def test_no_request_makes_the_server_fail_and_every_4xx_says_what_was_wrong(server: Server) -> None:
    with client(server) as http:
        create_cluster(http, "fuzzed", max_nodes=1)
        submit(http, "fuzzed", ["true"])
    schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    problems: list[str] = []
    for operation in operations:
        for mode in schemathesis.GenerationMode:
            _fuzz(server, operation, mode, problems)
    assert not problems, "\n".join(sorted(set(problems))[:30])


def test_a_path_with_a_newline_gets_a_json_404(server: Server) -> None:
    with client(server) as http:
        response = http.get("/api/workspaces/default/clusters/a%0Ab")
    assert response.status_code == 404
    assert _problem(response.status_code, response.json()) is None


@pytest.mark.parametrize("status,body,expected", [
    (500, {}, "answered 500"), (422, {"error": {"message": ""}}, "without error.message"),
    (404, {"detail": "Not Found"}, "without error.message"), (409, {"error": {"message": "x: y"}}, None)])
def test_the_checker_itself(status: int, body: Any, expected: str | None) -> None:
    problem = _problem(status, body)
    assert (problem is None) if expected is None else (expected in (problem or ""))

