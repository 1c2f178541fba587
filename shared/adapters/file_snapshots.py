"""Code snapshots as files in the data directory: ``<data dir>/snapshots/<workspace>/<sha256>.tar.gz``.

Written to a temporary name and renamed, so a reader never sees half an archive and two uploads of the same
snapshot leave one file. The data directory is hidden from jobs by the sandbox; nodes get their copy unpacked into
their working directory by the local provider.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

_WORKSPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class FileSnapshotStore:
    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def _path(self, workspace: str, digest: str) -> Path:
        # Both come from a URL: checked here too, so no value can name a path outside the directory.
        if not _WORKSPACE.fullmatch(workspace) or not _DIGEST.fullmatch(digest):
            raise ValueError(f"not a workspace name and snapshot digest: {workspace!r}, {digest!r}")
        return self._directory / workspace / f"{digest}.tar.gz"

    def put(self, workspace: str, digest: str, archive: bytes) -> bool:
        path = self._path(workspace, digest)
        if path.exists():
            return False
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(archive)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        finally:
            Path(temporary).unlink(missing_ok=True)
        return True

    def get(self, workspace: str, digest: str) -> bytes | None:
        try:
            return self._path(workspace, digest).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, workspace: str, digest: str) -> bool:
        return self._path(workspace, digest).exists()
