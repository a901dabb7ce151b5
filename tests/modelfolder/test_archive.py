"""Model archives: deterministic packing, hostile archives refused, content hashes."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from algora.errors import InvalidArchive
from algora.modelfolder.packing import pack_directory, tree_hash
from algora.publishing.archive import safe_extract

MB = 1024 * 1024


# ------------------------------------------------------------------------------------------
# helpers


def make_model(root: Path) -> Path:
    root.mkdir()
    (root / "algora.toml").write_text('name = "demo"\n')
    (root / "model.py").write_text("def apply(x):\n    return x\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "data").mkdir()
    (root / "data" / "weights.bin").write_bytes(bytes(range(256)) * 10)
    (root / "data" / "empty").mkdir()
    (root / "data" / "link.bin").symlink_to("weights.bin")
    (root / "toplink").symlink_to(root / "data")  # absolute, inside: rewritten relative
    for junk in (".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".mypy_cache"):
        (root / junk).mkdir()
        (root / junk / "x").write_text("junk")
    (root / "data" / "__pycache__").mkdir()
    (root / "model.pyc").write_bytes(b"\0")
    (root / ".algora").mkdir()
    (root / ".ruff_cache").mkdir()
    return root


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def tar_member(
    name: str,
    data: bytes = b"",
    *,
    kind: bytes = tarfile.REGTYPE,
    linkname: str = "",
    mode: int = 0o644,
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info, data


def write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def write_zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return path


def zip_info(name: str, file_type: int, perm: int = 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (file_type | perm) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


class Workspace:
    """Archives live in ``in/``; extraction goes to ``out/dest`` and ``out`` must stay clean."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path
        self.inbox = tmp_path / "in"
        self.inbox.mkdir()
        self.parent = tmp_path / "out"
        self.parent.mkdir()
        self.dest = self.parent / "dest"

    def snapshot(self) -> set[str]:
        return {
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if self.inbox not in p.parents and p != self.inbox
        }

    def refuse(self, archive: Path, *, max_bytes: int = 10 * MB, max_members: int = 100) -> str:
        before = self.snapshot()
        with pytest.raises(InvalidArchive) as caught:
            safe_extract(archive, self.dest, max_bytes=max_bytes, max_members=max_members)
        assert self.snapshot() == before, "something was written outside the inbox"
        assert not self.dest.exists()
        assert caught.value.code == "invalid_archive"
        return caught.value.message


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


# ------------------------------------------------------------------------------------------
# packing and round trip


def test_round_trip_is_deterministic_and_hash_stable(tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    pack_directory(model, first)
    os.utime(model / "model.py", (1_000_000, 1_000_000))  # mtimes never matter
    buffer = io.BytesIO()
    pack_directory(model, buffer)
    second.write_bytes(buffer.getvalue())
    assert first.read_bytes() == second.read_bytes()

    names = safe_extract(first, tmp_path / "x1", max_bytes=MB, max_members=100)
    safe_extract(second, tmp_path / "x2", max_bytes=MB, max_members=100)
    assert tree_hash(tmp_path / "x1") == tree_hash(tmp_path / "x2")
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert set(names) == {
        "algora.toml",
        "data",
        "data/empty",
        "data/link.bin",
        "data/weights.bin",
        "model.py",
        "run.sh",
        "toplink",
    }
    out = tmp_path / "x1"
    assert tree(out) >= set(names)
    assert (out / "data" / "weights.bin").read_bytes() == bytes(range(256)) * 10
    assert (out / "data" / "link.bin").readlink() == Path("weights.bin")
    assert (out / "toplink").readlink() == Path("data")
    assert stat.S_IMODE((out / "model.py").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "run.sh").stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    with tarfile.open(first) as tar:
        for info in tar.getmembers():
            assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")


def test_tree_hash_sees_content_names_exec_bit_and_links(tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    base = tree_hash(model)
    assert tree_hash(model) == base
    (model / "model.py").write_text("def apply(x):\n    return 2 * x\n")
    changed = tree_hash(model)
    assert changed != base
    (model / "model.py").chmod(0o755)
    assert tree_hash(model) != changed
    (model / "model.py").chmod(0o644)
    assert tree_hash(model) == changed
    (model / "data" / "link.bin").unlink()
    (model / "data" / "link.bin").symlink_to("empty")
    assert tree_hash(model) != changed


def test_pack_refuses_symlink_outside(tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    (tmp_path / "secret").write_text("s")
    (model / "leak").symlink_to(tmp_path / "secret")
    with pytest.raises(InvalidArchive, match=r"'leak'.*outside"):
        pack_directory(model, io.BytesIO())
    (model / "leak").unlink()
    (model / "leak").symlink_to("../secret")
    with pytest.raises(InvalidArchive, match=r"'leak'.*outside"):
        pack_directory(model, io.BytesIO())


def test_pack_refuses_fifo(tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    os.mkfifo(model / "pipe")
    with pytest.raises(InvalidArchive, match="'pipe'"):
        pack_directory(model, io.BytesIO())


@pytest.mark.parametrize("mode", ["w:", "w:gz", "w:bz2", "w:xz"])
def test_every_tar_compression_detected_by_content(ws: Workspace, mode: str) -> None:
    archive = write_tar(
        ws.inbox / "model.bin",  # the name says nothing
        [
            tar_member(".", kind=tarfile.DIRTYPE, mode=0o755),
            tar_member("./pkg/a.py", b"print(1)\n", mode=0o4755),  # setuid dropped
            tar_member("pkg/link", kind=tarfile.SYMTYPE, linkname="a.py"),
            tar_member("pkg/hard", kind=tarfile.LNKTYPE, linkname="pkg/a.py"),
            tar_member("pkg/sub/up", kind=tarfile.SYMTYPE, linkname="../.."),  # the root: fine
        ],
        mode,
    )
    names = safe_extract(archive, ws.dest, max_bytes=MB, max_members=10)
    assert names == ["pkg/a.py", "pkg/link", "pkg/hard", "pkg/sub/up"]
    assert (ws.dest / "pkg" / "hard").read_bytes() == b"print(1)\n"
    assert stat.S_IMODE((ws.dest / "pkg" / "a.py").stat().st_mode) == 0o700
    assert (ws.dest / "pkg" / "sub" / "up").resolve() == ws.dest.resolve()


def test_zip_extracts_with_modes_and_inner_symlink(ws: Workspace) -> None:
    archive = write_zip(
        ws.inbox / "model.tgz",  # a misleading name
        [
            ("dir/", b""),
            (zip_info("dir/run.sh", stat.S_IFREG, 0o6755), b"#!/bin/sh\n"),
            ("dir/data.txt", b"hello"),
            (zip_info("dir/alias", stat.S_IFLNK, 0o777), b"data.txt"),
        ],
    )
    safe_extract(archive, ws.dest, max_bytes=MB, max_members=10)
    assert (ws.dest / "dir" / "alias").readlink() == Path("data.txt")
    assert (ws.dest / "dir" / "alias").read_text() == "hello"
    assert stat.S_IMODE((ws.dest / "dir" / "run.sh").stat().st_mode) == 0o700
    assert stat.S_IMODE((ws.dest / "dir" / "data.txt").stat().st_mode) == 0o600


def test_existing_empty_destination_is_accepted(ws: Workspace) -> None:
    ws.dest.mkdir()
    archive = write_tar(ws.inbox / "a.tgz", [tar_member("a.txt", b"a")])
    safe_extract(archive, ws.dest, max_bytes=MB, max_members=10)
    assert (ws.dest / "a.txt").read_bytes() == b"a"


# ------------------------------------------------------------------------------------------
# hostile archives


def _zip_with_patched_name(path: Path, placeholder: bytes, real: bytes) -> Path:
    write_zip(path, [(placeholder.decode(), b"x")])
    path.write_bytes(path.read_bytes().replace(placeholder, real))
    return path


def _bomb(path: Path, real_size: int, declared: int) -> Path:
    """A deflated file of zeros whose local and central headers claim ``declared`` bytes."""
    write_zip(path, [("bomb.bin", b"\0" * real_size)])
    raw = bytearray(path.read_bytes())
    real = real_size.to_bytes(4, "little")
    fake = declared.to_bytes(4, "little")
    # Local header: uncompressed size at offset 22; central directory entry: offset 24.
    local = raw.find(b"PK\x03\x04")
    central = raw.find(b"PK\x01\x02")
    assert raw[local + 22 : local + 26] == real and raw[central + 24 : central + 28] == real
    raw[local + 22 : local + 26] = fake
    raw[central + 24 : central + 28] = fake
    path.write_bytes(bytes(raw))
    return path


HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "tar slip": (
        lambda d: write_tar(d / "a", [tar_member("ok.txt", b"x"), tar_member("../evil", b"x")]),
        "member '../evil': path escapes the archive root",
    ),
    "tar slip nested": (
        lambda d: write_tar(d / "a", [tar_member("a/b/../../../evil", b"x")]),
        "path escapes the archive root",
    ),
    "absolute path": (
        lambda d: write_tar(d / "a", [tar_member("/tmp/algora-evil", b"x")]),
        "member '/tmp/algora-evil': absolute path",
    ),
    "windows drive path": (
        lambda d: write_tar(d / "a", [tar_member("C:/evil", b"x")]),
        "absolute path",
    ),
    "backslash path": (
        lambda d: write_tar(d / "a", [tar_member("..\\evil", b"x")]),
        "backslash",
    ),
    "unc path": (
        lambda d: write_zip(d / "a", [("\\\\server\\share\\evil", b"x")]),
        "backslash",
    ),
    "NUL in tar name": (
        lambda d: write_tar(d / "a", [_pax_named("ok\x00/../../evil")]),
        "NUL or control characters",
    ),
    "NUL in zip name": (
        lambda d: _zip_with_patched_name(d / "a", b"okXevil.txt", b"ok\x00evil.txt"),
        "NUL or control characters",
    ),
    "control character": (
        lambda d: write_tar(d / "a", [tar_member("bad\x1b[2Jname", b"x")]),
        "control characters",
    ),
    "zip slip": (
        lambda d: write_zip(d / "a", [("ok.txt", b"x"), ("../../evil.txt", b"x")]),
        "member '../../evil.txt': path escapes the archive root",
    ),
    "zip absolute": (
        lambda d: write_zip(d / "a", [("/etc/evil", b"x")]),
        "absolute path",
    ),
    "symlink outside": (
        lambda d: write_tar(
            d / "a", [tar_member("link", kind=tarfile.SYMTYPE, linkname="../../etc")]
        ),
        "member 'link': symbolic link points outside the archive",
    ),
    "absolute symlink": (
        lambda d: write_tar(
            d / "a", [tar_member("link", kind=tarfile.SYMTYPE, linkname="/etc/passwd")]
        ),
        "link target is an absolute path",
    ),
    "symlink chain escape": (
        lambda d: write_tar(
            d / "a",
            [
                tar_member("sub", kind=tarfile.DIRTYPE, mode=0o755),
                tar_member("sub/up", kind=tarfile.SYMTYPE, linkname=".."),
                # Lexically "sub/up/.." is "sub", but sub/up is the root, so this is its parent.
                tar_member("esc", kind=tarfile.SYMTYPE, linkname="sub/up/.."),
            ],
        ),
        "member 'esc': symbolic link points outside the archive",
    ),
    "write through symlink": (
        lambda d: write_tar(
            d / "a",
            [
                tar_member("here", kind=tarfile.SYMTYPE, linkname="."),
                tar_member("here/file", b"x"),
            ],
        ),
        "passes through a non-directory member 'here'",
    ),
    "zip symlink outside": (
        lambda d: write_zip(d / "a", [(zip_info("link", stat.S_IFLNK, 0o777), b"../../etc")]),
        "member 'link': symbolic link points outside the archive",
    ),
    "hardlink to /etc/passwd": (
        lambda d: write_tar(
            d / "a", [tar_member("pw", kind=tarfile.LNKTYPE, linkname="/etc/passwd")]
        ),
        "member 'pw': link target is an absolute path",
    ),
    "hardlink climbing out": (
        lambda d: write_tar(
            d / "a", [tar_member("pw", kind=tarfile.LNKTYPE, linkname="../../etc/passwd")]
        ),
        "member 'pw': hard link target: member '../../etc/passwd': path escapes the archive root",
    ),
    "hardlink to a missing member": (
        lambda d: write_tar(d / "a", [tar_member("pw", kind=tarfile.LNKTYPE, linkname="nope")]),
        "hard link must name an earlier regular file",
    ),
    "char device": (
        lambda d: write_tar(d / "a", [tar_member("null", kind=tarfile.CHRTYPE)]),
        "member 'null': device files, FIFOs and other special files are not allowed",
    ),
    "block device": (
        lambda d: write_tar(d / "a", [tar_member("sda", kind=tarfile.BLKTYPE)]),
        "special files are not allowed",
    ),
    "fifo": (
        lambda d: write_tar(d / "a", [tar_member("pipe", kind=tarfile.FIFOTYPE)]),
        "member 'pipe': device files, FIFOs",
    ),
    "zip fifo": (
        lambda d: write_zip(d / "a", [(zip_info("pipe", stat.S_IFIFO), b"")]),
        "special files are not allowed",
    ),
    "too many members": (
        lambda d: write_tar(d / "a", [tar_member(f"f{i}", b"x") for i in range(6)]),
        "archive has more than 5 members",
    ),
    "too many zip members": (
        lambda d: write_zip(d / "a", [(f"f{i}", b"x") for i in range(6)]),
        "archive has more than 5 members",
    ),
    "declared size too big": (
        lambda d: write_tar(d / "a", [tar_member("big.bin", b"\0" * 3000)]),
        "member 'big.bin': declared size exceeds the 2048-byte limit",
    ),
    "high-ratio zip": (
        lambda d: write_zip(d / "a", [("zeros.bin", b"\0" * 100_000)]),
        "declared size exceeds the 2048-byte limit",
    ),
    "zip bomb lying about its size": (
        lambda d: _bomb(d / "a", real_size=200_000, declared=100),
        "member 'bomb.bin'",
    ),
    "corrupt gzip": (
        lambda d: _corrupt(write_tar(d / "a", [tar_member("f", os.urandom(1500))])),
        "corrupt",
    ),
    "truncated gzip": (
        lambda d: _truncate(write_tar(d / "a", [tar_member("f", os.urandom(2000))])),
        "corrupt",
    ),
    "corrupt bz2": (
        lambda d: _corrupt(write_tar(d / "a", [tar_member("f", b"x" * 4000)], "w:bz2")),
        "corrupt",
    ),
    "corrupt zip": (
        lambda d: _corrupt(write_zip(d / "a", [("f", os.urandom(1500))])),
        "corrupt",
    ),
    "not an archive": (
        lambda d: _write(d / "a", b"just some text, certainly not a tarball\n" * 20),
        "not a tar or zip archive",
    ),
    "empty file": (lambda d: _write(d / "a", b""), "not a tar or zip archive"),
    "duplicate names": (
        lambda d: write_tar(d / "a", [tar_member("a.txt", b"1"), tar_member("a.txt", b"2")]),
        "member 'a.txt': duplicate member name",
    ),
    "duplicate after normalization": (
        lambda d: write_tar(d / "a", [tar_member("a/b", b"1"), tar_member("./a//b", b"2")]),
        "member 'a/b': duplicate member name",
    ),
    "duplicate zip names": (
        lambda d: _zip_duplicates(d / "a"),
        "duplicate member name",
    ),
    "empty name": (
        lambda d: write_zip(d / "a", [("./", b""), ("./.", b"x")]),
        "empty name",
    ),
    "file used as a folder": (
        lambda d: write_tar(d / "a", [tar_member("a", b"1"), tar_member("a/b", b"2")]),
        "passes through a non-directory member 'a'",
    ),
}


def _pax_named(name: str) -> tuple[tarfile.TarInfo, bytes]:
    """A member whose PAX ``path`` record carries ``name`` verbatim (a ustar name stops at NUL)."""
    info, data = tar_member("ok", b"x")
    info.pax_headers = {"path": name}
    return info, data


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _corrupt(path: Path) -> Path:
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    return path


def _truncate(path: Path) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def _zip_duplicates(path: Path) -> Path:
    write_zip(path, [("a.txt", b"1"), ("b.txt", b"2")])
    raw = path.read_bytes().replace(b"b.txt", b"a.txt")
    path.write_bytes(raw)
    return path


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused_and_leaves_nothing(ws: Workspace, case: str) -> None:
    build, expected = HOSTILE[case]
    archive = build(ws.inbox)
    message = ws.refuse(archive, max_bytes=2048, max_members=5)
    assert expected in message
    assert not (ws.root / "evil").exists()
    assert not Path("/tmp/algora-evil").exists()


def test_bomb_with_lying_size_within_generous_limit_is_still_refused(ws: Workspace) -> None:
    # Even when the real size fits the cap, a header that lies is damage, not a model.
    archive = _bomb(ws.inbox / "bomb.zip", real_size=200_000, declared=100)
    message = ws.refuse(archive, max_bytes=10 * MB)
    assert "member 'bomb.bin'" in message


def test_failure_midway_removes_partial_output(ws: Workspace) -> None:
    # The first member is fine and gets written; the second fails its CRC while being written.
    archive = ws.inbox / "a.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("good.bin", b"A" * 1000)
        zf.writestr("bad.bin", b"B" * 1000)
    archive.write_bytes(archive.read_bytes().replace(b"B" * 1000, b"C" * 1000))
    message = ws.refuse(archive)
    assert "member 'bad.bin': corrupt data" in message


def test_non_empty_destination_is_not_touched(ws: Workspace) -> None:
    ws.dest.mkdir()
    (ws.dest / "keep").write_text("k")
    archive = write_tar(ws.inbox / "a.tgz", [tar_member("a.txt", b"a")])
    with pytest.raises(FileExistsError):
        safe_extract(archive, ws.dest, max_bytes=MB, max_members=10)
    assert tree(ws.dest) == {"keep"}
