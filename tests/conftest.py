"""Shared fixtures: a real ``computeplane serve`` subprocess, and the local Cosmos DB server."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.cosmos_server import missing_prerequisite, running_cosmosdb_server
from tests.e2e.server import TEST_API_KEY, Server, start_server

# The CLI and the Python client read the key from here, in this process and the subprocesses it starts.
os.environ.setdefault("COMPUTEPLANE_API_KEY", TEST_API_KEY)
# Every server the tests start records where its keys are (computeplane/local_servers.py): in a place of the
# session's own, never in the user's ~/.local/state.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="computeplane-tests-state-")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A real ``computeplane serve`` subprocess on a free port with short timings (embedded SQLite store)."""
    srv = start_server(tmp_path / "data")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for a module's tests (each test uses its own cluster names): starting one takes ~2 s."""
    srv = start_server(tmp_path_factory.mktemp("shared") / "data")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def cosmosdb_endpoint() -> Iterator[str]:
    """One ``@vercel/cosmosdb-server`` for the session (it starts in about a second); tests isolate themselves
    with a database of their own. Skipped, not failed, where Node or the npm package is not installed."""
    reason = missing_prerequisite()
    if reason is not None:
        pytest.skip(reason)
    with running_cosmosdb_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["sqlite", "cosmos"])
def any_store_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """``computeplane serve`` on the embedded SQLite store, then on the Cosmos DB API (local server)."""
    env: dict[str, str] = {}
    if request.param == "cosmos":
        endpoint = request.getfixturevalue("cosmosdb_endpoint")
        env = {"COMPUTEPLANE_STORE": "cosmos", "COSMOS_ENDPOINT": endpoint,
               "COSMOS_DATABASE": f"e2e-{uuid.uuid4().hex[:8]}"}
    srv = start_server(tmp_path / "data", env)
    try:
        yield srv
    finally:
        srv.stop()
