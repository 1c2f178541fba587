"""Code snapshots: what goes in (ignore rules), the round trip, and archives built to escape or exhaust."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from computeplane.code_snapshot import snapshot_directory, snapshot_files
from computeplane.snapshot_archive import (
    MAX_UNPACKED_BYTES,
    SnapshotRejected,
    check_archive,
    digest_of,
    unpack_archive,
)
from shared.adapters.file_snapshots import FileSnapshotStore


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def hostile(*members: tarfile.TarInfo, content: bytes = b"") -> bytes:
    """A gzipped tar with exactly these members, as an attacker would craft it (no client-side checks)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as zipped, tarfile.open(fileobj=zipped, mode="w") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(content) if member.isreg() else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, link
    return info


def test_round_trip_keeps_files_modes_and_inner_links_and_the_digest_depends_only_on_content(tmp_path: Path) -> None:
    project = write(tmp_path / "project", {"train.py": "import lib.util\n", "lib/__init__.py": "",
                                           "lib/util.py": "X = 1\n", "run.sh": "#!/bin/sh\necho hi\n"})
    (project / "run.sh").chmod(0o755)
    (project / "empty").mkdir()
    (project / "alias.py").symlink_to("train.py")
    snapshot = snapshot_directory(project)

    os.utime(project / "train.py", (0, 0))  # another time: the same snapshot
    assert snapshot_directory(project).digest == snapshot.digest == digest_of(snapshot.archive)

    unpack_archive(snapshot.archive, tmp_path / "node")
    node = tmp_path / "node"
    assert (node / "lib/util.py").read_text() == "X = 1\n"
    assert os.access(node / "run.sh", os.X_OK) and not os.access(node / "train.py", os.X_OK)
    assert (node / "empty").is_dir()
    assert os.readlink(node / "alias.py") == "train.py" and (node / "alias.py").read_text() == "import lib.util\n"

    (project / "lib/util.py").write_text("X = 2\n")
    assert snapshot_directory(project).digest != snapshot.digest


def test_amlignore_wins_over_gitignore_and_rules_apply_below_their_directory(tmp_path: Path) -> None:
    project = write(tmp_path, {
        ".gitignore": "*.log\n", "train.py": "", "debug.log": "", "data/big.bin": "", ".git/config": "",
        "outputs/model.pt": "", "outputs/keep.txt": "",
        "sub/.gitignore": "*.tmp\n!important.tmp\n", "sub/a.tmp": "", "sub/important.tmp": "", "sub/b.log": "",
        "other/.amlignore": "secret.txt\n", "other/.gitignore": "*\n", "other/secret.txt": "", "other/code.py": "",
    })
    assert set(snapshot_files(project)) == {
        ".gitignore", "train.py", "data/big.bin", "outputs/model.pt", "outputs/keep.txt",
        "sub/.gitignore", "sub/important.tmp",
        "other/.amlignore", "other/.gitignore", "other/code.py"}  # .git never; other/ uses .amlignore only

    write(project, {".amlignore": "data/\noutputs/*\n!outputs/keep.txt\n"})  # .amlignore replaces .gitignore
    chosen = set(snapshot_files(project))
    assert "debug.log" in chosen and "sub/b.log" in chosen  # the root's *.log rule is gone with its .gitignore
    assert not any(name.startswith("data/") for name in chosen)
    assert "outputs/keep.txt" in chosen and "outputs/model.pt" not in chosen


def test_a_link_leading_out_of_the_project_is_refused_when_snapshotting(tmp_path: Path) -> None:
    project = write(tmp_path / "project", {"train.py": ""})
    (tmp_path / "secret").write_text("s")
    (project / "data").symlink_to(tmp_path / "secret")
    with pytest.raises(SnapshotRejected, match="data: the link points outside"):
        snapshot_directory(project)


@pytest.mark.parametrize(("members", "rule"), [
    ((member("../evil.py", size=1),), "'..' is not allowed"),
    ((member("ok/../../evil.py", size=1),), "'..' is not allowed"),
    ((member("/etc/cron.d/evil", size=1),), "absolute paths are not allowed"),
    ((member("up", tarfile.SYMTYPE, link="../.."),), "the link points outside"),
    ((member("etc", tarfile.SYMTYPE, link="/etc"),), "links to absolute paths"),
    ((member("d", tarfile.SYMTYPE, link="sub/../.."),), "the link points outside"),
    ((member("inner", tarfile.SYMTYPE, link="."), member("inner/x.py", size=1)), "lies below the link inner"),
    ((member("a.py", size=1), member("b.py", tarfile.LNKTYPE, link="a.py")), "hard links are not allowed"),
    ((member("dev", tarfile.CHRTYPE),), "no devices or FIFOs"),
    ((member("pipe", tarfile.FIFOTYPE),), "no devices or FIFOs"),
    ((member("a.py", size=1), member("a.py", size=1)), "appears twice"),
])
def test_hostile_archives_are_refused_and_nothing_is_left_behind(tmp_path: Path, members: tuple[tarfile.TarInfo, ...],
                                                                 rule: str) -> None:
    archive = hostile(*members, content=b"x")
    with pytest.raises(SnapshotRejected, match=rule):
        check_archive(archive)
    node = tmp_path / "sandbox" / "node"
    with pytest.raises(SnapshotRejected, match=rule):
        unpack_archive(archive, node)
    assert list(node.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "sandbox").iterdir()) == ["node"]


def test_a_small_archive_that_inflates_past_the_limit_is_stopped(tmp_path: Path) -> None:
    huge = MAX_UNPACKED_BYTES + 1024 * 1024
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=1) as zipped, \
            tarfile.open(fileobj=zipped, mode="w") as tar:
        info = member("zeros.bin", size=huge)
        tar.addfile(info, _Zeros(huge))  # streamed: never held in memory
    archive = buffer.getvalue()
    assert len(archive) < 2 * 1024 * 1024  # small on the wire
    with pytest.raises(SnapshotRejected, match=f"more than {MAX_UNPACKED_BYTES} bytes"):
        unpack_archive(archive, tmp_path / "node")
    assert not any((tmp_path / "node").iterdir())


def test_garbage_is_not_an_archive() -> None:
    with pytest.raises(SnapshotRejected, match="not a gzipped tar archive"):
        check_archive(b"PK\x03\x04 this is a zip, not a tar")


def test_the_file_store_keeps_one_copy_per_digest_and_refuses_names_outside_it(tmp_path: Path) -> None:
    store = FileSnapshotStore(tmp_path / "snapshots")
    archive = snapshot_directory(write(tmp_path / "p", {"a.py": "print(1)\n"})).archive
    digest = digest_of(archive)
    assert store.put("team-a", digest, archive) is True
    assert store.put("team-a", digest, archive) is False
    assert store.get("team-a", digest) == archive and store.exists("team-a", digest)
    assert store.get("team-b", digest) is None  # per workspace: a digest is not a key to another team's code
    with pytest.raises(ValueError, match="not a workspace name"):
        store.get("../x", digest)


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left)
        buffer[:n] = bytes(n)
        self._left -= n
        return n


def test_a_corrupt_compressed_stream_is_refused_not_an_internal_error() -> None:
    archive = bytearray(hostile(member("a.py", size=1), content=b"x" * 4096))
    archive[20:40] = b"\xff" * 20  # inside the deflate stream
    with pytest.raises(SnapshotRejected, match="not a gzipped tar archive"):
        check_archive(bytes(archive))
