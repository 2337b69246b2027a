"""Reading a zip archive: the end records, the central directory, then each member's data.

:class:`ZipScanner` trusts no size the archive declares: it checks every local header
against the central directory, inflates each member counting what really comes out,
and refuses bytes no member owns (before, between or after members), overlapping
members, encryption, unknown flags and methods other than stored and deflated.
"""

from __future__ import annotations

import stat
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from mercato.packages.archive.policy import (
    CHUNK,
    MAX_NAME_BYTES,
    ArchiveMember,
    MemberSink,
    Scan,
    decode_name,
    file_type_of,
    quoted,
)
from mercato.packages.errors import (
    ArchiveBomb,
    ArchiveCorrupt,
    ArchiveEncrypted,
    ArchiveHeaderMismatch,
    ArchiveLink,
    ArchiveTooManyMembers,
    ArchiveUnsafePath,
    ArchiveUnsupported,
)

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
        raise ArchiveHeaderMismatch(f"The member {quoted(name)} carries a Unicode Path field naming another path, so "
                                    "tools would disagree about its name. Rebuild the archive.")


def zip_end_hidden_in(tail: bytes) -> bool:
    """Whether ``tail`` (a file's last bytes) ends like a zip: an end record whose comment reaches the end."""
    position = tail.rfind(b"PK\x05\x06")
    while position >= 0:
        if len(tail) - position >= 22:
            comment_length = struct.unpack_from("<H", tail, position + 20)[0]
            if position + 22 + comment_length == len(tail):
                return True
        position = tail.rfind(b"PK\x05\x06", 0, position)
    return False


class ZipScanner:
    """One zip archive read through: every member checked and handed to the scan."""

    def __init__(self, file: BinaryIO, size: int, scan: Scan) -> None:
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
                raise ArchiveEncrypted(f"The member {quoted(shown)} is encrypted. Packages can't hold encrypted "
                                       "files: rebuild the archive without a password.")
            if flags & ~_KNOWN_FLAGS & 0xFFFF:
                raise ArchiveUnsupported(f"The member {quoted(shown)} uses zip features packages don't support "
                                         f"(flags {flags:#06x}). Rebuild the archive (mercato package build).")
            if method not in (0, 8):
                raise ArchiveUnsupported(f"The member {quoted(shown)} uses compression method {method}; packages "
                                         "accept stored or deflated members. Rebuild the archive.")
            if comment:
                raise ArchiveUnsupported(f"The member {quoted(shown)} carries a comment, which can hide data. "
                                         "Rebuild the archive without comments.")
            if flags & 0x0800:
                name = decode_name(raw_name)
            else:
                try:
                    name = raw_name.decode("ascii")
                except UnicodeDecodeError:
                    raise ArchiveUnsafePath(
                        f"The member name {quoted(shown)} is not ASCII and not marked as UTF-8, so tools would "
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
                raise ArchiveCorrupt(f"The folder {quoted(name)} has content in the zip archive. Rebuild it.")
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
                raise ArchiveLink(f"The member {quoted(name)} is {_S_SPECIAL[file_kind]}. Packages can't hold links "
                                  "or special files: ship a copy of the file instead.")
            if file_kind == stat.S_IFDIR and not named_dir:
                raise ArchiveCorrupt(f"The member {quoted(name)} is marked as a folder but its name doesn't end "
                                     "with '/'. Rebuild the archive.")
            if st_mode & 0o7777:
                return named_dir, st_mode & 0o7777
        return named_dir, 0o755 if named_dir else 0o644

    def _data(self, entry: _ZipEntry, next_offset: int) -> MemberSink:
        header = self._read_at(entry.offset, _LOCAL.size)
        (sig, _, flags, method, _, _, crc, compressed, size, name_length, extra_length) = _LOCAL.unpack(header)
        if sig != b"PK\x03\x04":
            raise ArchiveCorrupt(f"The central directory points {quoted(entry.name)} at no local header. "
                                 "Rebuild the archive.")
        local_name = self.file.read(name_length)
        extra = self.file.read(extra_length)
        if local_name != entry.raw_name:
            raise ArchiveHeaderMismatch(
                f"The central directory names a member {quoted(entry.name)} but its local header says "
                f"{quoted(local_name.decode('utf-8', 'backslashreplace'))}, so tools would disagree about what the "
                "archive holds. Rebuild the archive.")
        if method != entry.method or (flags ^ entry.flags) & (_ENCRYPTION_FLAGS | 0x0800 | 0x0008):
            raise ArchiveHeaderMismatch(f"The local header of {quoted(entry.name)} disagrees with the central "
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
                raise ArchiveHeaderMismatch(f"The local header of {quoted(entry.name)} disagrees with the central "
                                            "directory about its size or checksum. Rebuild the archive.")
        start = entry.offset + _LOCAL.size + name_length + extra_length
        end = start + entry.compressed
        if end > next_offset:
            raise ArchiveBomb(f"The member {quoted(entry.name)} overlaps the next one, a zip-bomb technique. "
                              "Rebuild the archive.")
        sink = self.scan.sink_for(entry.path) if entry.path is not None else MemberSink(0)
        self._inflate(entry, start, sink)
        gap = next_offset - end
        if flags & 0x0008:
            if gap > 24:
                raise ArchiveUnsupported(f"{gap} bytes after the member {quoted(entry.name)} belong to no member, "
                                         "which can hide data. Rebuild the archive.")
            descriptor = self._read_at(end, gap)
            body = descriptor[4:] if descriptor[:4] == b"PK\x07\x08" else descriptor
            if len(body) not in (12, 20) or body[:4] != entry.crc.to_bytes(4, "little"):
                raise ArchiveUnsupported(f"The bytes after {quoted(entry.name)} are not its data descriptor, "
                                         "which can hide data. Rebuild the archive.")
        elif gap:
            raise ArchiveUnsupported(f"{gap} bytes after the member {quoted(entry.name)} belong to no member, "
                                     "which can hide data. Rebuild the archive.")
        return sink

    def _inflate(self, entry: _ZipEntry, start: int, sink: MemberSink) -> None:
        self.file.seek(start)
        remaining = entry.compressed
        inflater = zlib.decompressobj(-zlib.MAX_WBITS) if entry.method == 8 else None

        def emit(data: bytes) -> None:
            if not data:
                return
            self.scan.produce(len(data))
            sink.feed(data)
            if sink.size > entry.size:
                raise ArchiveBomb(f"The member {quoted(entry.name)} unpacks to more than the {entry.size:,} bytes the "
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
                    raise ArchiveCorrupt(f"The compressed data of {quoted(entry.name)} continues past its end. "
                                         "Rebuild the archive.")
                try:
                    emit(inflater.decompress(data, CHUNK))
                except zlib.error as error:
                    raise ArchiveCorrupt(f"The compressed data of {quoted(entry.name)} is damaged ({error}). "
                                         "Rebuild the archive.") from None
                data = inflater.unconsumed_tail
        if inflater is not None and (not inflater.eof or inflater.unused_data):
            raise ArchiveCorrupt(f"The compressed data of {quoted(entry.name)} does not end where the archive says. "
                                 "Rebuild the archive.")
        if sink.size != entry.size:
            raise ArchiveCorrupt(f"The member {quoted(entry.name)} unpacks to {sink.size:,} bytes, not the "
                                 f"{entry.size:,} the archive declares. Rebuild the archive.")
        if sink.crc != entry.crc:
            raise ArchiveCorrupt(f"The member {quoted(entry.name)} fails its CRC check: the archive is damaged. "
                                 "Upload it again.")

    def read_directory(self) -> int:
        """Read and check the end records and the central directory; the directory's offset."""
        total, cd_offset, cd_end = self._end_record()
        self._central_directory(total, cd_offset, cd_end)
        return cd_offset

    def scan_all(self) -> None:
        cd_offset = self.read_directory()
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
                raise ArchiveBomb(f"Two members share the data of {quoted(entry.name)}, a zip-bomb technique. "
                                  "Rebuild the archive.")
            sink = self._data(entry, next_offset)
            if entry.path is None:
                continue
            if entry.is_dir:
                self.scan.add(ArchiveMember(path=entry.path, size=0, is_dir=True, mode=entry.mode))
            else:
                self.scan.add(ArchiveMember(path=entry.path, size=sink.size, is_dir=False, mode=entry.mode,
                                            file_type=file_type_of(sink.head)))
                self.scan.took(entry.path, sink)
        # keep the central directory's order
        order = {entry.path: index for index, entry in enumerate(self.entries)}
        self.scan.members = dict(sorted(self.scan.members.items(), key=lambda item: order[item[0]]))

    def read_member(self, path: str, keep: int) -> bytes:
        """Up to ``keep`` bytes of one file member, after :meth:`read_directory`."""
        entry = next(e for e in self.entries if e.path == path)
        sink = MemberSink(keep)
        saved = self.scan.produced
        header = self._read_at(entry.offset, _LOCAL.size)
        name_length, extra_length = struct.unpack_from("<2H", header, 26)
        self._inflate(entry, entry.offset + _LOCAL.size + name_length + extra_length, sink)
        self.scan.produced = saved
        return bytes(sink.kept)
