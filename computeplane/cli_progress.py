"""Live progress for ``--wait`` and ``--follow``, on stderr so stdout keeps only the result.

Each change is printed as a line (provisioning state, allocation state and node counts for a cluster; state and
reason for a job); in a terminal a spinner below them also shows what is awaited and for how long.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.markup import escape
from rich.status import Status

from computeplane.cli_errors import stderr_console
from computeplane.cli_output import NODE_STATES


class ProgressLines:
    """Prints a line each time the watched thing changes; with a spinner when stderr is a terminal."""

    def __init__(self, title: str) -> None:
        self._title = title
        self._last: str | None = None
        self._started = time.monotonic()
        self._status: Status | None = None

    def __enter__(self) -> ProgressLines:
        if stderr_console.is_terminal:
            self._status = stderr_console.status(escape(self._title))
            self._status.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._status:
            self._status.stop()

    def show(self, line: str) -> None:
        elapsed = time.monotonic() - self._started
        if self._status:
            self._status.update(escape(f"{self._title} ({elapsed:.0f} s)"))
        if line != self._last:
            self._last = line
            stderr_console.print(escape(f"[{elapsed:6.1f} s] {line}"))

    def note(self, message: str) -> None:
        stderr_console.print(escape(message))


def cluster_progress_line(cluster: dict[str, Any]) -> str:
    counts = cluster.get("node_state_counts") or {}
    by_state = ", ".join(f"{s} {counts.get(s, 0)}" for s in NODE_STATES)
    line = (f"{cluster.get('name')}: {cluster.get('provisioning_state')}, allocation "
            f"{cluster.get('allocation_state')}, nodes {cluster.get('current_node_count')}/"
            f"{cluster.get('target_node_count')} ({by_state})")
    errors = cluster.get("errors") or []
    if errors:
        line += " - errors: " + "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
    return line


def job_progress_line(job: dict[str, Any]) -> str:
    line = f"job {job.get('id')}: {job.get('state')}"
    if job.get("attempts", 0) > 1:
        line += f" (attempt {job.get('attempts')})"
    if job.get("reason"):
        line += f" - {job.get('reason')}"
    if job.get("exit_code") is not None:
        line += f" - exit code {job.get('exit_code')}"
    return line
