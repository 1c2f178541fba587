"""How a Batch task gets the job's code and its checkpoint directory. Pure: builds parts of the task body.

Every task's command runs through ``node_bootstrap`` (``python3 -c LOADER run -- CMD...``). The loader, a few lines,
executes the sources of ``computeplane.snapshot_archive`` and ``node_bootstrap``, which travel compressed in the
environment setting ``COMPUTEPLANE_NODE_BOOTSTRAP`` (about 8 KB): the node unpacks with the very code the server
checks archives with, and needs nothing but ``python3``.

The archive itself is a resource file: the blob ``<workspace>/<sha256>.tar.gz`` of the snapshot container (where
``BlobSnapshotStore`` put it), fetched by Batch with the pool's user-assigned identity (``identityReference``),
which needs "Storage Blob Data Reader" on the container. A one-node task downloads it to its working directory; a
multi-instance task as a common resource file on every node, where its coordination command (``unpack``) unpacks
it before the primary's command starts.
"""

from __future__ import annotations

import base64
import json
import shlex
import zlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import computeplane.snapshot_archive
from shared.adapters.azure_batch import node_bootstrap
from shared.adapters.azure_batch.node_bootstrap import CODE_ARCHIVE

BOOTSTRAP_VARIABLE = "COMPUTEPLANE_NODE_BOOTSTRAP"
CHECKPOINT_MOUNT = "computeplane-checkpoints"  # the pool's relativeMountPath of the checkpoint container
# Runs the shipped modules under the names they import each other by, then node_bootstrap.main.
_LOADER = ("import base64,json,os,sys,types,zlib\n"
           "sys.modules['computeplane']=p=types.ModuleType('computeplane');p.__path__=[]\n"
           f"for n,s in json.loads(zlib.decompress(base64.b64decode(os.environ['{BOOTSTRAP_VARIABLE}']))):\n"
           " m=sys.modules[n]=types.ModuleType(n);exec(compile(s,n,'exec'),m.__dict__)\n"
           "sys.exit(sys.modules['node_bootstrap'].main(sys.argv[1:]))")


@cache
def bootstrap_payload() -> str:
    modules = [("computeplane.snapshot_archive", Path(computeplane.snapshot_archive.__file__).read_text()),
               ("node_bootstrap", Path(node_bootstrap.__file__).read_text())]
    return base64.b64encode(zlib.compress(json.dumps(modules).encode(), 9)).decode()


def bootstrap_command(mode: str, command: Sequence[str] = ()) -> str:
    return shlex.join(["python3", "-c", _LOADER, mode, *(["--", *command] if command else [])])


def blob_url(container_url: str, workspace: str, digest: str) -> str:
    """Where ``BlobSnapshotStore`` keeps the snapshot (its ``blob_name``)."""
    return f"{container_url.rstrip('/')}/{workspace}/{digest}.tar.gz"


def task_with_code(task: dict[str, Any], command: Sequence[str], *, workspace: str, job_id: str,
                   code: str | None, container_url: str | None, identity: str | None,
                   checkpoint_mounted: bool) -> dict[str, Any]:
    """The task with its command run through the node bootstrap, the code's resource file and the settings the
    bootstrap reads. When the code cannot reach the node, the task says why (stderr, exit code 127) instead of
    running the command without it."""
    settings = {BOOTSTRAP_VARIABLE: bootstrap_payload(), "COMPUTEPLANE_CHECKPOINT_SUBPATH": f"{workspace}/{job_id}"}
    if checkpoint_mounted:
        settings["COMPUTEPLANE_CHECKPOINT_MOUNT"] = CHECKPOINT_MOUNT
    task = {**task, "commandLine": bootstrap_command("run", command)}
    if code is not None:
        settings["COMPUTEPLANE_CODE_DIGEST"] = code
        if not container_url or not identity:
            settings["COMPUTEPLANE_CODE_PROBLEM"] = (
                "this Batch deployment has no snapshot container (COMPUTEPLANE_SNAPSHOT_ACCOUNT_URL)"
                if not container_url else "the cluster's pool has no user-assigned identity to fetch it with (set "
                "COMPUTEPLANE_BATCH_NODE_IDENTITY, or give the cluster an identity)")
            return _with_settings(task, settings)
        resource = {"httpUrl": blob_url(container_url, workspace, code), "filePath": CODE_ARCHIVE,
                    "identityReference": {"resourceId": identity}}
        multi = task.get("multiInstanceSettings")
        if multi is not None:
            task["multiInstanceSettings"] = {**multi, "coordinationCommandLine": bootstrap_command("unpack"),
                                             "commonResourceFiles": [resource]}
        else:
            task["resourceFiles"] = [resource]
    return _with_settings(task, settings)


def _with_settings(task: dict[str, Any], settings: dict[str, str]) -> dict[str, Any]:
    return {**task, "environmentSettings": [*task.get("environmentSettings", []),
                                            *({"name": k, "value": v} for k, v in sorted(settings.items()))]}


def checkpoint_mount(container_url: str, identity: str) -> dict[str, Any]:
    """The pool's blobfuse mount of the checkpoint container, at ``$AZ_BATCH_NODE_MOUNTS_DIR/<CHECKPOINT_MOUNT>``."""
    host = container_url.split("://", 1)[-1]
    account, _, container = host.partition("/")
    return {"azureBlobFileSystemConfiguration": {
        "accountName": account.split(".", 1)[0], "containerName": container.strip("/"),
        "identityReference": {"resourceId": identity}, "relativeMountPath": CHECKPOINT_MOUNT}}
