"""The Batch task's code and checkpoint parts (node_code), and the node bootstrap run for real as the node runs it:
``python3 -c LOADER`` with the modules shipped in the task's environment, in a subprocess."""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from computeplane.snapshot_archive import build_archive
from shared.adapters.azure_batch.node_bootstrap import CODE_ARCHIVE, checkpoint_directory
from shared.adapters.azure_batch.node_code import (
    BOOTSTRAP_VARIABLE,
    CHECKPOINT_MOUNT,
    bootstrap_payload,
    checkpoint_mount,
    task_with_code,
)
from shared.config import AzureBatchSettings

IDENTITY = "/subscriptions/0/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/nodes"
CONTAINER = "https://acct.blob.core.windows.net/snapshots"


def settings_of(task: dict[str, object]) -> dict[str, str]:
    return {s["name"]: s["value"] for s in task["environmentSettings"]}  # type: ignore[attr-defined, index]


def test_a_one_node_task_downloads_the_blob_with_the_identity_and_a_gang_task_on_every_node() -> None:
    one = task_with_code({"id": "t", "environmentSettings": [{"name": "A", "value": "1"}]}, ["python", "train.py"],
                         workspace="ws", job_id="j", code="ab" * 32, container_url=CONTAINER, identity=IDENTITY,
                         checkpoint_mounted=True)
    assert one["resourceFiles"] == [{"httpUrl": f"{CONTAINER}/ws/{'ab' * 32}.tar.gz", "filePath": CODE_ARCHIVE,
                                     "identityReference": {"resourceId": IDENTITY}}]
    assert shlex.split(one["commandLine"])[-4:] == ["run", "--", "python", "train.py"]
    assert settings_of(one)["A"] == "1" and settings_of(one)["COMPUTEPLANE_CHECKPOINT_SUBPATH"] == "ws/j"
    assert settings_of(one)["COMPUTEPLANE_CHECKPOINT_MOUNT"] == CHECKPOINT_MOUNT
    gang = task_with_code({"id": "t", "multiInstanceSettings": {"numberOfInstances": 2}}, ["python", "train.py"],
                          workspace="ws", job_id="j", code="ab" * 32, container_url=CONTAINER, identity=IDENTITY,
                          checkpoint_mounted=False)
    assert "resourceFiles" not in gang
    multi = gang["multiInstanceSettings"]
    assert multi["numberOfInstances"] == 2 and multi["commonResourceFiles"] == one["resourceFiles"]
    assert shlex.split(multi["coordinationCommandLine"])[-1] == "unpack"
    assert "COMPUTEPLANE_CHECKPOINT_MOUNT" not in settings_of(gang)


def test_the_pools_checkpoint_mount_names_the_account_container_and_identity() -> None:
    mount = checkpoint_mount("https://acct.blob.core.windows.net/checkpoints/", IDENTITY)
    assert mount == {"azureBlobFileSystemConfiguration": {
        "accountName": "acct", "containerName": "checkpoints", "identityReference": {"resourceId": IDENTITY},
        "relativeMountPath": CHECKPOINT_MOUNT}}


def test_the_checkpoint_directory_is_in_the_mount_or_else_on_the_node() -> None:
    env = {"COMPUTEPLANE_CHECKPOINT_SUBPATH": "ws/j", "AZ_BATCH_NODE_SHARED_DIR": "/b/shared",
           "AZ_BATCH_NODE_MOUNTS_DIR": "/b/fsmounts"}
    assert checkpoint_directory(env) == Path("/b/shared/computeplane-checkpoints/ws/j")
    assert checkpoint_directory({**env, "COMPUTEPLANE_CHECKPOINT_MOUNT": "cp"}) == Path("/b/fsmounts/cp/ws/j")
    assert checkpoint_directory({}) is None


def run_on_node(tmp_path: Path, task: dict[str, object], archive: bytes | None) -> subprocess.CompletedProcess[str]:
    """The task's command line as a node runs it, in a task directory laid out as Batch's."""
    task_dir = tmp_path / "tasks" / "job" / "task"
    (task_dir / "wd").mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    if archive is not None:
        (task_dir / "wd" / CODE_ARCHIVE).write_bytes(archive)
    command = shlex.split(str(task["commandLine"]))
    command[0] = sys.executable  # the node's python3
    env = {**settings_of(task), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
           "AZ_BATCH_TASK_DIR": str(task_dir), "AZ_BATCH_TASK_WORKING_DIR": str(task_dir / "wd"),
           "AZ_BATCH_NODE_SHARED_DIR": str(tmp_path / "shared")}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_bootstrap_unpacks_checks_the_digest_and_starts_the_command_in_the_code(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "lib").mkdir(parents=True)
    (project / "lib" / "__init__.py").write_text("NAME = 'mine'\n")
    archive = build_archive(project, ["lib", "lib/__init__.py"])
    digest = hashlib.sha256(archive).hexdigest()
    command = ["python", "-c", "import os, lib; print(lib.NAME, os.path.basename(os.getcwd()), "
                               "os.environ['COMPUTEPLANE_CHECKPOINT_DIR'])"]
    task = task_with_code({"id": "t"}, command, workspace="ws", job_id="j", code=digest, container_url=CONTAINER,
                          identity=IDENTITY, checkpoint_mounted=False)
    assert len(settings_of(task)[BOOTSTRAP_VARIABLE]) == len(bootstrap_payload()) < 16_000
    done = run_on_node(tmp_path / "good", task, archive)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == ["mine", "code"]
    assert done.stdout.split()[2].endswith("shared/computeplane-checkpoints/ws/j")

    tampered = run_on_node(tmp_path / "tampered", task, archive + b"\0")
    assert tampered.returncode == 127 and "has another SHA-256" in tampered.stderr
    missing = run_on_node(tmp_path / "missing", task, None)
    assert missing.returncode == 127 and "was not downloaded" in missing.stderr
    no_program = task_with_code({"id": "t"}, ["no-such-program-here"], workspace="ws", job_id="j", code=None,
                                container_url=None, identity=None, checkpoint_mounted=False)
    typo = run_on_node(tmp_path / "typo", no_program, None)
    assert typo.returncode == 127 and "cannot start 'no-such-program-here'" in typo.stderr


def test_the_batch_settings_name_the_snapshot_and_checkpoint_containers_and_refuse_a_bad_poll() -> None:
    base = {"AZURE_SUBSCRIPTION_ID": "s", "COMPUTEPLANE_NODE_RESOURCE_GROUP": "rg", "COMPUTEPLANE_BATCH_ACCOUNT": "a",
            "COMPUTEPLANE_BATCH_ACCOUNT_ENDPOINT": "https://a.eastus.batch.azure.com"}
    plain = AzureBatchSettings.from_env(base)
    assert plain.snapshot_container_url is None and plain.checkpoint_container_url is None
    assert plain.poll_seconds == 10 and plain.expected_boot_seconds == 300
    full = AzureBatchSettings.from_env({**base, "COMPUTEPLANE_SNAPSHOT_ACCOUNT_URL": "https://acct.blob.core.windows.net/",
                                        "COMPUTEPLANE_CHECKPOINT_CONTAINER": "checkpoints",
                                        "COMPUTEPLANE_BATCH_NODE_IDENTITY": IDENTITY})
    assert full.snapshot_container_url == "https://acct.blob.core.windows.net/snapshots"
    assert full.checkpoint_container_url == "https://acct.blob.core.windows.net/checkpoints"
    assert full.node_identity_id == IDENTITY
    with pytest.raises(ValueError, match="COMPUTEPLANE_BATCH_POLL_SECONDS"):
        AzureBatchSettings.from_env({**base, "COMPUTEPLANE_BATCH_POLL_SECONDS": "often"})
