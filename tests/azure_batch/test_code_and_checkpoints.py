"""Jobs' own code and checkpoints on Batch, through the provider and the real SDKs against the stand-in: the
snapshot reaches every node as a resource file fetched with the pool's identity, is unpacked with the archive rules
(a hostile archive is refused on the node), and the command starts in it; ``COMPUTEPLANE_CHECKPOINT_DIR`` lies in
the checkpoint container every pool mounts."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from computeplane.code_snapshot import snapshot_directory
from shared.adapters.azure_batch.clients import AzureClients
from shared.adapters.azure_batch.provider import AzureBatchNodeProvider
from shared.adapters.clock import SystemClock
from shared.adapters.file_snapshots import FileSnapshotStore
from shared.domain.cluster import Cluster
from shared.domain.identity import ClusterIdentity, user_assigned_from_arm_id
from shared.domain.observation import NodeStatus, RunStatus
from shared.ports import RunRequest
from tests.azure_batch.fixtures import batch_settings
from tests.azure_batch.serving import SUBSCRIPTION, StandIn, TokenEndpoint
from tests.azure_batch.test_batch_provider import DATA_READER, ask_for_node, cluster_of, wait_for
from tests.unit.builders import add_job

STORAGE = "https://cpstorage.blob.core.windows.net"
NODE_IDENTITY = user_assigned_from_arm_id(f"/subscriptions/{SUBSCRIPTION}/resourcegroups/rg-computeplane/providers/"
                                          "Microsoft.ManagedIdentity/userAssignedIdentities/id-computeplane-nodes")
PROJECT = {
    "train.py": "import os\nfrom helpers.greet import greeting\n"
                "print(greeting(), 'in', os.path.basename(os.getcwd()))\n"
                "open(os.path.join(os.environ['COMPUTEPLANE_CHECKPOINT_DIR'], 'step.txt'), 'w').write('step 7')\n",
    "helpers/__init__.py": "",
    "helpers/greet.py": "def greeting() -> str:\n    return 'hello from my own module'\n",
}


@pytest.fixture
def snapshots(tmp_path: Path, standin: StandIn) -> FileSnapshotStore:
    """Blob Storage as nodes see it: the snapshot container, read with the identity Batch fetches with."""
    store = FileSnapshotStore(tmp_path / "snapshots")
    reads: list[tuple[str, str | None]] = []

    def read(url: str, identity: str | None) -> bytes | None:
        reads.append((url, identity))
        prefix = f"{STORAGE}/snapshots/"
        if not url.startswith(prefix) or identity is None:
            return None  # another container, or no identity: the container allows no anonymous reads
        workspace, _, name = url.removeprefix(prefix).partition("/")
        return store.get(workspace, name.removesuffix(".tar.gz"))

    standin.world.blob_reader = read
    store.reads = reads  # type: ignore[attr-defined]
    return store


@pytest.fixture
def provider(azure_env: pytest.MonkeyPatch, standin: StandIn,
             token_endpoint: TokenEndpoint) -> Iterator[AzureBatchNodeProvider]:
    settings = batch_settings(standin)
    settings = type(settings)(**{**settings.__dict__, "snapshot_container_url": f"{STORAGE}/snapshots",
                                 "checkpoint_container_url": f"{STORAGE}/checkpoints",
                                 "node_identity_id": NODE_IDENTITY.resource_id})
    made = AzureBatchNodeProvider(settings, AzureClients.build(settings, token_endpoint.identity.client_id),
                                  SystemClock(), "eastus")
    yield made
    made.close()


def project_snapshot(tmp_path: Path, store: FileSnapshotStore) -> str:
    root = tmp_path / "project"
    for name, text in PROJECT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    snapshot = snapshot_directory(root)
    store.put("ws", snapshot.digest, snapshot.archive)
    return snapshot.digest


def run_to_end(provider: AzureBatchNodeProvider, cluster: Cluster, node_count: int, run: RunRequest) -> int:
    nodes = [ask_for_node(provider, cluster) for _ in range(node_count)]
    wait_for(provider, cluster, lambda o: all(o.nodes[n].status is NodeStatus.READY for n in nodes), timeout=90)
    add_job(cluster, run.job_id, node_count=node_count, running_on=[n for n in cluster.nodes if n.node_id in nodes])
    provider.start_run(nodes, run)
    seen = wait_for(provider, cluster, lambda o: o.runs[(run.job_id, run.attempt)].status is RunStatus.FINISHED,
                    timeout=90)
    return int(seen.runs[(run.job_id, run.attempt)].exit_code or 0)


def request(job_id: str, code: str | None, cluster: Cluster) -> RunRequest:
    return RunRequest(cluster.workspace, cluster.name, job_id, 1, ("python", "train.py"),
                      {"COMPUTEPLANE_ATTEMPT": "1"}, code=code)


def test_a_project_that_imports_its_own_module_runs_in_its_unpacked_code_on_one_node(
        provider: AzureBatchNodeProvider, standin: StandIn, snapshots: FileSnapshotStore, tmp_path: Path) -> None:
    digest = project_snapshot(tmp_path, snapshots)
    cluster = cluster_of("code1")
    provider.observe(cluster)
    assert run_to_end(provider, cluster, 1, request("j-one", digest, cluster)) == 0, provider.read_logs("j-one", 1)
    assert "hello from my own module in code" in (provider.read_logs("j-one", 1) or "")
    assert snapshots.reads == [(f"{STORAGE}/snapshots/ws/{digest}.tar.gz",  # type: ignore[attr-defined]
                                NODE_IDENTITY.resource_id)]
    # The checkpoint went to the checkpoint container, under the workspace and the job.
    container = standin.world.work_dir / "blob-containers" / "cpstorage" / "checkpoints"
    assert (container / "ws" / "j-one" / "step.txt").read_text() == "step 7"


def test_a_two_node_job_finds_its_code_unpacked_on_every_node(
        provider: AzureBatchNodeProvider, standin: StandIn, snapshots: FileSnapshotStore, tmp_path: Path) -> None:
    digest = project_snapshot(tmp_path, snapshots)
    cluster = cluster_of("code2")
    provider.observe(cluster)
    assert run_to_end(provider, cluster, 2, request("j-two", digest, cluster)) == 0, provider.read_logs("j-two", 1)
    assert "hello from my own module in code" in (provider.read_logs("j-two", 1) or "")
    with standin.world.lock:
        [task] = [t for t in standin.world.tasks.values() if t.id.startswith("j-two")]
        batch_nodes = list(task.nodes)
    assert len(batch_nodes) == 2
    for batch_node in batch_nodes:  # the coordination command unpacked it on each node, primary or not
        code = standin.world.work_dir / "nodes" / batch_node / "tasks" / task.job / task.id / "shared" / "code"
        assert (code / "helpers" / "greet.py").read_text() == PROJECT["helpers/greet.py"]


def hostile_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        payload = b"print('escaped')\n"
        entry = tarfile.TarInfo("../../escaped.py")
        entry.size = len(payload)
        tar.addfile(entry, io.BytesIO(payload))
    return buffer.getvalue()


def test_an_archive_that_escapes_its_directory_is_refused_on_the_node(
        provider: AzureBatchNodeProvider, standin: StandIn, snapshots: FileSnapshotStore) -> None:
    import hashlib

    archive = hostile_archive()
    digest = hashlib.sha256(archive).hexdigest()
    snapshots.put("ws", digest, archive)  # as if the blob had been written past the API's own check
    cluster = cluster_of("hostile")
    provider.observe(cluster)
    assert run_to_end(provider, cluster, 1, request("j-bad", digest, cluster)) == 127
    logs = provider.read_logs("j-bad", 1) or ""
    assert f"cannot unpack code snapshot {digest}" in logs and ".." in logs
    assert not list(standin.world.work_dir.rglob("escaped.py"))


def test_without_a_node_identity_the_clusters_identity_fetches_the_code_and_without_any_the_job_says_why(
        azure_env: pytest.MonkeyPatch, standin: StandIn, token_endpoint: TokenEndpoint,
        snapshots: FileSnapshotStore, tmp_path: Path) -> None:
    settings = batch_settings(standin)
    settings = type(settings)(**{**settings.__dict__, "snapshot_container_url": f"{STORAGE}/snapshots"})
    provider = AzureBatchNodeProvider(settings, AzureClients.build(settings, token_endpoint.identity.client_id),
                                      SystemClock(), "eastus")
    try:
        digest = project_snapshot(tmp_path, snapshots)
        with_identity = cluster_of("withid")
        with_identity.identity = ClusterIdentity(type="UserAssigned", identities=(DATA_READER,))
        provider.observe(with_identity)
        assert run_to_end(provider, with_identity, 1, request("j-id", digest, with_identity)) == 0
        assert snapshots.reads[-1][1] == DATA_READER.resource_id  # type: ignore[attr-defined]
        # No checkpoint container: the checkpoint stays in the node's shared directory.
        assert list(standin.world.work_dir.glob("nodes/*/shared/computeplane-checkpoints/ws/j-id/step.txt"))

        bare = cluster_of("noid")
        provider.observe(bare)
        assert run_to_end(provider, bare, 1, request("j-noid", digest, bare)) == 127
        assert "no user-assigned identity to fetch it with" in (provider.read_logs("j-noid", 1) or "")
    finally:
        provider.close()
