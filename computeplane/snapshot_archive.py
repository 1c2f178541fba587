"""Code snapshots as archives: one gzipped tar per project directory, named by the SHA-256 of its bytes.

The client builds the archive (``build_archive``), the server checks it when it is uploaded (``check_archive``) and
again when a node unpacks it (``unpack_archive``): an archive is never trusted, wherever it came from. The rules:

- only regular files, directories and symbolic links; no hard links, devices or FIFOs;
- every name relative, with no ``..`` component and no NUL, and unique;
- a link's target relative, and inside the snapshot once resolved from the link's own directory; nothing is ever
  written through a link (a file below a link is refused), and after unpacking every link is resolved for real;
- at most ``MAX_ARCHIVE_BYTES`` compressed, ``MAX_UNPACKED_BYTES`` unpacked and ``MAX_FILES`` entries, counted
  while decompressing (a small archive that inflates to gigabytes is stopped at the limit, not after).

Stdlib only, in the client package so the client needs nothing of the server; the server imports it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final, Protocol

MAX_ARCHIVE_BYTES: Final = 32 * 1024 * 1024
MAX_UNPACKED_BYTES: Final = 256 * 1024 * 1024
MAX_FILES: Final = 10_000
DIGEST_PATTERN: Final = r"^[0-9a-f]{64}$"
_COPY_CHUNK = 1024 * 1024


class SnapshotRejected(ValueError):
    """The archive (or the directory to snapshot) breaks a rule; the message names the entry and the rule."""


@dataclass(frozen=True)
class SnapshotEntry:
    """What one member of the archive is, before anything is written."""

    name: str
    kind: str  # "file", "dir" or "link"
    size: int = 0
    link_target: str = ""


def digest_of(archive: bytes) -> str:
    return hashlib.sha256(archive).hexdigest()


def build_archive(root: Path, relative_paths: Iterable[str]) -> bytes:
    """A reproducible archive of ``root``'s files (same content -> same bytes -> same digest): sorted names, no
    owners, no times, modes reduced to executable or not. Links are kept as links if they stay inside ``root``."""
    buffer = io.BytesIO()
    total = 0
    names = sorted(set(relative_paths))
    if len(names) > MAX_FILES:
        raise SnapshotRejected(f"{len(names)} files; a snapshot holds at most {MAX_FILES}")
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped, \
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            check_member_name(name)
            path = root / name
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_symlink():
                target = os.readlink(path)
                check_link_target(name, target)
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
                tar.addfile(info)
            elif path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif path.is_file():
                info.size = path.stat().st_size
                total += info.size
                if total > MAX_UNPACKED_BYTES:
                    raise SnapshotRejected(f"{name}: the files add up to more than {MAX_UNPACKED_BYTES} bytes, the "
                                           "limit of a snapshot (ignore large data in .amlignore and read it from "
                                           "a datastore)")
                info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
                with open(path, "rb") as file:
                    tar.addfile(info, file)
            else:
                raise SnapshotRejected(f"{name}: only regular files, directories and links can be snapshotted")
    archive = buffer.getvalue()
    check_archive_size(len(archive))
    return archive


def check_archive_size(size: int) -> None:
    if size > MAX_ARCHIVE_BYTES:
        raise SnapshotRejected(f"the compressed snapshot is {size} bytes; the limit is {MAX_ARCHIVE_BYTES} bytes "
                               "(ignore data, checkpoints and environments in .amlignore or .gitignore)")


def check_member_name(name: str) -> str:
    """A relative POSIX path with no ``..`` and no empty or NUL parts; returns it without a trailing slash."""
    if not name or "\x00" in name or "\\" in name:
        raise SnapshotRejected(f"{name!r}: a name must be a non-empty relative path without NUL or backslash")
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/"):
        raise SnapshotRejected(f"{name}: absolute paths are not allowed in a snapshot")
    if any(part == ".." for part in path.parts):
        raise SnapshotRejected(f"{name}: '..' is not allowed in a snapshot (the path would escape its directory)")
    if not path.parts or path.parts == (".",):
        raise SnapshotRejected(f"{name!r}: names the snapshot's root itself")
    return str(path)


def check_link_target(name: str, target: str) -> None:
    """A link's target is relative and, resolved from the link's directory, stays inside the snapshot."""
    if not target or "\x00" in target:
        raise SnapshotRejected(f"{name}: a link needs a target")
    if target.startswith("/"):
        raise SnapshotRejected(f"{name}: links to absolute paths ({target}) are not allowed in a snapshot")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved == ".." or resolved.startswith("../"):
        raise SnapshotRejected(f"{name}: the link points outside the snapshot ({target})")


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _BoundedReader(io.RawIOBase):
    """Reads a decompressed stream and fails once more than ``limit`` bytes came out of it."""

    def __init__(self, stream: _Readable, limit: int) -> None:
        self._stream, self._limit, self._read = stream, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._stream.read(len(buffer))
        self._read += len(chunk)
        if self._read > self._limit:
            raise SnapshotRejected(f"the snapshot unpacks to more than {self._limit} bytes, the limit")
        buffer[:len(chunk)] = chunk
        return len(chunk)


def _members(archive: bytes) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo, SnapshotEntry]]:
    """Each member with what it is, checked against every rule that needs no disk, in archive order."""
    check_archive_size(len(archive))
    # Headers and padding come on top of the content: allow them, so the content limit is the one reported.
    bounded = _BoundedReader(gzip.GzipFile(fileobj=io.BytesIO(archive)), MAX_UNPACKED_BYTES + 64 * 1024 * 1024)
    seen: dict[str, str] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BufferedReader(bounded), mode="r|") as tar:
            for member in tar:
                name = check_member_name(member.name)
                if name in seen:
                    raise SnapshotRejected(f"{name}: appears twice in the snapshot")
                for parent in PurePosixPath(name).parents:
                    if seen.get(str(parent)) == "link":
                        raise SnapshotRejected(f"{name}: lies below the link {parent} (nothing is written "
                                               "through a link)")
                if len(seen) >= MAX_FILES:
                    raise SnapshotRejected(f"more than {MAX_FILES} entries; a snapshot holds at most {MAX_FILES}")
                if member.isreg():
                    total += member.size
                    if total > MAX_UNPACKED_BYTES:
                        raise SnapshotRejected(f"{name}: the files add up to more than {MAX_UNPACKED_BYTES} bytes, "
                                               "the limit of a snapshot")
                    entry = SnapshotEntry(name, "file", member.size)
                elif member.isdir():
                    entry = SnapshotEntry(name, "dir")
                elif member.issym():
                    check_link_target(name, member.linkname)
                    entry = SnapshotEntry(name, "link", link_target=member.linkname)
                elif member.islnk():
                    raise SnapshotRejected(f"{name}: hard links are not allowed in a snapshot")
                else:
                    raise SnapshotRejected(f"{name}: only regular files, directories and links are allowed "
                                           "(no devices or FIFOs)")
                seen[name] = entry.kind
                yield tar, member, entry
    except SnapshotRejected:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as exc:  # whatever a crafted stream does
        raise SnapshotRejected(f"not a gzipped tar archive ({exc})") from None


def check_archive(archive: bytes) -> list[SnapshotEntry]:
    """Every entry, once each rule has been checked (nothing is written)."""
    return [entry for _, _, entry in _members(archive)]


def unpack_archive(archive: bytes, destination: Path) -> None:
    """Unpack into ``destination`` (created, or an existing directory), checking every rule again as it goes.
    On a broken rule, whatever was unpacked is removed and ``SnapshotRejected`` raised."""
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    written: list[Path] = []
    try:
        for tar, member, entry in _members(archive):
            target = root / entry.name
            _check_real_parent(root, target, entry.name)
            if entry.kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
            elif entry.kind == "link":
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(entry.link_target, target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                mode = 0o755 if member.mode & stat.S_IXUSR else 0o644
                with source, os.fdopen(os.open(target, flags, mode), "wb") as out:
                    shutil.copyfileobj(source, out, _COPY_CHUNK)
            written.append(target)
        _check_links_resolve_inside(root)
    except (SnapshotRejected, OSError) as exc:
        for path in reversed(written):
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
            elif path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
        if isinstance(exc, SnapshotRejected):
            raise
        raise SnapshotRejected(f"cannot unpack: {exc}") from None


def _check_real_parent(root: Path, target: Path, name: str) -> None:
    """The directory an entry lands in is really inside ``root`` (no link on the way has been followed out)."""
    parent = target.parent
    while not parent.exists() and parent != root:
        parent = parent.parent
    if not parent.resolve().is_relative_to(root):
        raise SnapshotRejected(f"{name}: would be written outside the snapshot")


def _check_links_resolve_inside(root: Path) -> None:
    for directory, subdirs, files in os.walk(root):
        for name in [*subdirs, *files]:
            path = Path(directory) / name
            if not path.is_symlink():
                continue
            try:
                inside = path.resolve().is_relative_to(root)
            except RuntimeError:  # a loop of links
                inside = False
            if not inside:
                raise SnapshotRejected(f"{path.relative_to(root)}: the link resolves outside the snapshot")
