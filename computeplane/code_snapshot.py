"""Snapshot a project directory for a job, as Azure ML does with ``source_directory``.

What goes in: every file under the directory except what ``.amlignore`` excludes, or ``.gitignore`` where a
directory has no ``.amlignore`` (gitignore rules, through ``pathspec``; a file in a subdirectory applies below it),
and never ``.git/``. Links are kept as links when they point inside the directory; one pointing outside is an error
(copying what it points at would surprise, dropping it silently would too). The archive format and its limits are
in computeplane/snapshot_archive.py, which the server applies again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pathspec

from computeplane.snapshot_archive import SnapshotRejected, build_archive, digest_of

IGNORE_FILES = (".amlignore", ".gitignore")
ALWAYS_IGNORED = frozenset({".git"})

__all__ = ["CodeSnapshot", "SnapshotRejected", "snapshot_directory", "snapshot_files"]


@dataclass(frozen=True)
class CodeSnapshot:
    archive: bytes
    digest: str
    files: tuple[str, ...]


def _ignore_spec(directory: Path) -> pathspec.GitIgnoreSpec | None:
    """The rules of this directory's .amlignore, else its .gitignore, as Azure ML reads them."""
    for name in IGNORE_FILES:
        path = directory / name
        if path.is_file():
            return pathspec.GitIgnoreSpec.from_lines(path.read_text(errors="replace").splitlines())
    return None


def snapshot_files(root: Path) -> list[str]:
    """The relative paths (POSIX) that go into a snapshot of ``root``: files, links, and empty directories."""
    if not root.is_dir():
        raise SnapshotRejected(f"{root}: not a directory")
    root = root.resolve()
    rules: list[tuple[Path, pathspec.GitIgnoreSpec]] = []
    chosen: list[str] = []

    def ignored(path: Path, is_dir: bool) -> bool:
        for base, spec in rules:
            if path.is_relative_to(base):
                relative = path.relative_to(base).as_posix() + ("/" if is_dir else "")
                if spec.match_file(relative):
                    return True
        return False

    for directory, subdirs, files in os.walk(root):
        here = Path(directory)
        rules = [(b, s) for b, s in rules if here.is_relative_to(b)]
        spec = _ignore_spec(here)
        if spec is not None:
            rules.append((here, spec))
        kept_dirs = []
        for name in sorted(subdirs):
            path = here / name
            if name in ALWAYS_IGNORED or ignored(path, is_dir=not path.is_symlink()):
                continue
            if path.is_symlink():
                chosen.append(path.relative_to(root).as_posix())  # a link to a directory: kept as a link
            else:
                kept_dirs.append(name)
        subdirs[:] = kept_dirs
        kept_files = [here / name for name in sorted(files) if not ignored(here / name, is_dir=False)]
        chosen.extend(p.relative_to(root).as_posix() for p in kept_files)
        if not kept_dirs and not kept_files and here != root:
            chosen.append(here.relative_to(root).as_posix())  # an empty directory the code may expect
    for name in chosen:
        path = root / name
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            raise SnapshotRejected(f"{name}: the link points outside {root} ({os.readlink(path)}); copy what it "
                                   "points at into the directory, or ignore it in .amlignore")
    return chosen


def snapshot_directory(root: str | os.PathLike[str]) -> CodeSnapshot:
    """The archive of ``root`` (reproducible: the same files give the same digest, so it is uploaded once)."""
    path = Path(root)
    files = snapshot_files(path)
    archive = build_archive(path.resolve(), files)
    return CodeSnapshot(archive=archive, digest=digest_of(archive), files=tuple(files))
