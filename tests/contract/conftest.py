"""Fixtures for contract tests: the real local peers the adapters talk to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.cosmos_server import missing_prerequisite, running_cosmosdb_server


@pytest.fixture(scope="session")
def cosmosdb_endpoint() -> Iterator[str]:
    """One ``@vercel/cosmosdb-server`` for the session (it starts in about a second); tests isolate themselves
    with a database of their own. Skipped, not failed, where Node or the npm package is not installed."""
    reason = missing_prerequisite()
    if reason is not None:
        pytest.skip(reason)
    with running_cosmosdb_server() as endpoint:
        yield endpoint
