"""Handler dependencies for unit tests: in-memory store and bus, a fake clock, and the real local provider (no
in-memory provider exists that its contract suite proves; jobs are real subprocesses, unsandboxed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.adapters.local_provider import LocalNodeProvider
from shared.adapters.no_identity import NoIdentityTokens
from shared.bootstrap import Container, build
from shared.config import Settings
from shared.domain.quota import QuotaLimits
from shared.handlers.deps import Deps
from shared.ports import Store
from tests.fakes.bus import InMemoryBus
from tests.fakes.clock import FakeClock


@contextmanager
def handler_deps(tmp_path: Path, store: Store) -> Iterator[tuple[Deps, InMemoryBus]]:
    clock = FakeClock(datetime(2026, 2, 1, tzinfo=UTC))
    bus = InMemoryBus(clock)
    (tmp_path / "data").mkdir()
    provider = LocalNodeProvider(tmp_path / "data", tmp_path / "runs", clock,
                                 lambda event, at: bus.publish(event, not_before=at), timedelta(seconds=5),
                                 job_sandbox="off")
    try:
        yield Deps(store=store, bus=bus, provider=provider, tokens=NoIdentityTokens(), clock=clock), bus
    finally:
        provider.stop_all()


@contextmanager
def quota_limited_container(data_dir: Path, region: str, regional_vcpus: int) -> Iterator[Container]:
    """The whole embedded composition (SQLite store, local provider) with a fake clock, nodes booting in 5 s, and a
    region of ``regional_vcpus`` dedicated vCPUs: for races and quota decisions on the real handlers."""
    built = build(Settings(data_dir=data_dir, node_boot_seconds=5, workspace_location=region,
                           quota_limits=QuotaLimits(total_regional_dedicated_vcpus=regional_vcpus)),
                  clock=FakeClock(datetime(2026, 2, 1, tzinfo=UTC)))
    try:
        yield built
    finally:
        if built.provider is not None:
            built.provider.stop_all()
