"""What runs first on a Batch node, before the job's command: unpack the job's code, make its checkpoint directory,
then start the command there. Stdlib only, and self-contained but for ``computeplane.snapshot_archive``: the provider
ships both sources to the node inside the task's environment (``node_code.task_with_code``), since a Batch node has
``python3`` but none of ComputePlane.

``run -- CMD...`` (a task's command line) and ``unpack`` (a multi-instance task's coordination command, on every
node before the primary's command starts) read the task's environment:

- ``COMPUTEPLANE_CODE_DIGEST``: the job's snapshot (SHA-256 of its archive). The archive is the task's resource
  file ``CODE_ARCHIVE`` (in ``AZ_BATCH_TASK_WORKING_DIR``, or in ``AZ_BATCH_TASK_DIR`` for a multi-instance task's
  common resource file); it is checked against the digest and unpacked with ``unpack_archive`` (which refuses path
  escapes) into ``code/`` of ``AZ_BATCH_TASK_SHARED_DIR`` (a multi-instance task: the same path on every node) or
  of the working directory. The command starts there; without code, in the working directory.
- ``COMPUTEPLANE_CHECKPOINT_SUBPATH`` (``<workspace>/<job>``): ``COMPUTEPLANE_CHECKPOINT_DIR`` is that path under
  the pool's checkpoint mount (``AZ_BATCH_NODE_MOUNTS_DIR/COMPUTEPLANE_CHECKPOINT_MOUNT``: a blob container, so
  it survives attempts on any node), or, when the pool has no such mount, under the node's shared directory
  (``AZ_BATCH_NODE_SHARED_DIR/computeplane-checkpoints``: it survives only attempts on the same node).

A problem (no archive, a digest that does not match, a refused archive, a command that cannot start) is written to
stderr with exit code 127, as the local provider does.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from computeplane.snapshot_archive import SnapshotRejected, unpack_archive

CODE_ARCHIVE = "computeplane-code.tar.gz"
CODE_DIR = "code"
LOCAL_CHECKPOINTS = "computeplane-checkpoints"
COULD_NOT_START = 127


class NodeProblem(Exception):
    """Something the job's command cannot run without; reported on stderr with exit code 127."""


def code_directory(env: Mapping[str, str]) -> Path:
    return Path(env.get("AZ_BATCH_TASK_SHARED_DIR") or env["AZ_BATCH_TASK_WORKING_DIR"]) / CODE_DIR


def unpack_code(env: Mapping[str, str]) -> Path | None:
    """Unpack the job's code once per node (a second call finds it there); None when the job has no code."""
    digest = env.get("COMPUTEPLANE_CODE_DIGEST")
    if not digest:
        return None
    if env.get("COMPUTEPLANE_CODE_PROBLEM"):
        raise NodeProblem(f"code snapshot {digest} cannot reach this node: {env['COMPUTEPLANE_CODE_PROBLEM']}")
    destination = code_directory(env)
    if destination.is_dir():
        return destination  # unpacked by the coordination command already
    candidates = [Path(env[name]) / CODE_ARCHIVE for name in ("AZ_BATCH_TASK_WORKING_DIR", "AZ_BATCH_TASK_DIR")
                  if env.get(name)]
    archive_path = next((path for path in candidates if path.is_file()), None)
    if archive_path is None:
        raise NodeProblem(f"code snapshot {digest} was not downloaded to this node")
    archive = archive_path.read_bytes()
    if hashlib.sha256(archive).hexdigest() != digest:
        raise NodeProblem(f"code snapshot {digest}: the downloaded archive has another SHA-256")
    staging = Path(tempfile.mkdtemp(prefix=".code-", dir=destination.parent))
    try:
        unpack_archive(archive, staging)
    except SnapshotRejected as error:
        raise NodeProblem(f"cannot unpack code snapshot {digest}: {error}") from None
    try:
        staging.rename(destination)  # whole or not at all, even if two commands on one node race
    except OSError:
        if not destination.is_dir():
            raise
    return destination


def checkpoint_directory(env: Mapping[str, str]) -> Path | None:
    subpath = env.get("COMPUTEPLANE_CHECKPOINT_SUBPATH")
    if not subpath:
        return None
    mount, mounts = env.get("COMPUTEPLANE_CHECKPOINT_MOUNT"), env.get("AZ_BATCH_NODE_MOUNTS_DIR")
    base = Path(mounts) / mount if mount and mounts else Path(env["AZ_BATCH_NODE_SHARED_DIR"]) / LOCAL_CHECKPOINTS
    return base / subpath


def main(argv: Sequence[str], env: Mapping[str, str] = os.environ) -> int:
    mode, command = (argv[0] if argv else ""), list(argv[2:] if len(argv) > 1 and argv[1] == "--" else argv[1:])
    try:
        code = unpack_code(env)
        if mode == "unpack":
            return 0
        if mode != "run" or not command:
            raise NodeProblem(f"usage: run -- COMMAND... | unpack (got {list(argv)!r})")
        checkpoints = checkpoint_directory(env)
        environment = dict(env)
        if checkpoints is not None:
            checkpoints.mkdir(mode=0o700, parents=True, exist_ok=True)
            environment["COMPUTEPLANE_CHECKPOINT_DIR"] = str(checkpoints)
        os.chdir(code or env.get("AZ_BATCH_TASK_WORKING_DIR") or ".")
        try:
            os.execvpe(command[0], command, environment)
        except OSError as error:
            raise NodeProblem(f"cannot start {command[0]!r}: {error}") from None
    except (NodeProblem, OSError) as problem:
        print(f"computeplane: {problem}", file=sys.stderr, flush=True)
        return COULD_NOT_START
    return 0  # not reached: execvpe replaced this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
