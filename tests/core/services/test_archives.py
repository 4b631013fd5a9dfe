"""Unpacking uploaded archives (core/services/archives.py): trees come out whole, attacks are
refused by name, and nothing is ever written outside the target folder."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.services.archives import ArchiveError, archive_kind, unpack_archive

Pack = Callable[[list["Member"]], bytes]
LIMITS = {"max_files": 100, "max_bytes": 1_000_000, "max_archive_bytes": 1_000_000}


@dataclass
class Member:
    name: str
    content: bytes = b""
    kind: str = "file"  # file, dir, symlink, hardlink, chr, fifo
    target: str = ""
    mode: int = 0o644


def tar_of(members: list[Member], compression: str = "gz") -> bytes:
    types = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "chr": tarfile.CHRTYPE,
        "fifo": tarfile.FIFOTYPE,
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as archive:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type, info.mode, info.linkname = types[member.kind], member.mode, member.target
            info.size = len(member.content) if member.kind == "file" else 0
            archive.addfile(info, io.BytesIO(member.content) if member.kind == "file" else None)
    return buffer.getvalue()


def zip_of(members: list[Member]) -> bytes:
    kinds = {
        "file": stat.S_IFREG,
        "symlink": stat.S_IFLNK,
        "chr": stat.S_IFCHR,
        "dir": stat.S_IFDIR,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in members:
            info = zipfile.ZipInfo(member.name + ("/" if member.kind == "dir" else ""))
            info.create_system = 3
            info.external_attr = (kinds[member.kind] | member.mode) << 16
            content = member.target.encode() if member.kind == "symlink" else member.content
            archive.writestr(info, content, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Path]:
    """An empty folder beside a sentinel; after each test only the two may exist outside."""
    (tmp_path / "sentinel.txt").write_text("untouched")
    folder = tmp_path / "out" / "target"
    folder.mkdir(parents=True)
    yield folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "sentinel.txt"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["target"]
    assert (tmp_path / "sentinel.txt").read_text() == "untouched"
    for path in folder.rglob("*"):  # whatever was unpacked stays inside
        assert os.path.realpath(path).startswith(str(folder.resolve()) + os.sep)


def tree(folder: Path) -> dict[str, bytes | str]:
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_symlink():
            found[name] = "-> " + os.readlink(path)
        elif path.is_file():
            found[name] = path.read_bytes()
    return found


REPO = [
    Member("calc-main/", kind="dir"),
    Member("calc-main/calc/core.py", b"def add(a, b):\n    return a + b\n"),
    Member("calc-main/run.sh", b"#!/bin/sh\n", mode=0o755),
    Member("calc-main/docs/core.py", kind="symlink", target="../calc/core.py"),
    Member("calc-main/.git/config", b"[core]\n\tfsmonitor = touch /tmp/pwned\n"),
    Member("calc-main/vendor/.GIT", b"gitdir: /etc\n"),
    Member("calc-main/.git./config", b"[core]\n"),
    Member("calc-main/sub/GIT~1/HEAD", b"ref: refs/heads/x\n"),
]
EXPECTED = {
    "calc/core.py": b"def add(a, b):\n    return a + b\n",
    "docs/core.py": "-> ../calc/core.py",
    "run.sh": b"#!/bin/sh\n",
}


def plain_tar_of(members: list[Member]) -> bytes:
    return tar_of(members, "")


@pytest.mark.parametrize("pack", [tar_of, zip_of, plain_tar_of])
def test_a_tree_unpacks_without_its_wrapper_and_git(pack: Pack, target: Path) -> None:
    assert unpack_archive(pack(REPO), target, **LIMITS) == 3
    assert tree(target) == EXPECTED
    assert os.stat(target / "run.sh").st_mode & 0o111
    assert not os.stat(target / "calc" / "core.py").st_mode & 0o111


def test_the_kind_is_told_by_its_bytes_not_its_name() -> None:
    assert archive_kind(tar_of(REPO)) == "tar.gz"
    assert archive_kind(tar_of(REPO, "")) == "tar"
    assert archive_kind(zip_of(REPO)) == "zip"
    with pytest.raises(ArchiveError, match=r"not a tar, tar\.gz or zip"):
        archive_kind(b"BZh91AY&SY" + bytes(600))


def test_two_top_level_entries_are_kept_as_they_are(target: Path) -> None:
    members = [Member("a/x.py", b"x"), Member("b.py", b"b")]
    unpack_archive(zip_of(members), target, **LIMITS)
    assert tree(target) == {"a/x.py": b"x", "b.py": b"b"}


def test_a_child_named_like_its_wrapper_moves_up(target: Path) -> None:
    unpack_archive(
        tar_of([Member("app/app/main.py", b"m"), Member("app/t.py", b"t")]), target, **LIMITS
    )
    assert tree(target) == {"app/main.py": b"m", "t.py": b"t"}


ATTACKS = [
    ([Member("/etc/cron.d/evil", b"x")], "an absolute path"),
    ([Member("C:/Windows/evil", b"x")], "an absolute path"),
    ([Member("../escape.txt", b"x")], "'..' component"),
    ([Member("ok/../../escape.txt", b"x")], "'..' component"),
    ([Member("dir\\..\\escape.txt", b"x")], "backslash"),
    ([Member("link", kind="symlink", target="/etc/passwd")], "absolute or empty target"),
    ([Member("link", kind="symlink", target="../../sentinel.txt")], "leads out of the archive"),
    (
        [Member("up", kind="symlink", target=".."), Member("up/escape.txt", b"x")],
        "'up': appears twice",
    ),
    (
        [Member("b", kind="symlink", target="."), Member("x", kind="symlink", target="b/..")],
        "'x': a link to 'b/..' leads out of the archive",
    ),
    (
        [Member("d", kind="symlink", target="sub"), Member("d/e", kind="symlink", target="f")],
        "lies under a link",
    ),
    ([Member("same.py", b"1"), Member("same.py", b"2")], "appears twice"),
    (
        [Member("f.py", b"1"), Member("f.py/g.py", b"2")],
        "'f.py/g.py': a folder on its path is also a file",
    ),
]


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize(("members", "message"), ATTACKS)
@pytest.mark.parametrize("pack", [tar_of, zip_of])
def test_attacks_are_refused_by_name(
    pack: Pack, members: list[Member], message: str, target: Path
) -> None:
    with pytest.raises(ArchiveError, match=message):
        unpack_archive(pack(members), target, **LIMITS)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        (
            [Member("a.py", b"1"), Member("hard", kind="hardlink", target="a.py")],
            "'hard': a hard link",
        ),
        ([Member("escape", kind="hardlink", target="/etc/passwd")], "'escape': a hard link"),
        ([Member("dev/tty", kind="chr")], "'dev/tty': a device or fifo"),
        ([Member("pipe", kind="fifo")], "'pipe': a device or fifo"),
    ],
)
def test_tar_links_devices_and_fifos_are_refused(
    members: list[Member], message: str, target: Path
) -> None:
    with pytest.raises(ArchiveError, match=message):
        unpack_archive(tar_of(members), target, **LIMITS)
    assert not (target / "pipe").exists() and not (target / "hard").exists()


def test_a_zip_device_is_refused(target: Path) -> None:
    with pytest.raises(ArchiveError, match="'dev/null': a device, fifo or socket"):
        unpack_archive(zip_of([Member("dev/null", kind="chr")]), target, **LIMITS)


@pytest.mark.parametrize("pack", [tar_of, zip_of])
def test_too_many_files_are_refused(pack: Pack, target: Path) -> None:
    members = [Member(f"f{i}.py", b"x") for i in range(6)]
    with pytest.raises(ArchiveError, match="more than REPOSITORY_MAX_FILES=5 files"):
        unpack_archive(pack(members), target, **(LIMITS | {"max_files": 5}))
    assert len(list(target.iterdir())) == 5


@pytest.mark.parametrize("pack", [tar_of, zip_of])
def test_too_many_members_of_any_kind_are_refused(pack: Pack, target: Path) -> None:
    members = [Member(f"d{i}", kind="dir") for i in range(11)]
    with pytest.raises(ArchiveError, match="more than 10 members"):
        unpack_archive(pack(members), target, **(LIMITS | {"max_files": 5}))


@pytest.mark.parametrize("pack", [tar_of, zip_of])
def test_a_bomb_stops_at_max_bytes_whatever_the_headers_say(pack: Pack, target: Path) -> None:
    bomb = pack([Member("zeros.bin", bytes(20_000_000))])
    assert len(bomb) < 100_000  # highly compressible: small upload, large content
    with pytest.raises(ArchiveError, match="more than REPOSITORY_MAX_BYTES=1000000 bytes"):
        unpack_archive(bomb, target, **LIMITS)
    assert (target / "zeros.bin").stat().st_size <= 1_000_000


def test_a_zip_whose_directory_lies_about_sizes_is_still_counted(target: Path) -> None:
    data = bytearray(zip_of([Member("zeros.bin", bytes(2_000_000))]))
    # Rewrite the central directory's uncompressed size to a harmless-looking 10 bytes.
    central = data.rindex(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    with pytest.raises(ArchiveError, match=r"REPOSITORY_MAX_BYTES|cannot be read"):
        unpack_archive(bytes(data), target, **LIMITS)
    assert sum(p.stat().st_size for p in target.rglob("*") if p.is_file()) <= 1_000_000


def test_a_tar_stream_of_dropped_members_is_bounded_too(target: Path) -> None:
    bomb = tar_of([Member(".git/objects/pack.bin", bytes(5_000_000))])
    with pytest.raises(ArchiveError, match="decompresses to more than"):
        unpack_archive(bomb, target, **LIMITS)
    assert list(target.iterdir()) == []


def test_an_oversize_archive_is_refused_before_reading(target: Path) -> None:
    data = tar_of(REPO)
    with pytest.raises(
        ArchiveError, match=f"is {len(data)} bytes, more than REPOSITORY_MAX_ARCHIVE"
    ):
        unpack_archive(data, target, **(LIMITS | {"max_archive_bytes": len(data) - 1}))
    assert list(target.iterdir()) == []


@pytest.mark.parametrize(
    "data",
    [tar_of(REPO)[:200], zip_of(REPO)[:-30], b"\x1f\x8b" + bytes(100)],
    ids=["cut-tar-gz", "cut-zip", "gzip-garbage"],
)
def test_damaged_archives_are_refused(data: bytes, target: Path) -> None:
    with pytest.raises(ArchiveError, match="damaged"):
        unpack_archive(data, target, **LIMITS)


def test_the_target_must_be_empty(target: Path) -> None:
    (target / "x").write_text("x")
    with pytest.raises(ValueError, match="empty folder"):
        unpack_archive(tar_of(REPO), target, **LIMITS)
