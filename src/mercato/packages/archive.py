"""Reading a package archive safely: the one validation the server and the CLI share.

:func:`inspect_archive` never extracts anything to disk. It reads the archive once,
streams every member's bytes through decompression in memory, counts the bytes really
produced (a zip's central directory can lie about sizes) and stops as soon as a limit is
crossed. It keeps ``mercato.toml`` and the changelog the manifest names, and returns an
:class:`InspectedArchive`; every refusal is a :class:`~mercato.packages.errors.PackageError`.

What is refused (QUALITY I3):

- anything that is not a zip or a gzip-compressed ustar/pax tar, detected by content
  (magic bytes), never by file name; polyglots: bytes before a zip's first local header,
  bytes after its end record (an archive comment, appended data), bytes between its
  members, a gzip stream with trailing data or a second member, a gzip file that also
  ends like a zip, a zip that also looks like a tar;
- member paths that :func:`~mercato.packages.manifest.path_problem` refuses (traversal,
  absolute paths, drive letters, backslashes, NUL and control characters, ...), and names
  that are not UTF-8 (a zip name that is not ASCII must carry the UTF-8 flag);
- symbolic and hard links, devices, FIFOs and sockets; encrypted zip members;
- the same path twice, compared after Unicode (NFKC) normalisation and case folding, and a
  path that is both a file and a folder;
- more members than ``max_members``; more unpacked bytes than ``max_unpacked_bytes``, or,
  beyond ``bomb_threshold_bytes``, more than ``max_ratio`` times the archive's size; zip
  members that unpack to more than they declare, or overlap;
- zip local headers that disagree with the central directory (name, method, flags, sizes,
  CRC), damaged data (CRC, truncation, bad tar header checksums).

Only stored and deflated zip members are accepted. A leading ``./`` of member names (as
``tar -C dir .`` writes) is dropped, and the ``./`` entry itself is ignored.
"""

from __future__ import annotations

import hashlib
import stat
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from mercato.packages.errors import (
    ArchiveBomb,
    ArchiveCorrupt,
    ArchiveDuplicateMember,
    ArchiveEncrypted,
    ArchiveHeaderMismatch,
    ArchiveLink,
    ArchiveTooManyMembers,
    ArchiveUnsafePath,
    ArchiveUnsupported,
    ChecksumMismatch,
    LaunchEntryMissing,
    ManifestInvalid,
    ManifestMissing,
    PackageError,
    PackageTooLarge,
)
from mercato.packages.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    Manifest,
    decode_manifest,
    parse_manifest,
    path_key,
    path_problem,
)

MiB = 1024 * 1024
CHUNK = 256 * 1024
MAX_CHANGELOG_BYTES = 256 * 1024
MAX_NAME_BYTES = 4096
MAX_PAX_BYTES = 1 * MiB
MAX_EXTENSION_RUN = 4
MAX_GLOBAL_HEADERS = 8

ArchiveFormat = Literal["zip", "tar.gz"]


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


@dataclass(frozen=True)
class InspectedArchive:
    """A package archive that passed every check, with its manifest."""

    format: ArchiveFormat
    sha256: str
    size: int
    unpacked_size: int
    members: list[ArchiveMember]
    manifest: Manifest
    manifest_text: str
    changelog: str | None

    def member(self, path: str) -> ArchiveMember | None:
        return next((m for m in self.members if m.path == path), None)

    def to_document(self) -> dict[str, Any]:
        """Format, digest, sizes and the file list, JSON-ready (the manifest is stored apart)."""
        return {
            "format": self.format, "sha256": self.sha256, "size": self.size, "unpacked_size": self.unpacked_size,
            "members": [{"path": m.path, "size": m.size, "is_dir": m.is_dir, "mode": m.mode,
                         "file_type": m.file_type} for m in self.members],
        }


# --- helpers -----------------------------------------------------------------------------

def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, as 64 lowercase hex digits."""
    with path.open("rb") as file:
        return _sha256(file)


def _sha256(file: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := file.read(MiB):
        digest.update(chunk)
    return digest.hexdigest()


def _show(name: str) -> str:
    return repr(name if len(name) <= 120 else name[:117] + "...")


def _human(size: float) -> str:
    unit = "bytes"
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            break
        size /= 1024
    return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f}".removesuffix(".0") + f" {unit}"


def _file_type(head: bytes) -> str | None:
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


def _zip_end_hidden_in(tail: bytes) -> bool:
    """Whether ``tail`` (a file's last bytes) ends like a zip: an end record whose comment reaches the end."""
    position = tail.rfind(b"PK\x05\x06")
    while position >= 0:
        if len(tail) - position >= 22:
            comment_length = struct.unpack_from("<H", tail, position + 20)[0]
            if position + 22 + comment_length == len(tail):
                return True
        position = tail.rfind(b"PK\x05\x06", 0, position)
    return False


class _MemberSink:
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
class _Scan:
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
                f"The archive unpacks to more than {_human(limits.max_unpacked_bytes)}, the most this store "
                "accepts. Make the package smaller or ask the store's operators about the limit.")
        if self.produced > limits.bomb_threshold_bytes and self.produced > limits.max_ratio * self.archive_size:
            raise ArchiveBomb(
                f"The archive unpacks to more than {limits.max_ratio:g} times its size beyond "
                f"{_human(limits.bomb_threshold_bytes)}, which is how zip bombs look. Packages of mostly "
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
                f"The member {_show(name)} has an unsafe path: {problem}. Member paths must be relative, "
                "normalised and portable; rebuild the archive from the package folder (mercato package build).")
        key = path_key(path)
        if (other := self.keys.get(key)) is not None:
            same = "twice" if other == path else f"twice: as {_show(other)} and {_show(path)} (names are " \
                "compared ignoring case and Unicode width)"
            raise ArchiveDuplicateMember(
                f"The archive holds the path {_show(path)} {same}. Keep one; installing would overwrite one "
                "with the other.")
        self.keys[key] = path
        return path

    def add(self, member: ArchiveMember) -> None:
        self.members[member.path] = member

    def sink_for(self, path: str) -> _MemberSink:
        keep = MAX_MANIFEST_BYTES + 1 if path == MANIFEST_NAME else self.wanted.get(path, 0)
        return _MemberSink(keep)

    def took(self, path: str, sink: _MemberSink) -> None:
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
                        f"{_show(file_path)} is a file, but the archive also holds {_show(member.path)} inside it. "
                        "Rename one of them.")


# --- tar.gz ------------------------------------------------------------------------------

class _GzipStream:
    """Decompressed bytes of a single-member gzip file, counted by the scan as they appear."""

    def __init__(self, file: BinaryIO, scan: _Scan) -> None:
        self.file = file
        self.scan = scan
        self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.buffer = bytearray()

    def _more(self) -> bool:
        inflater = self.inflater
        if inflater.eof:
            return False
        data = inflater.unconsumed_tail or self.file.read(CHUNK)
        if not data:
            raise ArchiveCorrupt("The gzip stream ends early: the archive is truncated. Upload it again.")
        try:
            out = inflater.decompress(data, CHUNK)
        except zlib.error as error:
            raise ArchiveCorrupt(f"The gzip data is damaged ({error}). Rebuild the archive.") from None
        if out:
            self.scan.produce(len(out))
            self.buffer += out
        if inflater.eof:
            trailing = inflater.unused_data or self.file.read(1)
            if trailing:
                what = ("a second gzip member follows the first" if trailing.startswith(b"\x1f\x8b")
                        else "bytes follow the end of the gzip stream")
                raise ArchiveUnsupported(
                    f"The archive is not one clean gzip stream: {what}, which can hide a second file. "
                    "Rebuild it as a single .tar.gz (mercato package build).")
        return True

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only at the end of the stream."""
        while len(self.buffer) < size and self._more():
            pass
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data


_ZERO_BLOCK = bytes(512)


def _tar_number(field_bytes: bytes, *, what: str) -> int:
    if field_bytes and field_bytes[0] & 0x80:
        if field_bytes[0] == 0xFF:
            raise ArchiveCorrupt(f"A tar header has a negative {what}. Rebuild the archive.")
        return int.from_bytes(bytes([field_bytes[0] & 0x7F]) + field_bytes[1:], "big")
    text = field_bytes.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    if not all(48 <= byte <= 55 for byte in text):
        raise ArchiveCorrupt(f"A tar header has an unreadable {what}. Rebuild the archive.")
    return int(text, 8)


def _c_string(field_bytes: bytes) -> bytes:
    return field_bytes.split(b"\0", 1)[0]


def _decode_name(raw: bytes) -> str:
    if len(raw) > MAX_NAME_BYTES:
        raise ArchiveUnsafePath(f"A member name is longer than {MAX_NAME_BYTES} bytes. Shorten it.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        shown = raw.decode("utf-8", "backslashreplace")
        raise ArchiveUnsafePath(f"The member name {_show(shown)} is not UTF-8. Rename the file with UTF-8 "
                                "characters and rebuild the archive.") from None


def _pax_records(data: bytes) -> dict[str, bytes]:
    records: dict[str, bytes] = {}
    position = 0
    while position < len(data):
        if data[position:] .strip(b"\0") == b"":
            break
        space = data.find(b" ", position, position + 20)
        length_text = data[position:space] if space > 0 else b""
        if not length_text.isdigit():
            raise ArchiveCorrupt("A pax extended header is malformed. Rebuild the archive.")
        end = position + int(length_text)
        if end > len(data) or end <= space + 1 or data[end - 1:end] != b"\n":
            raise ArchiveCorrupt("A pax extended header is malformed. Rebuild the archive.")
        key, equals, value = data[space + 1:end - 1].partition(b"=")
        if not equals:
            raise ArchiveCorrupt("A pax extended header is malformed. Rebuild the archive.")
        try:
            records[key.decode("utf-8")] = value
        except UnicodeDecodeError:
            raise ArchiveCorrupt("A pax extended header is malformed. Rebuild the archive.") from None
        position = end
    return records


class _TarScanner:
    def __init__(self, file: BinaryIO, scan: _Scan, *, stop_at: str | None = None) -> None:
        self.stream = _GzipStream(file, scan)
        self.scan = scan
        self.stop_at = stop_at
        self.first = True

    def _read_data(self, size: int, sink: _MemberSink | None) -> None:
        remaining = size
        while remaining:
            data = self.stream.read(min(remaining, CHUNK))
            if not data:
                raise ArchiveCorrupt("The tar archive ends inside a member: it is truncated. Upload it again.")
            remaining -= len(data)
            if sink is not None:
                sink.feed(data)
        padding = -size % 512
        if padding and len(self.stream.read(padding)) != padding:
            raise ArchiveCorrupt("The tar archive ends inside a member: it is truncated. Upload it again.")

    def _read_small(self, size: int, what: str) -> bytes:
        if size > MAX_PAX_BYTES:
            raise ArchiveUnsupported(f"A tar {what} is larger than {_human(MAX_PAX_BYTES)}. Rebuild the archive.")
        sink = _MemberSink(size)
        self._read_data(size, sink)
        return bytes(sink.kept)

    def _header(self, block: bytes) -> dict[str, Any]:
        refuse = ArchiveUnsupported if self.first else ArchiveCorrupt
        stored = block[148:156]
        try:
            checksum = _tar_number(stored, what="checksum")
        except ArchiveCorrupt:
            checksum = -1
        unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
        signed = sum(struct.unpack("148b", block[:148])) + 8 * 32 + sum(struct.unpack("356b", block[156:]))
        if checksum not in (unsigned, signed):
            raise refuse("The gzip stream does not hold a tar archive." if self.first else
                         "A tar header's checksum is wrong: the archive is damaged. Rebuild it.")
        magic = block[257:265]
        if magic[:6] == b"ustar\0" and magic[6:] == b"00":
            posix = True
        elif magic == b"ustar  \0":
            posix = False
        else:
            raise ArchiveUnsupported(
                "The tar archive is not in ustar or pax format (an old v7 tar, or something posing as a tar). "
                "Rebuild it with `tar --format=pax` or `mercato package build`.")
        name = _c_string(block[0:100])
        prefix = _c_string(block[345:500])
        if prefix and not posix:
            # GNU tar reads bytes 345-500 of a GNU-magic header as times and offsets and ignores them for the
            # name, while Python's tarfile prepends them as a ustar prefix: the two extract different paths.
            raise ArchiveUnsupported(
                "A GNU tar header carries a ustar name prefix, which tar tools read differently. Rebuild the "
                "archive with `tar --format=pax` or `mercato package build`.")
        return {
            "name": prefix + b"/" + name if prefix else name,
            "mode": _tar_number(block[100:108], what="mode") & 0o7777,
            "size": _tar_number(block[124:136], what="size"),
            "type": block[156:157],
            "linkname": _c_string(block[157:257]),
        }

    def scan_all(self) -> None:
        pending: dict[str, bytes] = {}
        run = 0
        globals_seen = 0
        while True:
            block = self.stream.read(512)
            if len(block) < 512:
                if self.first:
                    raise ArchiveUnsupported("The gzip stream does not hold a tar archive.")
                raise ArchiveCorrupt("The tar archive ends without its end-of-archive marker: it is truncated. "
                                     "Upload it again.")
            if block == _ZERO_BLOCK:
                if pending or run:
                    raise ArchiveCorrupt("The tar archive ends after an extended header. Rebuild it.")
                while chunk := self.stream.read(CHUNK):
                    if chunk.count(0) != len(chunk):
                        raise ArchiveUnsupported(
                            "Data follows the end of the tar archive, which can hide a second file. "
                            "Rebuild it (mercato package build).")
                return
            header = self._header(block)
            self.first = False
            kind, size = header["type"], header["size"]
            if kind in (b"x", b"g", b"L", b"K"):
                run += 1
                if run > MAX_EXTENSION_RUN:
                    raise ArchiveCorrupt("The tar archive has a run of extended headers. Rebuild it.")
                data = self._read_small(size, "extended header")
                if kind == b"x":
                    self._merge(pending, self._pax(data))
                elif kind == b"g":
                    globals_seen += 1
                    records = _pax_records(data)
                    if globals_seen > MAX_GLOBAL_HEADERS or {"path", "linkpath", "size"} & records.keys():
                        raise ArchiveUnsupported("The tar archive has global pax headers that change member "
                                                 "names or sizes. Rebuild it (mercato package build).")
                else:
                    self._merge(pending, {"path" if kind == b"L" else "linkpath": _c_string(data)})
                continue
            run = 0
            if "path" in pending:
                header["name"] = pending["path"]
            if "linkpath" in pending:
                header["linkname"] = pending["linkpath"]
            if "size" in pending:
                size_text = pending["size"]
                if not size_text.isdigit() or len(size_text) > 20:
                    raise ArchiveCorrupt("A pax header has an unreadable size. Rebuild the archive.")
                size = int(size_text)
            pending = {}
            if self._entry(header, size):
                return

    @staticmethod
    def _merge(pending: dict[str, bytes], records: dict[str, bytes]) -> None:
        """Add one extended header's values for the next member, refusing a value given twice.

        When two extended headers (pax ``x`` records, GNU ``L``/``K`` entries, in any order) both set a
        member's name, link or size, extractors disagree on which one wins (Python's tarfile keeps the first,
        GNU tar the last), so the name the store checks and lists could differ from the one written to disk.
        """
        twice = pending.keys() & records.keys()
        if twice:
            raise ArchiveUnsupported(
                f"A tar member has its {min(twice)} set by two extended headers (pax and GNU long name, "
                "or two of either), which tar tools resolve differently. Rebuild the archive with "
                "`tar --format=pax` or `mercato package build`.")
        pending.update(records)

    def _pax(self, data: bytes) -> dict[str, bytes]:
        records = _pax_records(data)
        if any(key.startswith("GNU.sparse.") for key in records) or records.get("hdrcharset") == b"BINARY":
            raise ArchiveUnsupported("The tar archive holds sparse files or non-UTF-8 names. Rebuild it "
                                     "(mercato package build).")
        return {key: value for key, value in records.items() if key in ("path", "linkpath", "size")}

    def _entry(self, header: dict[str, Any], size: int) -> bool:
        """Handle one real member; True when the scan may stop (``stop_at`` reached)."""
        kind = header["type"]
        name = _decode_name(header["name"])
        if kind in (b"1", b"2"):
            link = _decode_name(header["linkname"]) if header["linkname"] else ""
            what = "a hard link" if kind == b"1" else "a symbolic link"
            raise ArchiveLink(f"The member {_show(name)} is {what} (to {_show(link)}). Packages can't hold links: "
                              "ship a copy of the file instead.")
        if kind in (b"3", b"4", b"6"):
            what = {b"3": "a character device", b"4": "a block device", b"6": "a FIFO"}[kind]
            raise ArchiveLink(f"The member {_show(name)} is {what}. Packages hold only files and folders.")
        is_dir = kind == b"5" or (kind == b"\0" and name.endswith("/"))
        if not is_dir and kind not in (b"0", b"\0", b"7"):
            raise ArchiveUnsupported(f"The member {_show(name)} has the tar type {kind!r}, which packages don't "
                                     "support (only files and folders). Rebuild the archive.")
        if is_dir and size:
            raise ArchiveCorrupt(f"The folder {_show(name)} has content in the tar archive. Rebuild it.")
        path = self.scan.admit(name, is_dir=is_dir)
        if path is None:
            return False
        if is_dir:
            self.scan.add(ArchiveMember(path=path, size=0, is_dir=True, mode=header["mode"]))
            return False
        sink = self.scan.sink_for(path)
        self._read_data(size, sink)
        self.scan.add(ArchiveMember(path=path, size=size, is_dir=False, mode=header["mode"],
                                    file_type=_file_type(sink.head)))
        self.scan.took(path, sink)
        return path == self.stop_at


def _check_gzip_header(head: bytes) -> None:
    if len(head) < 10 or head[2] != 8:
        raise ArchiveUnsupported("The gzip file does not use deflate compression. Rebuild it as .tar.gz.")
    flags = head[3]
    if flags & 0xE0:
        raise ArchiveCorrupt("The gzip header has reserved flags set. Rebuild the archive.")
    if flags & 0x14:  # FEXTRA, FCOMMENT
        raise ArchiveUnsupported("The gzip header carries extra fields or a comment, which can hide data. "
                                 "Rebuild it (mercato package build).")


# --- zip ---------------------------------------------------------------------------------

_EOCD = struct.Struct("<4s4H2LH")
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_LOCAL = struct.Struct("<4s5H3L2H")
_ENCRYPTION_FLAGS = 0x0001 | 0x0040 | 0x2000
_KNOWN_FLAGS = _ENCRYPTION_FLAGS | 0x0002 | 0x0004 | 0x0008 | 0x0800
_S_SPECIAL = {stat.S_IFLNK: "a symbolic link", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
              stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket"}


@dataclass
class _ZipEntry:
    raw_name: bytes
    name: str
    path: str | None
    is_dir: bool
    mode: int
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    offset: int
    zip64: bool


def _extra_fields(extra: bytes) -> dict[int, bytes]:
    fields: dict[int, bytes] = {}
    position = 0
    while position < len(extra):
        if position + 4 > len(extra):
            raise ArchiveCorrupt("A zip extra field is malformed. Rebuild the archive.")
        tag, length = struct.unpack_from("<2H", extra, position)
        if position + 4 + length > len(extra):
            raise ArchiveCorrupt("A zip extra field is malformed. Rebuild the archive.")
        fields.setdefault(tag, extra[position + 4:position + 4 + length])
        position += 4 + length
    return fields


def _zip64_values(fields: dict[int, bytes], wanted: list[str], values: dict[str, int]) -> None:
    data = fields.get(0x0001, b"")
    position = 0
    for name in wanted:
        width = 4 if name == "disk" else 8
        if position + width > len(data):
            raise ArchiveCorrupt("A zip64 extra field is missing values. Rebuild the archive.")
        values[name] = int.from_bytes(data[position:position + width], "little")
        position += width


def _check_unicode_path(fields: dict[int, bytes], name: str) -> None:
    data = fields.get(0x7075)
    if data is None:
        return
    try:
        other = data[5:].decode("utf-8")
    except UnicodeDecodeError:
        other = None
    if len(data) < 5 or other != name:
        raise ArchiveHeaderMismatch(f"The member {_show(name)} carries a Unicode Path field naming another path, so "
                                    "tools would disagree about its name. Rebuild the archive.")


class _ZipScanner:
    def __init__(self, file: BinaryIO, size: int, scan: _Scan) -> None:
        self.file = file
        self.size = size
        self.scan = scan
        self.entries: list[_ZipEntry] = []

    def _read_at(self, offset: int, length: int) -> bytes:
        self.file.seek(offset)
        data = self.file.read(length)
        if len(data) != length:
            raise ArchiveCorrupt("The zip archive is truncated. Upload it again.")
        return data

    def _end_record(self) -> tuple[int, int, int]:
        """(entry count, central directory offset, its expected end)."""
        size = self.size
        tail = self._read_at(max(0, size - 22 - 65535 - 20 - 56), min(size, 22 + 65535 + 20 + 56))
        end = tail[-22:]
        if len(end) < 22 or end[:4] != b"PK\x05\x06" or end[20:22] != b"\0\0":
            if b"PK\x05\x06" in tail:
                raise ArchiveUnsupported(
                    "The zip archive has data after its central directory (an archive comment or appended "
                    "bytes), which can hide a second file. Remove the comment and rebuild the archive.")
            raise ArchiveCorrupt("The zip archive has no end record: it is truncated or damaged. Upload it again.")
        _, disk, cd_disk, on_disk, total, cd_size, cd_offset, _ = _EOCD.unpack(end)
        cd_end = size - 22
        locator = tail[-42:-22] if len(tail) >= 42 else b""
        if locator[:4] == b"PK\x06\x07":
            _, eocd64_disk, eocd64_offset, disks = _EOCD64_LOCATOR.unpack(locator)
            if eocd64_disk != 0 or disks != 1:
                raise ArchiveUnsupported("Multi-part zip archives are not supported. Build one single archive.")
            if eocd64_offset + _EOCD64.size > size - 42:
                raise ArchiveCorrupt("The zip64 end record is misplaced. Rebuild the archive.")
            record = self._read_at(eocd64_offset, _EOCD64.size)
            classic = {"on_disk": on_disk, "total": total, "cd_size": cd_size, "cd_offset": cd_offset}
            sig, record_size, _, _, disk, cd_disk, on_disk, total, cd_size, cd_offset = _EOCD64.unpack(record)
            if sig != b"PK\x06\x06" or eocd64_offset + 12 + record_size != size - 42:
                raise ArchiveCorrupt("The zip64 end record is damaged or misplaced. Rebuild the archive.")
            wide = {"on_disk": on_disk, "total": total, "cd_size": cd_size, "cd_offset": cd_offset}
            if any(value not in (0xFFFF, 0xFFFFFFFF, wide[key]) for key, value in classic.items()):
                raise ArchiveHeaderMismatch("The zip end record and its zip64 end record disagree, so tools would "
                                            "read different contents. Rebuild the archive.")
            cd_end = eocd64_offset
        elif 0xFFFF in (on_disk, total) or 0xFFFFFFFF in (cd_size, cd_offset):
            raise ArchiveCorrupt("The zip archive lacks its zip64 end record. Rebuild the archive.")
        if disk != 0 or cd_disk != 0 or on_disk != total:
            raise ArchiveUnsupported("Multi-part zip archives are not supported. Build one single archive.")
        if total > self.scan.limits.max_members:
            raise ArchiveTooManyMembers(
                f"The archive holds {total:,} files and folders; a package may hold at most "
                f"{self.scan.limits.max_members:,}. Bundle small files together.")
        if cd_offset + cd_size < cd_end:
            raise ArchiveUnsupported("The zip archive has bytes between its central directory and its end record, "
                                     "which can hide data. Rebuild the archive.")
        if cd_offset + cd_size > cd_end:
            raise ArchiveCorrupt("The zip central directory overruns its end record. Rebuild the archive.")
        return total, cd_offset, cd_end

    def _central_directory(self, total: int, cd_offset: int, cd_end: int) -> None:
        self.file.seek(cd_offset)
        position = cd_offset
        for _ in range(total):
            fixed = self.file.read(_CENTRAL.size)
            if len(fixed) != _CENTRAL.size or fixed[:4] != b"PK\x01\x02":
                raise ArchiveCorrupt("The zip central directory is damaged. Rebuild the archive.")
            (_, made_by, _, flags, method, _, _, crc, compressed, size, name_length, extra_length,
             comment_length, disk, _, external, offset) = _CENTRAL.unpack(fixed)
            if name_length > MAX_NAME_BYTES:
                raise ArchiveUnsafePath(f"A member name is longer than {MAX_NAME_BYTES} bytes. Shorten it.")
            raw_name = self.file.read(name_length)
            extra = self.file.read(extra_length)
            comment = self.file.read(comment_length)
            position += _CENTRAL.size + name_length + extra_length + comment_length
            if len(raw_name) + len(extra) + len(comment) != name_length + extra_length + comment_length:
                raise ArchiveCorrupt("The zip central directory is truncated. Rebuild the archive.")
            shown = raw_name.decode("utf-8", "backslashreplace")
            if flags & _ENCRYPTION_FLAGS or method == 99:
                raise ArchiveEncrypted(f"The member {_show(shown)} is encrypted. Packages can't hold encrypted "
                                       "files: rebuild the archive without a password.")
            if flags & ~_KNOWN_FLAGS & 0xFFFF:
                raise ArchiveUnsupported(f"The member {_show(shown)} uses zip features packages don't support "
                                         f"(flags {flags:#06x}). Rebuild the archive (mercato package build).")
            if method not in (0, 8):
                raise ArchiveUnsupported(f"The member {_show(shown)} uses compression method {method}; packages "
                                         "accept stored or deflated members. Rebuild the archive.")
            if comment:
                raise ArchiveUnsupported(f"The member {_show(shown)} carries a comment, which can hide data. "
                                         "Rebuild the archive without comments.")
            if flags & 0x0800:
                name = _decode_name(raw_name)
            else:
                try:
                    name = raw_name.decode("ascii")
                except UnicodeDecodeError:
                    raise ArchiveUnsafePath(
                        f"The member name {_show(shown)} is not ASCII and not marked as UTF-8, so tools would "
                        "read it differently. Rebuild with a tool that writes UTF-8 names "
                        "(mercato package build).") from None
            fields = _extra_fields(extra)
            _check_unicode_path(fields, name)
            values = {"size": size, "compressed": compressed, "offset": offset, "disk": disk}
            wanted = [k for k, v in values.items() if v == (0xFFFF if k == "disk" else 0xFFFFFFFF)]
            if wanted:
                _zip64_values(fields, wanted, values)
            if values["disk"] != 0:
                raise ArchiveUnsupported("Multi-part zip archives are not supported. Build one single archive.")
            is_dir, mode = self._kind(name, made_by, external)
            if is_dir and values["size"]:
                raise ArchiveCorrupt(f"The folder {_show(name)} has content in the zip archive. Rebuild it.")
            path = self.scan.admit(name, is_dir=is_dir)
            self.entries.append(_ZipEntry(
                raw_name=raw_name, name=name, path=path, is_dir=is_dir, mode=mode, flags=flags, method=method,
                crc=crc, compressed=values["compressed"], size=values["size"], offset=values["offset"],
                zip64=bool(wanted)))
        if position != cd_end:
            raise ArchiveUnsupported("The zip central directory has bytes it doesn't account for, which can hide "
                                     "data. Rebuild the archive.")

    @staticmethod
    def _kind(name: str, made_by: int, external: int) -> tuple[bool, int]:
        named_dir = name.endswith("/")
        if made_by >> 8 == 3:  # Unix: st_mode in the high 16 bits
            st_mode = external >> 16
            file_kind = stat.S_IFMT(st_mode)
            if file_kind in _S_SPECIAL:
                raise ArchiveLink(f"The member {_show(name)} is {_S_SPECIAL[file_kind]}. Packages can't hold links "
                                  "or special files: ship a copy of the file instead.")
            if file_kind == stat.S_IFDIR and not named_dir:
                raise ArchiveCorrupt(f"The member {_show(name)} is marked as a folder but its name doesn't end "
                                     "with '/'. Rebuild the archive.")
            if st_mode & 0o7777:
                return named_dir, st_mode & 0o7777
        return named_dir, 0o755 if named_dir else 0o644

    def _data(self, entry: _ZipEntry, next_offset: int) -> _MemberSink:
        header = self._read_at(entry.offset, _LOCAL.size)
        (sig, _, flags, method, _, _, crc, compressed, size, name_length, extra_length) = _LOCAL.unpack(header)
        if sig != b"PK\x03\x04":
            raise ArchiveCorrupt(f"The central directory points {_show(entry.name)} at no local header. "
                                 "Rebuild the archive.")
        local_name = self.file.read(name_length)
        extra = self.file.read(extra_length)
        if local_name != entry.raw_name:
            raise ArchiveHeaderMismatch(
                f"The central directory names a member {_show(entry.name)} but its local header says "
                f"{_show(local_name.decode('utf-8', 'backslashreplace'))}, so tools would disagree about what the "
                "archive holds. Rebuild the archive.")
        if method != entry.method or (flags ^ entry.flags) & (_ENCRYPTION_FLAGS | 0x0800 | 0x0008):
            raise ArchiveHeaderMismatch(f"The local header of {_show(entry.name)} disagrees with the central "
                                        "directory about its compression or flags. Rebuild the archive.")
        if len(extra) != extra_length:
            raise ArchiveCorrupt("The zip archive is truncated. Upload it again.")
        fields = _extra_fields(extra)
        _check_unicode_path(fields, entry.name)
        if not flags & 0x0008:
            values = {"size": size, "compressed": compressed}
            wanted = [k for k, v in values.items() if v == 0xFFFFFFFF]
            if wanted:
                _zip64_values(fields, wanted, values)
            if (crc, values["compressed"], values["size"]) != (entry.crc, entry.compressed, entry.size):
                raise ArchiveHeaderMismatch(f"The local header of {_show(entry.name)} disagrees with the central "
                                            "directory about its size or checksum. Rebuild the archive.")
        start = entry.offset + _LOCAL.size + name_length + extra_length
        end = start + entry.compressed
        if end > next_offset:
            raise ArchiveBomb(f"The member {_show(entry.name)} overlaps the next one, a zip-bomb technique. "
                              "Rebuild the archive.")
        sink = self.scan.sink_for(entry.path) if entry.path is not None else _MemberSink(0)
        self._inflate(entry, start, sink)
        gap = next_offset - end
        if flags & 0x0008:
            if gap > 24:
                raise ArchiveUnsupported(f"{gap} bytes after the member {_show(entry.name)} belong to no member, "
                                         "which can hide data. Rebuild the archive.")
            descriptor = self._read_at(end, gap)
            body = descriptor[4:] if descriptor[:4] == b"PK\x07\x08" else descriptor
            if len(body) not in (12, 20) or body[:4] != entry.crc.to_bytes(4, "little"):
                raise ArchiveUnsupported(f"The bytes after {_show(entry.name)} are not its data descriptor, "
                                         "which can hide data. Rebuild the archive.")
        elif gap:
            raise ArchiveUnsupported(f"{gap} bytes after the member {_show(entry.name)} belong to no member, "
                                     "which can hide data. Rebuild the archive.")
        return sink

    def _inflate(self, entry: _ZipEntry, start: int, sink: _MemberSink) -> None:
        self.file.seek(start)
        remaining = entry.compressed
        inflater = zlib.decompressobj(-zlib.MAX_WBITS) if entry.method == 8 else None

        def emit(data: bytes) -> None:
            if not data:
                return
            self.scan.produce(len(data))
            sink.feed(data)
            if sink.size > entry.size:
                raise ArchiveBomb(f"The member {_show(entry.name)} unpacks to more than the {entry.size:,} bytes the "
                                  "archive declares for it, which is how zip bombs hide. Rebuild the archive.")

        while remaining:
            data = self.file.read(min(remaining, CHUNK))
            if not data:
                raise ArchiveCorrupt("The zip archive is truncated. Upload it again.")
            remaining -= len(data)
            if inflater is None:
                emit(data)
                continue
            while data:
                if inflater.eof:
                    raise ArchiveCorrupt(f"The compressed data of {_show(entry.name)} continues past its end. "
                                         "Rebuild the archive.")
                try:
                    emit(inflater.decompress(data, CHUNK))
                except zlib.error as error:
                    raise ArchiveCorrupt(f"The compressed data of {_show(entry.name)} is damaged ({error}). "
                                         "Rebuild the archive.") from None
                data = inflater.unconsumed_tail
        if inflater is not None and (not inflater.eof or inflater.unused_data):
            raise ArchiveCorrupt(f"The compressed data of {_show(entry.name)} does not end where the archive says. "
                                 "Rebuild the archive.")
        if sink.size != entry.size:
            raise ArchiveCorrupt(f"The member {_show(entry.name)} unpacks to {sink.size:,} bytes, not the "
                                 f"{entry.size:,} the archive declares. Rebuild the archive.")
        if sink.crc != entry.crc:
            raise ArchiveCorrupt(f"The member {_show(entry.name)} fails its CRC check: the archive is damaged. "
                                 "Upload it again.")

    def scan_all(self) -> None:
        total, cd_offset, cd_end = self._end_record()
        self._central_directory(total, cd_offset, cd_end)
        ordered = sorted(self.entries, key=lambda e: e.offset)
        if ordered and ordered[0].offset != 0:
            raise ArchiveUnsupported("The zip archive has bytes before its first member that no member owns, which "
                                     "can hide data. Rebuild the archive.")
        if not ordered and cd_offset != 0:
            raise ArchiveUnsupported("The zip archive has bytes before its central directory that no member owns. "
                                     "Rebuild the archive.")
        for index, entry in enumerate(ordered):
            next_offset = ordered[index + 1].offset if index + 1 < len(ordered) else cd_offset
            if next_offset == entry.offset:
                raise ArchiveBomb(f"Two members share the data of {_show(entry.name)}, a zip-bomb technique. "
                                  "Rebuild the archive.")
            sink = self._data(entry, next_offset)
            if entry.path is None:
                continue
            if entry.is_dir:
                self.scan.add(ArchiveMember(path=entry.path, size=0, is_dir=True, mode=entry.mode))
            else:
                self.scan.add(ArchiveMember(path=entry.path, size=sink.size, is_dir=False, mode=entry.mode,
                                            file_type=_file_type(sink.head)))
                self.scan.took(entry.path, sink)
        # keep the central directory's order
        order = {entry.path: index for index, entry in enumerate(self.entries)}
        self.scan.members = dict(sorted(self.scan.members.items(), key=lambda item: order[item[0]]))

    def read_member(self, path: str, keep: int) -> bytes:
        entry = next(e for e in self.entries if e.path == path)
        sink = _MemberSink(keep)
        saved = self.scan.produced
        header = self._read_at(entry.offset, _LOCAL.size)
        name_length, extra_length = struct.unpack_from("<2H", header, 26)
        self._inflate(entry, entry.offset + _LOCAL.size + name_length + extra_length, sink)
        self.scan.produced = saved
        return bytes(sink.kept)


# --- the entry point ---------------------------------------------------------------------

def _detect(file: BinaryIO, size: int) -> ArchiveFormat:
    file.seek(0)
    head = file.read(512)
    file.seek(max(0, size - 22 - 65535))
    tail = file.read()
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        if head[257:262] == b"ustar":
            raise ArchiveUnsupported("The file is both a zip and a tar archive (a polyglot). Rebuild the archive.")
        return "zip"
    if head[:2] == b"\x1f\x8b":
        _check_gzip_header(head)
        if _zip_end_hidden_in(tail):
            raise ArchiveUnsupported("The file is a gzip stream that also ends like a zip archive (a polyglot). "
                                     "Rebuild the archive.")
        return "tar.gz"
    if _zip_end_hidden_in(tail) or b"PK\x05\x06" in tail[-22:-18]:
        raise ArchiveUnsupported(
            "The file has bytes before its zip data (a polyglot, such as a self-extracting program). "
            "Upload a plain .zip or .tar.gz.")
    if head[257:262] == b"ustar":
        raise ArchiveUnsupported("The file is an uncompressed tar archive; compress it with gzip (.tar.gz).")
    hints = {b"BZh": "bzip2", b"\xfd7zXZ": "xz", b"\x28\xb5\x2f\xfd": "zstd", b"7z\xbc\xaf": "7z", b"Rar!": "rar"}
    found = next((what for magic, what in hints.items() if head.startswith(magic)), None)
    what = f"a {found} file" if found else "not a zip or tar.gz archive"
    raise ArchiveUnsupported(f"The file is {what} (recognised by its content, not its name). Upload a .zip or "
                             ".tar.gz with mercato.toml at its root.")


def _manifest_missing(members: dict[str, ArchiveMember]) -> ManifestMissing:
    elsewhere = sorted(m.path for m in members.values()
                       if m.path.rsplit("/", 1)[-1].lower() == MANIFEST_NAME and m.path != MANIFEST_NAME)
    if elsewhere and "/" not in elsewhere[0]:
        return ManifestMissing(f"The archive has {_show(elsewhere[0])} at its root, but the manifest must be named "
                               "exactly mercato.toml (lowercase). Rename it and rebuild the archive.")
    if elsewhere:
        return ManifestMissing(f"mercato.toml must be at the root of the archive, but it is at {_show(elsewhere[0])}. "
                               "Build the archive from inside the package folder (mercato package build DIR).")
    return ManifestMissing("The archive has no mercato.toml at its root. Add one (mercato package init writes a "
                           "skeleton) and rebuild the archive.")


def _checked_digest(declared: str) -> str:
    text = declared.strip().lower().removeprefix("sha256:")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ChecksumMismatch("The declared SHA-256 is not 64 hexadecimal digits. Send the archive's SHA-256 "
                               "in hex (sha256sum prints it).")
    return text


@dataclass
class ScannedArchive:
    """An archive that passed every structural check (paths, links, bombs, polyglots), with
    the bounded copies of the members asked for. Manifest readers build on it: this one for
    ``mercato.toml``, :mod:`mercato.packages.vsix` for VS Code extensions."""

    format: ArchiveFormat
    sha256: str
    size: int
    members: dict[str, ArchiveMember]
    captured: dict[str, bytes]
    _path: Path
    _limits: PackageLimits

    def read_member(self, path: str, keep: int) -> bytes:
        """Up to ``keep`` bytes of one file member (a second, bounded pass over the archive)."""
        with self._path.open("rb") as file:
            if self.format == "zip":
                scanner = _ZipScanner(file, self.size, _Scan(limits=self._limits, archive_size=self.size))
                total, cd_offset, cd_end = scanner._end_record()
                scanner._central_directory(total, cd_offset, cd_end)
                return scanner.read_member(path, keep)
            again = _Scan(limits=self._limits, archive_size=self.size, wanted={path: keep})
            _TarScanner(file, again, stop_at=path).scan_all()
            return again.captured.get(path, b"")


def scan_archive(path: Path, *, limits: PackageLimits, declared_sha256: str | None = None,
                 wanted: dict[str, int] | None = None) -> ScannedArchive:
    """Every check of the module docstring, without reading any manifest; never writes anything.
    ``wanted`` names members (path → bytes to keep) to capture on the way."""
    size = path.stat().st_size
    if size > limits.max_archive_bytes:
        raise PackageTooLarge(f"The archive is {_human(size)}; packages may be at most "
                              f"{_human(limits.max_archive_bytes)}. Make the package smaller.")
    if size == 0:
        raise ArchiveUnsupported("The file is empty. Upload a .zip or .tar.gz with mercato.toml at its root.")
    with path.open("rb") as file:
        digest = _sha256(file)
        if declared_sha256 is not None and _checked_digest(declared_sha256) != digest:
            raise ChecksumMismatch(f"The archive's SHA-256 is {digest}, not the {declared_sha256.strip()} declared: "
                                   "it changed on the way. Upload it again.")
        archive_format = _detect(file, size)
        scan = _Scan(limits=limits, archive_size=size, wanted=dict(wanted or {}))
        file.seek(0)
        if archive_format == "zip":
            _ZipScanner(file, size, scan).scan_all()
        else:
            _TarScanner(file, scan).scan_all()
        scan.check_files_and_folders()
    return ScannedArchive(format=archive_format, sha256=digest, size=size, members=scan.members,
                          captured=scan.captured, _path=path, _limits=limits)


def inspect_archive(path: Path, *, limits: PackageLimits | None = None,
                    declared_sha256: str | None = None) -> InspectedArchive:
    """Check a package archive end to end and read its manifest; never writes anything.

    Synchronous and CPU-bound: the server runs it in a worker thread.
    """
    limits = limits or PackageLimits()
    scanned = scan_archive(path, limits=limits, declared_sha256=declared_sha256)
    found = scanned.members.get(MANIFEST_NAME)
    if found is None or found.is_dir:
        raise _manifest_missing(scanned.members)
    manifest_bytes = scanned.captured[MANIFEST_NAME]
    manifest_text = decode_manifest(manifest_bytes)
    manifest = parse_manifest(manifest_bytes)
    changelog = None
    if (changelog_path := manifest.package.changelog) is not None:
        member = scanned.members.get(changelog_path)
        if member is None or member.is_dir:
            raise ManifestInvalid(
                f"mercato.toml names the changelog {_show(changelog_path)}, which is not a file in the archive. "
                "Add the file or fix the path.",
                errors=[{"loc": ["package", "changelog"], "msg": "No such file in the archive.",
                         "type": "file_missing"}])
        keep = limits.max_changelog_bytes + 1
        data = scanned.captured.get(changelog_path)
        if data is None:
            data = scanned.read_member(changelog_path, keep)
        changelog = _changelog_text(data, limits.max_changelog_bytes)
    if manifest.launch is not None and (entry := manifest.launch.entry) is not None:
        member = scanned.members.get(entry)
        if member is None or member.is_dir:
            raise LaunchEntryMissing(
                f"mercato.toml's [launch] entry is {_show(entry)}, which is not a file in the archive: every "
                "install would fail to open it. Add the file or fix the path.",
                errors=[{"loc": ["launch", "entry"], "msg": "No such file in the archive.", "type": "file_missing"}])
    members = list(scanned.members.values())
    return InspectedArchive(
        format=scanned.format, sha256=scanned.sha256, size=scanned.size,
        unpacked_size=sum(m.size for m in members if not m.is_dir), members=members, manifest=manifest,
        manifest_text=manifest_text, changelog=changelog)


def _changelog_text(data: bytes, cap: int) -> str:
    """The changelog as text, cut at a line end before ``cap`` bytes if longer."""
    if len(data) > cap:
        data = data[:cap]
        cut = data.rfind(b"\n")
        data = data[:cut + 1] if cut > 0 else data
        return data.decode("utf-8", "replace") + "\n[changelog truncated]\n"
    return data.decode("utf-8", "replace").removeprefix("\ufeff")


__all__ = ["ArchiveMember", "InspectedArchive", "PackageLimits", "ScannedArchive", "inspect_archive", "scan_archive",
           "sha256_of"]
