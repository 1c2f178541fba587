"""Fixtures for the CLI and client tests: one real ``computeplane serve`` per module, and a CliRunner helper."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from typer.testing import CliRunner, Result

from computeplane.cli import app
from tests.e2e.server import Server

_names = itertools.count(1)


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Cluster names that no other test of the module uses (letters, digits and '-', starting with a letter)."""
    return lambda prefix: f"{prefix}-{next(_names)}x"


@pytest.fixture
def run_cli(shared_server: Server) -> Callable[..., Result]:
    """Run ``computeplane --endpoint <shared server> ARGS...`` in-process; returns typer's Result."""

    def run(*args: str, endpoint: str | None = None) -> Result:
        return CliRunner().invoke(app, ["--endpoint", endpoint or shared_server.url, *args])

    return run
