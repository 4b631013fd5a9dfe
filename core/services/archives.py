"""Unpacking an uploaded repository archive (tar, tar.gz or zip) without trusting it.

The rules, each refused with an `ArchiveError` naming the member:
- absolute names, `..` components, backslashes and NUL bytes in names;
- hard links, devices, fifos and any other special member;
- symbolic links whose target is absolute or, once every link exists, resolves outside the
  target folder. Links are made last, after every file and folder, so no member is ever
  written through one; a link that lies under another link is refused;
- more than `max_files` files (and links), or more than twice that many members of any
  kind, folders and dropped `.git` entries included;
- more than `max_bytes` unpacked, counted on the bytes actually written (a header's or a
  zip directory's sizes are never believed: zip bombs); a tar stream is also cut off
  once it decompresses past that plus its headers' allowance;
- compressed input over `max_archive_bytes`.

The kind is told by magic bytes, never by the file name. Every `.git` entry (any case, any
depth, and the names git takes for it) is dropped silently: a repository's own config can
name programs that git runs, so an uploaded one is never used. One top-level folder
wrapping everything, as GitHub's archives have, is stripped.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import stat
import tarfile
import uuid
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

MAX_FILES_SETTING = "REPOSITORY_MAX_FILES"
MAX_BYTES_SETTING = "REPOSITORY_MAX_BYTES"
MAX_ARCHIVE_SETTING = "REPOSITORY_MAX_ARCHIVE_BYTES"

CHUNK = 64 * 1024
TAR_ENTRY_ALLOWANCE = 2048
"""Stream bytes a tar member may take besides its content: a header block, padding and a
PAX record."""
MAX_LINK_TARGET = 4096
_DRIVE = re.compile(r"^[A-Za-z]:")


class ArchiveError(ValueError):
    """The archive is refused; the message names the member and the problem."""


def archive_kind(data: bytes) -> str:
    """`tar.gz`, `zip` or `tar`, from the leading bytes."""
    if data[:2] == b"\x1f\x8b":
        return "tar.gz"
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if data[257:262] == b"ustar":
        return "tar"
    raise ArchiveError("the upload is not a tar, tar.gz or zip archive")


def unpack_archive(
    data: bytes, target: Path, *, max_files: int, max_bytes: int, max_archive_bytes: int
) -> int:
    """Unpack `data` into the empty folder `target`; returns the files (and links) written.

    On an `ArchiveError` part of the archive may be in `target`: the caller discards it.
    """
    if len(data) > max_archive_bytes:
        raise ArchiveError(
            f"the archive is {len(data)} bytes, more than {MAX_ARCHIVE_SETTING}={max_archive_bytes}"
        )
    if not target.is_dir() or any(target.iterdir()):
        raise ValueError(f"{target} must be an existing empty folder")
    kind = archive_kind(data)
    unpacker = _Unpacker(target.resolve(), max_files, max_bytes)
    if kind == "zip":
        _unpack_zip(data, unpacker)
    else:
        _unpack_tar(data, kind == "tar.gz", unpacker)
    return unpacker.finish()


# --------------------------------------------------------------------------- the formats


def _unpack_tar(data: bytes, compressed: bool, unpacker: _Unpacker) -> None:
    raw: IO[bytes] = io.BytesIO(data)
    if compressed:
        raw = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    limit = unpacker.max_bytes + unpacker.max_entries * TAR_ENTRY_ALLOWANCE
    stream = _Budget(raw, limit, unpacker.max_bytes)
    try:
        # Stream mode ("r|"): members are read in order and never seeked back to.
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                _tar_member(archive, member, unpacker)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ArchiveError(f"the archive is damaged: {exc}") from None


def _tar_member(archive: tarfile.TarFile, member: tarfile.TarInfo, unpacker: _Unpacker) -> None:
    path = unpacker.member_path(member.name)
    if path is None:
        return
    if member.isdir():
        unpacker.make_dir(path)
    elif member.isreg():
        source = archive.extractfile(member)
        if source is None:  # pragma: no cover - a regular member always has a reader
            raise ArchiveError(f"{member.name!r}: has no content")
        unpacker.write_file(path, source, executable=bool(member.mode & 0o111))
    elif member.issym():
        unpacker.add_link(path, member.linkname)
    elif member.islnk():
        raise ArchiveError(f"{member.name!r}: a hard link (only symbolic links are taken)")
    elif member.ischr() or member.isblk() or member.isfifo():
        raise ArchiveError(f"{member.name!r}: a device or fifo")
    else:
        raise ArchiveError(f"{member.name!r}: an unsupported member type {member.type!r}")


def _unpack_zip(data: bytes, unpacker: _Unpacker) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise ArchiveError(f"the archive is damaged: {exc}") from None
    with archive:
        members = archive.infolist()
        if len(members) > unpacker.max_entries:
            raise unpacker.too_many_entries()
        for info in members:
            try:
                _zip_member(archive, info, unpacker)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, zlib.error) as exc:
                raise ArchiveError(f"{info.filename!r}: cannot be read: {exc}") from None
            except EOFError:
                raise ArchiveError(f"{info.filename!r}: is cut short") from None


def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, unpacker: _Unpacker) -> None:
    path = unpacker.member_path(info.filename)
    if path is None:
        return
    mode = info.external_attr >> 16 if info.create_system == 3 else 0  # 3: made on Unix
    kind = stat.S_IFMT(mode)
    if info.is_dir():
        unpacker.make_dir(path)
    elif kind == stat.S_IFLNK:
        with archive.open(info) as source:
            target = source.read(MAX_LINK_TARGET + 1)
        if len(target) > MAX_LINK_TARGET:
            raise ArchiveError(f"{info.filename!r}: a link target longer than {MAX_LINK_TARGET}")
        unpacker.add_link(path, target.decode("utf-8", "replace"))
    elif kind in (0, stat.S_IFREG):
        with archive.open(info) as source:
            unpacker.write_file(path, source, executable=bool(mode & 0o111))
    else:
        raise ArchiveError(f"{info.filename!r}: a device, fifo or socket")


# --------------------------------------------------------------------------- the rules


@dataclass
class _Unpacker:
    root: Path
    max_files: int
    max_bytes: int
    files: int = 0
    written: int = 0
    entries: int = 0
    tops: set[str] = field(default_factory=set)
    links: list[tuple[PurePosixPath, str]] = field(default_factory=list)

    @property
    def max_entries(self) -> int:
        return 2 * self.max_files

    def too_many_entries(self) -> ArchiveError:
        return ArchiveError(
            f"the archive has more than {self.max_entries} members "
            f"(twice {MAX_FILES_SETTING}={self.max_files}; folders and .git entries count too)"
        )

    def member_path(self, name: str) -> PurePosixPath | None:
        """The member's relative path; None for entries that are dropped (`.git`, `./`)."""
        self.entries += 1
        if self.entries > self.max_entries:
            raise self.too_many_entries()
        if "\x00" in name or "\\" in name:
            raise ArchiveError(f"{name!r}: a NUL byte or backslash in a member name")
        if name.startswith("/") or _DRIVE.match(name):
            raise ArchiveError(f"{name!r}: an absolute path")
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise ArchiveError(f"{name!r}: a '..' component leads out of the archive")
        if not parts:
            return None
        self.tops.add(parts[0])
        if any(_is_git_name(part) for part in parts):
            return None
        return PurePosixPath(*parts)

    def make_dir(self, path: PurePosixPath) -> None:
        self._make_folder(path, self.root.joinpath(*path.parts))

    def _make_folder(self, path: PurePosixPath, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ArchiveError(f"{str(path)!r}: a folder on its path is also a file") from None
        except OSError as exc:
            raise ArchiveError(f"{str(path)!r}: cannot be made a folder: {exc.strerror}") from None

    def write_file(self, path: PurePosixPath, source: IO[bytes], *, executable: bool) -> None:
        """Copy `source` to `path`, counting what is written against `max_bytes`.

        No link exists yet while files are written (links come last), and O_NOFOLLOW and
        O_EXCL refuse whatever would still be in the way."""
        self._count_file(path)
        destination = self.root.joinpath(*path.parts)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        self._make_folder(path, destination.parent)
        try:
            descriptor = os.open(destination, flags, 0o755 if executable else 0o644)
        except FileExistsError:
            raise ArchiveError(f"{str(path)!r}: appears twice in the archive") from None
        except OSError as exc:
            raise ArchiveError(f"{str(path)!r}: cannot be written: {exc.strerror}") from None
        with os.fdopen(descriptor, "wb") as out:
            while chunk := source.read(CHUNK):
                self.written += len(chunk)
                if self.written > self.max_bytes:
                    raise ArchiveError(
                        f"{path}: the archive unpacks to more than "
                        f"{MAX_BYTES_SETTING}={self.max_bytes} bytes"
                    )
                out.write(chunk)

    def add_link(self, path: PurePosixPath, target: str) -> None:
        """Note a symbolic link; it is made by `finish`, after every file."""
        self._count_file(path)
        if not target or "\x00" in target or target.startswith("/") or _DRIVE.match(target):
            raise ArchiveError(f"{str(path)!r}: a link to an absolute or empty target {target!r}")
        self.links.append((path, target))

    def finish(self) -> int:
        wrapper = self._wrapper()
        if wrapper is not None:
            self._strip(wrapper)
        links = [
            (PurePosixPath(*path.parts[1:]) if wrapper else path, target)
            for path, target in self.links
        ]
        made: list[Path] = []
        try:
            for path, target in links:
                made.append(self._make_link(path, target))
            self._check_links(links)
        except ArchiveError:
            for link in made:  # no link out of the folder is left behind
                link.unlink()
            raise
        return self.files

    def _check_links(self, links: list[tuple[PurePosixPath, str]]) -> None:
        """Every link resolves inside, judged once all exist (a link may lead through
        another)."""
        root = os.path.realpath(self.root)
        for path, target in links:
            resolved = os.path.realpath(self.root.joinpath(*path.parts))
            if os.path.commonpath([root, resolved]) != root:
                raise ArchiveError(f"{str(path)!r}: a link to {target!r} leads out of the archive")

    def _count_file(self, path: PurePosixPath) -> None:
        self.files += 1
        if self.files > self.max_files:
            raise ArchiveError(
                f"{path}: the archive has more than {MAX_FILES_SETTING}={self.max_files} files"
            )

    def _wrapper(self) -> str | None:
        """The one top-level folder that holds everything, if there is one."""
        if len(self.tops) != 1:
            return None
        (top,) = self.tops
        folder = self.root / top
        is_link = any(path == PurePosixPath(top) for path, _ in self.links)
        return top if folder.is_dir() and not folder.is_symlink() and not is_link else None

    def _strip(self, wrapper: str) -> None:
        # Renamed first, so a child with the wrapper's own name can move up.
        staging = self.root / f".unpack-{uuid.uuid4().hex}"
        (self.root / wrapper).rename(staging)
        for child in staging.iterdir():
            child.rename(self.root / child.name)
        staging.rmdir()

    def _make_link(self, path: PurePosixPath, target: str) -> Path:
        parent = self.root.joinpath(*path.parts[:-1])
        link = self.root.joinpath(*path.parts)
        # realpath equals the plain path only when no link lies on the way.
        if os.path.realpath(parent) != str(parent):
            raise ArchiveError(f"{str(path)!r}: lies under a link")
        self._make_folder(path, parent)
        try:
            os.symlink(target, link)
        except FileExistsError:
            raise ArchiveError(f"{str(path)!r}: appears twice in the archive") from None
        except OSError as exc:
            raise ArchiveError(f"{str(path)!r}: cannot be made a link: {exc.strerror}") from None
        return link


def _is_git_name(part: str) -> bool:
    """`.git` and the names git treats as it on some file systems (and refuses to add):
    trailing dots or spaces, an NTFS stream (`.git::$INDEX_ALLOCATION`), the short `GIT~1`."""
    name = part.lower()
    return name.rstrip(". ") == ".git" or name.startswith(".git:") or name == "git~1"


class _Budget(io.RawIOBase):
    """A reader that refuses to hand out more than `limit` bytes of a decompressed stream."""

    def __init__(self, source: IO[bytes], limit: int, max_bytes: int) -> None:
        super().__init__()
        self.source = source
        self.limit = limit
        self.max_bytes = max_bytes
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        # Never asks the decompressor for more than one byte past the limit.
        allowed = self.limit - self.count + 1
        chunk = self.source.read(allowed if size < 0 else min(size, allowed))
        self.count += len(chunk)
        if self.count > self.limit:
            raise ArchiveError(
                f"the archive decompresses to more than {self.limit} bytes "
                f"({MAX_BYTES_SETTING}={self.max_bytes} plus the tar headers)"
            )
        return chunk
