"""Wake-ups for a provider whose cloud sends no events.

Batch tells nobody that a node became idle or that a task ended: without help, reconcile would see both only at the
cluster's next resync (60 s in Azure). So the provider schedules its own wake-ups (``SCALE_REQUEST`` events with
``not_before``, the way the local provider schedules ``node.ready``):

- when a node is asked for, one at its expected boot time (``COMPUTEPLANE_BATCH_EXPECTED_BOOT_SECONDS``);
- when a task is started, one a poll interval later;
- after each observation, while a node is still booting past that time, or a run is going (a task active or
  running, or an attempt not yet seen as a task): one every ``COMPUTEPLANE_BATCH_POLL_SECONDS``.

Wake-up times are rounded up to whole poll intervals and the event id names the cluster and the time, so however
many workers observe a cluster, the broker's duplicate detection keeps at most one wake-up per interval: a busy
cluster costs one observation (about five Batch calls) per interval, an idle one none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from shared.adapters.azure_batch.pools import pool_id
from shared.domain.cluster import Cluster, JobPhase
from shared.domain.events import SCALE_REQUEST, CloudEvent, new_event
from shared.domain.observation import NodeStatus, Observation, RunStatus
from shared.domain.utc import format_utc

Publish = Callable[[CloudEvent, datetime | None], None]
_ACTIVE_RUNS = frozenset({RunStatus.RUNNING, RunStatus.NOT_STARTED})


class BatchWakeUps:
    def __init__(self, publish: Publish | None, poll: timedelta, expected_boot: timedelta) -> None:
        self._publish, self._poll, self.expected_boot = publish, poll, expected_boot

    def after_provision(self, workspace: str, cluster: str, now: datetime) -> datetime:
        """Wake the cluster when the node is expected to be ready; returns that time."""
        ready_at = now + self.expected_boot
        self._wake(workspace, cluster, ready_at)
        return ready_at

    def after_start(self, workspace: str, cluster: str, now: datetime) -> datetime:
        """A task was started: look at it within a poll interval (the observation before it did not see it)."""
        return self._wake(workspace, cluster, now + self._poll)

    def after_observe(self, cluster: Cluster, observation: Observation, now: datetime) -> datetime | None:
        """The next look a busy cluster needs (None: nothing to wait for), scheduled."""
        wanted: list[datetime] = []
        soon = now + self._poll
        for node in cluster.nodes:
            if observation.node(node.node_id).status is NodeStatus.BOOTING:
                wanted.append(max(node.requested_at + self.expected_boot, soon))
        running = any(e.phase is JobPhase.RUNNING and observation.run(e.job_id, e.attempt).status in _ACTIVE_RUNS
                      for e in cluster.jobs)
        if running or observation.unfinished_runs:
            wanted.append(soon)
        if not wanted:
            return None
        return self._wake(cluster.workspace, cluster.name, min(wanted))

    def _wake(self, workspace: str, cluster: str, at: datetime) -> datetime:
        slot = self._slot(at)
        if self._publish is not None:
            self._publish(new_event(SCALE_REQUEST, workspace, cluster, {"reason": "batch-poll"},
                                    event_id=f"batch-poll-{pool_id(workspace, cluster)}-{format_utc(slot)}"), slot)
        return slot

    def _slot(self, at: datetime) -> datetime:
        """``at`` rounded up to a whole number of poll intervals since the epoch (one id per interval)."""
        seconds = max(self._poll.total_seconds(), 0.001)
        return datetime.fromtimestamp(math.ceil(at.timestamp() / seconds) * seconds, UTC)
