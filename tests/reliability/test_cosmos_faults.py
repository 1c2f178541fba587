"""The Cosmos DB store while the connection keeps failing: a fault-injecting HTTP transport in front of
@vercel/cosmosdb-server drops requests before they reach it. Every operation is retried with backoff (the SDK's
policy and ours); nothing is lost and nothing is written twice."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline.transport import RequestsTransport

from shared.adapters.cosmos_client import EMULATOR_KEY
from shared.adapters.cosmos_store import CosmosStore
from shared.domain.cluster import ClusterSpec
from shared.domain.commands import new_cluster
from shared.domain.job import Job, JobSpec

T0 = datetime(2026, 5, 1, tzinfo=UTC)


class DroppingTransport(RequestsTransport):
    """Fails every ``period``-th request with a connection error (the request never reached the server)."""

    def __init__(self, period: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.period, self.sent, self.dropped = period, 0, 0
        self._lock = threading.Lock()

    def send(self, request: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.sent += 1
            drop = self.sent % self.period == 0
            self.dropped += drop
        if drop:
            raise ServiceRequestError("injected: connection reset before the request was sent")
        return super().send(request, **kwargs)


def test_a_flaky_connection_to_cosmos_loses_and_duplicates_nothing(cosmosdb_endpoint: str) -> None:
    transport = DroppingTransport(period=3, connection_verify=False)
    store = CosmosStore(cosmosdb_endpoint, EMULATOR_KEY, database=f"faults-{uuid.uuid4().hex[:8]}",
                        container="state", transport=transport)
    spec = ClusterSpec(vm_size="Standard_D2_v2", max_nodes=4)
    cluster = store.create_cluster(new_cluster("ws", "flaky", spec, uuid.uuid4().hex, T0))
    for n in range(15):  # conditional read-modify-writes, each through the faulty connection
        cluster = store.get_cluster("ws", "flaky") or cluster
        cluster.node_seq = n + 1
        cluster = store.replace_cluster(cluster)
    for n in range(10):
        store.create_job(Job(workspace="ws", id=f"job-{n}", cluster="flaky", spec=JobSpec(command=["true"]),
                             submitted_at=T0))
    assert transport.dropped >= 10  # the faults really happened
    final = store.get_cluster("ws", "flaky")
    assert final is not None and final.node_seq == 15  # no update lost
    assert sorted(j.id for j in store.list_jobs("ws", "flaky")) == sorted(f"job-{n}" for n in range(10))  # none twice
    store.close()
