"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import Server, start_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A real ``computeplane serve`` subprocess on a free port with short timings."""
    srv = start_server(tmp_path / "data")
    try:
        yield srv
    finally:
        srv.stop()
