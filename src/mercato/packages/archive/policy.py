"""The scan policy every archive format shares: the limits, and what one pass has seen.

:class:`Scan` is handed each member as the format readers find it: it counts the bytes
decompression really produces (stopping at once past ``max_unpacked_bytes`` or the bomb
ratio), the number of members, and checks each name (the package path rule, duplicates
after Unicode normalisation and case folding, a path both a file and a folder).
:class:`MemberSink` takes one member's bytes; :func:`decode_name` is the rule for member
names (UTF-8, bounded).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

from mercato.packages.errors import (
    ArchiveBomb,
    ArchiveDuplicateMember,
    ArchiveTooManyMembers,
    ArchiveUnsafePath,
    PackageError,
)
from mercato.packages.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    parse_manifest,
    path_key,
    path_problem,
)

MiB = 1024 * 1024
CHUNK = 256 * 1024  # how much is read or inflated at a time
MAX_CHANGELOG_BYTES = 256 * 1024
MAX_NAME_BYTES = 4096


@dataclass(frozen=True)
class PackageLimits:
    """How big a package may be (``Settings.package_*``; defaults as in PACKAGE.md)."""

    max_archive_bytes: int = 512 * MiB
    max_unpacked_bytes: int = 2048 * MiB
    max_members: int = 10_000
    bomb_threshold_bytes: int = 64 * MiB
    max_ratio: float = 50.0
    max_changelog_bytes: int = MAX_CHANGELOG_BYTES

    @classmethod
    def from_settings(cls, settings: Any) -> PackageLimits:
        return cls(max_archive_bytes=settings.package_max_bytes,
                   max_unpacked_bytes=settings.package_max_unpacked_bytes,
                   max_members=settings.package_max_members,
                   bomb_threshold_bytes=settings.package_bomb_threshold_bytes,
                   max_ratio=settings.package_max_ratio)


@dataclass(frozen=True)
class ArchiveMember:
    """One file or folder of a package: its normalised path, size in bytes and permission bits.

    ``file_type`` is what the first bytes say: ``"elf"``, ``"pe"``, ``"mach-o"`` (native
    programs), ``"script"`` (``#!``) or None.
    """

    path: str
    size: int
    is_dir: bool
    mode: int
    file_type: str | None = None


def quoted(name: str) -> str:
    """A member name as messages show it: quoted, and cut short past 120 characters."""
    return repr(name if len(name) <= 120 else name[:117] + "...")


def human_size(size: float) -> str:
    """A size in bytes as people read it (``512 MiB``, ``1.5 GiB``)."""
    unit = "bytes"
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            break
        size /= 1024
    return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f}".removesuffix(".0") + f" {unit}"


def file_type_of(head: bytes) -> str | None:
    """What a member's first bytes say it is (:attr:`ArchiveMember.file_type`)."""
    if head.startswith(b"\x7fELF"):
        return "elf"
    if head.startswith(b"MZ"):
        return "pe"
    if head[:4] in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe"):
        return "mach-o"
    if head[:4] == b"\xca\xfe\xba\xbe" and len(head) >= 8 and int.from_bytes(head[4:8], "big") < 40:
        return "mach-o"  # a universal binary (a Java class file has a version >= 45 there)
    if head.startswith(b"#!"):
        return "script"
    return None


def decode_name(raw: bytes) -> str:
    """A member name as text: UTF-8 and at most ``MAX_NAME_BYTES``, or refused."""
    if len(raw) > MAX_NAME_BYTES:
        raise ArchiveUnsafePath(f"A member name is longer than {MAX_NAME_BYTES} bytes. Shorten it.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        shown = raw.decode("utf-8", "backslashreplace")
        raise ArchiveUnsafePath(f"The member name {quoted(shown)} is not UTF-8. Rename the file with UTF-8 "
                                "characters and rebuild the archive.") from None


class MemberSink:
    """Takes one member's bytes: its first bytes (file type), a bounded copy, a CRC."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.head = b""
        self.kept = bytearray()
        self.size = 0
        self.crc = 0

    def feed(self, data: bytes) -> None:
        if len(self.head) < 8:
            self.head += data[:8 - len(self.head)]
        if len(self.kept) < self.keep:
            self.kept += data[:self.keep - len(self.kept)]
        self.size += len(data)
        self.crc = zlib.crc32(data, self.crc)


@dataclass
class Scan:
    """What one pass over an archive has seen, and the limits it enforces."""

    limits: PackageLimits
    archive_size: int
    produced: int = 0
    entries: int = 0
    root_seen: bool = False
    keys: dict[str, str] = field(default_factory=dict)
    members: dict[str, ArchiveMember] = field(default_factory=dict)
    captured: dict[str, bytes] = field(default_factory=dict)
    wanted: dict[str, int] = field(default_factory=dict)

    def produce(self, count: int) -> None:
        """Count bytes produced by decompression; stop at once when a limit is crossed."""
        self.produced += count
        limits = self.limits
        if self.produced > limits.max_unpacked_bytes:
            raise ArchiveBomb(
                f"The archive unpacks to more than {human_size(limits.max_unpacked_bytes)}, the most this store "
                "accepts. Make the package smaller or ask the store's operators about the limit.")
        if self.produced > limits.bomb_threshold_bytes and self.produced > limits.max_ratio * self.archive_size:
            raise ArchiveBomb(
                f"The archive unpacks to more than {limits.max_ratio:g} times its size beyond "
                f"{human_size(limits.bomb_threshold_bytes)}, which is how zip bombs look. Packages of mostly "
                "empty or repeated data are refused: generate such files at install time instead.")

    def admit(self, name: str, *, is_dir: bool) -> str | None:
        """Check one member's name; its normalised path, or None for the ``./`` entry."""
        self.entries += 1
        if self.entries > self.limits.max_members:
            raise ArchiveTooManyMembers(
                f"The archive holds more than {self.limits.max_members:,} files and folders, the most a package "
                "may hold. Bundle small files together (for instance into one data file).")
        path = name[:-1] if is_dir and name.endswith("/") else name
        path = path[2:] if path.startswith("./") else path
        if is_dir and path in ("", "."):
            if self.root_seen:
                raise ArchiveDuplicateMember("The archive lists its root folder ('./') twice. Rebuild it.")
            self.root_seen = True
            return None
        if (problem := path_problem(path)) is not None:
            raise ArchiveUnsafePath(
                f"The member {quoted(name)} has an unsafe path: {problem}. Member paths must be relative, "
                "normalised and portable; rebuild the archive from the package folder (mercato package build).")
        key = path_key(path)
        if (other := self.keys.get(key)) is not None:
            same = "twice" if other == path else f"twice: as {quoted(other)} and {quoted(path)} (names are " \
                "compared ignoring case and Unicode width)"
            raise ArchiveDuplicateMember(
                f"The archive holds the path {quoted(path)} {same}. Keep one; installing would overwrite one "
                "with the other.")
        self.keys[key] = path
        return path

    def add(self, member: ArchiveMember) -> None:
        self.members[member.path] = member

    def sink_for(self, path: str) -> MemberSink:
        keep = MAX_MANIFEST_BYTES + 1 if path == MANIFEST_NAME else self.wanted.get(path, 0)
        return MemberSink(keep)

    def took(self, path: str, sink: MemberSink) -> None:
        if path == MANIFEST_NAME or path in self.wanted:
            self.captured[path] = bytes(sink.kept)
        if path == MANIFEST_NAME:
            # Learn the changelog's path early, so a streamed tar needs no second pass.
            try:
                changelog = parse_manifest(bytes(sink.kept)).package.changelog
            except PackageError:
                changelog = None
            if changelog is not None:
                self.wanted[changelog] = self.limits.max_changelog_bytes + 1

    def check_files_and_folders(self) -> None:
        files = {path_key(m.path): m.path for m in self.members.values() if not m.is_dir}
        for member in self.members.values():
            parts = path_key(member.path).split("/")
            for depth in range(1, len(parts)):
                if (file_path := files.get("/".join(parts[:depth]))) is not None:
                    raise ArchiveDuplicateMember(
                        f"{quoted(file_path)} is a file, but the archive also holds {quoted(member.path)} inside it. "
                        "Rename one of them.")
