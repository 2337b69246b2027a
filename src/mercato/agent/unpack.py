"""Unpacking a package archive that :func:`~mercato.packages.archive.inspect_archive` accepted.

The store's own checks decide what is safe (paths, links, sizes, bombs, polyglots): this
module never re-judges an archive, it only writes what the inspection listed. Every member
is matched against the inspected list by its normalised path, written with ``O_EXCL`` and
``O_NOFOLLOW`` below the destination, capped at the size the inspection counted, and given
plain permissions (0755 for folders and executables, 0644 otherwise: no set-id bits).
Anything the standard library reads differently from the inspection is refused.
Nothing from the package is ever executed.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from mercato.agent.errors import PackageRefused
from mercato.packages.archive import ArchiveMember, InspectedArchive

CHUNK = 256 * 1024

Unpacked = Callable[[int, int], None]
"""Called with (bytes written, bytes in total) as members are written."""


def _normalised(name: str) -> str:
    path = name.rstrip("/")
    return path.removeprefix("./")


def _file_mode(member: ArchiveMember) -> int:
    return 0o755 if member.mode & 0o111 else 0o644


def _target(dest: Path, path: str) -> Path:
    target = dest.joinpath(*path.split("/"))
    if os.path.commonpath([dest, target]) != str(dest):  # the inspection refuses this already
        raise PackageRefused(f"The member {path!r} would be written outside the installation.")
    return target


class _Writer:
    """Writes the inspected members below ``dest`` and nothing else."""

    def __init__(self, inspected: InspectedArchive, dest: Path, progress: Unpacked | None) -> None:
        self.dest = dest
        self.members = {member.path: member for member in inspected.members}
        self.written: set[str] = set()
        self.total = inspected.unpacked_size
        self.done = 0
        self.progress = progress

    def member(self, name: str, *, is_dir: bool) -> ArchiveMember | None:
        path = _normalised(name)
        if path in ("", "."):
            return None
        member = self.members.get(path)
        if member is None or member.is_dir != is_dir or path in self.written:
            raise PackageRefused(f"The archive member {name!r} is not one the package checks accepted; "
                                 "the archive is refused.")
        self.written.add(path)
        return member

    def folder(self, member: ArchiveMember) -> None:
        _target(self.dest, member.path).mkdir(mode=0o755, parents=True, exist_ok=True)

    def file(self, member: ArchiveMember, source: IO[bytes]) -> None:
        target = _target(self.dest, member.path)
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        descriptor = os.open(target, flags, 0o600)
        written = 0
        with os.fdopen(descriptor, "wb") as out:
            while chunk := source.read(CHUNK):
                written += len(chunk)
                if written > member.size:
                    raise PackageRefused(f"The member {member.path!r} unpacks to more than the {member.size} bytes "
                                         "the package checks counted; the archive is refused.")
                out.write(chunk)
                self.done += len(chunk)
                if self.progress:
                    self.progress(self.done, self.total)
            out.flush()
            os.fsync(out.fileno())
        if written != member.size:
            raise PackageRefused(f"The member {member.path!r} unpacks to {written} bytes, not the {member.size} "
                                 "the package checks counted; the archive is refused.")
        os.chmod(target, _file_mode(member))

    def finish(self) -> None:
        missing = sorted(set(self.members) - self.written)
        if missing:
            raise PackageRefused(f"The archive lost members while unpacking ({', '.join(missing[:3])}); "
                                 "the archive is refused.")
        for folder in (self.dest, *(p for p in self.dest.rglob("*") if p.is_dir() and not p.is_symlink())):
            os.chmod(folder, 0o755)


def _tar_members(archive: Path, writer: _Writer) -> None:
    with tarfile.open(archive, mode="r:gz") as tar:
        for info in tar:
            if info.isdir():
                member = writer.member(info.name, is_dir=True)
                if member is not None:
                    writer.folder(member)
            elif info.isreg():
                member = writer.member(info.name, is_dir=False)
                if member is None:
                    raise PackageRefused(f"The archive member {info.name!r} is a file at the root's place.")
                source = tar.extractfile(info)
                if source is None:
                    raise PackageRefused(f"The archive member {info.name!r} cannot be read.")
                with source:
                    writer.file(member, source)
            else:
                raise PackageRefused(f"The archive member {info.name!r} is a link or special file; "
                                     "the archive is refused.")


def _zip_members(archive: Path, writer: _Writer) -> None:
    with zipfile.ZipFile(archive) as bundle:
        for info in bundle.infolist():
            is_dir = info.is_dir()
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                raise PackageRefused(f"The archive member {info.filename!r} is a link or special file; "
                                     "the archive is refused.")
            member = writer.member(info.filename, is_dir=is_dir)
            if member is None:
                continue
            if is_dir:
                writer.folder(member)
                continue
            with bundle.open(info) as source:
                writer.file(member, source)


def unpack(archive: Path, inspected: InspectedArchive, dest: Path, *, progress: Unpacked | None = None) -> None:
    """Write the inspected archive's members into ``dest`` (an empty folder that must exist).

    Raises :class:`PackageRefused` if the archive does not read back as inspected; ``OSError``
    on a disk problem. On any failure ``dest`` holds a partial tree: the caller removes it.
    """
    writer = _Writer(inspected, dest.resolve(), progress)
    try:
        (_tar_members if inspected.format == "tar.gz" else _zip_members)(archive, writer)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, ValueError) as error:
        raise PackageRefused(f"The archive could not be unpacked ({error}); it is refused.") from None
    writer.finish()


@contextmanager
def scratch_folder(parent: Path, prefix: str) -> Iterator[Path]:
    """A new folder under ``parent`` (same filesystem, so it can be renamed into place),
    removed on the way out unless the caller moved it away."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield path
    finally:
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
