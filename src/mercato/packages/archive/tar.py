"""Reading the tar inside a ``.tar.gz``: ustar and pax headers, checked block by block.

:class:`TarScanner` reads the decompressed stream once, front to back: header checksums,
pax and GNU extended headers (a name, link or size set twice is refused, since tar tools
resolve that differently), links and special files refused, every member handed to the
scan, and nothing but zeros after the end-of-archive marker.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

from mercato.packages.archive.gzip_stream import GzipStream
from mercato.packages.archive.policy import (
    CHUNK,
    ArchiveMember,
    MemberSink,
    MiB,
    Scan,
    decode_name,
    file_type_of,
    human_size,
    quoted,
)
from mercato.packages.errors import (
    ArchiveCorrupt,
    ArchiveLink,
    ArchiveUnsupported,
)

MAX_PAX_BYTES = 1 * MiB
MAX_EXTENSION_RUN = 4
MAX_GLOBAL_HEADERS = 8

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


class TarScanner:
    """One tar stream read through; with ``stop_at``, only as far as that member (a second pass)."""

    def __init__(self, file: BinaryIO, scan: Scan, *, stop_at: str | None = None) -> None:
        self.stream = GzipStream(file, scan)
        self.scan = scan
        self.stop_at = stop_at
        self.first = True

    def _read_data(self, size: int, sink: MemberSink | None) -> None:
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
            raise ArchiveUnsupported(f"A tar {what} is larger than {human_size(MAX_PAX_BYTES)}. Rebuild the archive.")
        sink = MemberSink(size)
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
        name = decode_name(header["name"])
        if kind in (b"1", b"2"):
            link = decode_name(header["linkname"]) if header["linkname"] else ""
            what = "a hard link" if kind == b"1" else "a symbolic link"
            raise ArchiveLink(f"The member {quoted(name)} is {what} (to {quoted(link)}). Packages can't hold links: "
                              "ship a copy of the file instead.")
        if kind in (b"3", b"4", b"6"):
            what = {b"3": "a character device", b"4": "a block device", b"6": "a FIFO"}[kind]
            raise ArchiveLink(f"The member {quoted(name)} is {what}. Packages hold only files and folders.")
        is_dir = kind == b"5" or (kind == b"\0" and name.endswith("/"))
        if not is_dir and kind not in (b"0", b"\0", b"7"):
            raise ArchiveUnsupported(f"The member {quoted(name)} has the tar type {kind!r}, which packages don't "
                                     "support (only files and folders). Rebuild the archive.")
        if is_dir and size:
            raise ArchiveCorrupt(f"The folder {quoted(name)} has content in the tar archive. Rebuild it.")
        path = self.scan.admit(name, is_dir=is_dir)
        if path is None:
            return False
        if is_dir:
            self.scan.add(ArchiveMember(path=path, size=0, is_dir=True, mode=header["mode"]))
            return False
        sink = self.scan.sink_for(path)
        self._read_data(size, sink)
        self.scan.add(ArchiveMember(path=path, size=size, is_dir=False, mode=header["mode"],
                                    file_type=file_type_of(sink.head)))
        self.scan.took(path, sink)
        return path == self.stop_at
