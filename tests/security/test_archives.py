"""Malicious archives at publish: refused before a byte lands outside the target.

Archives are generated here: slip names from the traversal generator, symlink and hard-link
escapes (direct, chained, through a linked folder), device files and FIFOs, and bombs (more
bytes or members than the limits, lying headers). Each goes through ``POST .../versions``
and, for a byte-level check, straight through ``safe_extract`` into a folder beside a canary.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import urllib.parse
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from algora.errors import InvalidArchive
from algora.publishing.archive import safe_extract

from .conftest import CANARY_TEXT, MAX_ARCHIVE_BYTES, MAX_ARCHIVE_MEMBERS, World, leaks
from .payloads import sample, traversal_payloads

MANIFEST = b'[model]\nname = "echo"\nentrypoint = "model:Echo"\n'


def _tar(members: list[tuple[tarfile.TarInfo, bytes]], compress: bool = True) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if data else None)
    return gzip.compress(raw.getvalue()) if compress else raw.getvalue()


def _info(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = mode
    return info


def _base() -> list[tuple[tarfile.TarInfo, bytes]]:
    return [(_info("algora.toml"), MANIFEST), (_info("model.py"), b"class Echo: ...\n")]


def _zip(entries: list[tuple[str, int, bytes]]) -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("algora.toml", MANIFEST)
        for name, mode, data in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return raw.getvalue()


def _decoded(name: str) -> str:
    for _ in range(3):
        name = urllib.parse.unquote(name)
    return name


def _escapes(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return ".." in parts or name.startswith(("/", "\\")) or ":" in name[:3]


def malicious_archives(world: World) -> Iterator[tuple[str, bytes]]:
    """(label, archive bytes): every family, generated."""
    rng = world.rng("archives")
    names = traversal_payloads("canary/secret.txt", str(world.canary))
    # In an archive a name is taken literally: decode the URL spellings and keep the names
    # that really escape (a literal "%2e%2e" is a harmless file name).
    names = [n for n in (_decoded(n) for n in names) if _escapes(n)]
    names = sample(sorted(set(names)), 60, rng)
    names += ["/" + str(world.outside / "slip.txt").lstrip("/"), "C:/slip.txt", "a/../../x"]
    for name in names:  # tar slip and zip slip
        yield f"tar slip {name!r}", _tar([*_base(), (_info(name), b"escaped")])
        yield f"zip slip {name!r}", _zip([(name, 0o100644, b"escaped")])
    for name in ("a\0b", "..\0/x", "x/\0/../../../y"):  # tar and zip end a name at NUL
        yield f"nul name {name!r}", _tar([*_base(), (_info(name), b"nul")])
        yield f"nul name zip {name!r}", _zip([(name, 0o100644, b"nul")])
    outside = str(world.outside)
    for depth in (1, 2, 3, 5, 8):
        up = "../" * depth
        yield (
            f"symlink up {depth}",
            _tar([*_base(), (_info("l", tarfile.SYMTYPE, up + "outside"), b"")]),
        )
        yield (
            f"symlink then write {depth}",
            _tar(
                [
                    *_base(),
                    (_info("d", tarfile.SYMTYPE, up + "outside"), b""),
                    (_info("d/x"), b"esc"),
                ]
            ),
        )
        yield (
            f"hardlink up {depth}",
            _tar([*_base(), (_info("h", tarfile.LNKTYPE, up + "canary/secret.txt"), b"")]),
        )
        yield f"zip symlink up {depth}", _zip([("l", 0o120777, (up + "outside").encode())])
    for target in (outside, str(world.canary), "/etc/passwd"):
        yield (
            f"absolute symlink {target}",
            _tar([*_base(), (_info("l", tarfile.SYMTYPE, target), b"")]),
        )
        yield (
            f"absolute hardlink {target}",
            _tar([*_base(), (_info("h", tarfile.LNKTYPE, target), b"")]),
        )
        yield f"zip absolute symlink {target}", _zip([("l", 0o120777, target.encode())])
    chain = [(_info("a", tarfile.SYMTYPE, "b"), b""), (_info("b", tarfile.SYMTYPE, "c/../.."), b"")]
    yield "symlink chain", _tar([*_base(), (_info("c", tarfile.DIRTYPE), b""), *chain])
    yield (
        "symlink loop",
        _tar(
            [
                *_base(),
                (_info("a", tarfile.SYMTYPE, "b"), b""),
                (_info("b", tarfile.SYMTYPE, "a"), b""),
            ]
        ),
    )
    yield (
        "hardlink to a link",
        _tar(
            [
                *_base(),
                (_info("l", tarfile.SYMTYPE, "../../"), b""),
                (_info("h", tarfile.LNKTYPE, "l"), b""),
            ]
        ),
    )
    for kind, label in (
        (tarfile.CHRTYPE, "char device"),
        (tarfile.BLKTYPE, "block device"),
        (tarfile.FIFOTYPE, "fifo"),
    ):
        info = _info("dev", kind)
        info.devmajor, info.devminor = 1, 3
        yield label, _tar([*_base(), (info, b"")])
    for mode, label in (
        (0o020666, "zip char device"),
        (0o010644, "zip fifo"),
        (0o060666, "zip block device"),
    ):
        yield label, _zip([("dev", mode, b"")])
    big = b"\0" * (MAX_ARCHIVE_BYTES + 1)
    yield "gzip bomb", _tar([*_base(), (_info("zeros"), big)])
    yield "zip bomb", _zip([("zeros", 0o100644, big)])
    many = [(_info(f"f{i}"), b"") for i in range(MAX_ARCHIVE_MEMBERS + 1)]
    yield "member bomb", _tar([*_base(), *many])
    yield (
        "zip member bomb",
        _zip([(f"f{i}", 0o100644, b"") for i in range(MAX_ARCHIVE_MEMBERS + 1)]),
    )
    lying = _info("model.bin")
    yield (
        "setuid file",
        _tar([*_base(), (_info("run", mode=0o4755), b"x")]),
    )  # accepted, bits dropped
    yield "duplicate member", _tar([*_base(), (lying, b"a"), (_info("model.bin"), b"b")])
    yield "nested gzip bomb", gzip.compress(gzip.compress(big))


@pytest.fixture(scope="module")
def archives(world: World) -> list[tuple[str, bytes]]:
    found = list(malicious_archives(world))
    assert len(found) >= 150
    return found


def test_publish_refuses_every_malicious_archive(
    world: World, archives: list[tuple[str, bytes]]
) -> None:
    before = world.outside_snapshot()
    versions = len(world.client.versions("admin/echo"))
    for label, data in archives:
        if label == "setuid file" or label.startswith("nul name"):
            continue  # a plain file with set-id bits is accepted (the bits are never applied)
        response = world.raw(
            "POST",
            "/api/v1/models/admin/echo/versions",
            body=data,
            headers={"content-type": "application/gzip"},
        )
        assert response.status in (400, 413), f"{label}: {response.status} {response.text[:300]}"
        assert response.json()["error"]["code"] in (
            "invalid_archive",
            "payload_too_large",
            "invalid_manifest",
            "unsupported_model_format",  # no manifest, and no saved model either
        ), label
        response.sent += label  # member names are echoed back, as the client sent them
        assert not leaks(world, response), f"{label}: {leaks(world, response)}"
    assert world.outside_snapshot() == before, "an archive wrote outside the data folder"
    assert world.canary.read_text() == CANARY_TEXT
    assert len(world.client.versions("admin/echo")) == versions
    assert [p.name for p in (world.data_dir / "staging").iterdir()] == []


def test_safe_extract_writes_nothing_outside_its_target(
    tmp_path: Path, world: World, archives: list[tuple[str, bytes]]
) -> None:
    for index, (label, data) in enumerate(archives):
        box = tmp_path / f"case{index}"
        (box / "outside").mkdir(parents=True)
        (box / "canary.txt").write_text(CANARY_TEXT)
        archive = box / "archive"
        archive.write_bytes(data)
        dest = box / "deep" / "er" / "dest"
        try:
            safe_extract(
                archive, dest, max_bytes=MAX_ARCHIVE_BYTES, max_members=MAX_ARCHIVE_MEMBERS
            )
        except InvalidArchive:
            assert not dest.exists(), label
        else:
            assert label == "setuid file" or label.startswith("nul name"), f"{label} extracted"
            assert all(not (p.stat().st_mode & 0o7000) for p in dest.rglob("*")), label
        allowed = {archive, box / "canary.txt", box / "outside", dest}
        for path in box.rglob("*"):
            if dest in path.parents or path in allowed or path in dest.parents:
                continue
            pytest.fail(f"{label}: {path.relative_to(box)} appeared outside the target")
        assert (box / "canary.txt").read_text() == CANARY_TEXT, label
