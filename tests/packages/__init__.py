"""Builders for package archives, valid and hostile, written with raw bytes where needed."""

from __future__ import annotations

import gzip
import io
import stat
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

MANIFEST = """\
[package]
name = "hello-notes"
version = "1.4.0"
kind = "app"
summary = "Notes that sync."
license = "MIT"
homepage = "https://example.org/hello-notes"
changelog = "CHANGELOG.md"

[compatibility]
host = ">=2.0.0, <3.0.0"
platforms = ["linux-x64", "linux-arm64"]

[requirements]
memory_mb = 256
disk_mb = 40

[permissions]
network = ["api.example.org:443"]
filesystem = ["data"]
notifications = true

[dependencies]
"notes-sync-plugin" = ">=1.0.0, <2.0.0"

[config]
schema = { type = "object", required = ["workspace"], properties = { workspace = { type = "string", minLength = 1 }, \
theme = { type = "string", enum = ["light", "dark"], default = "light" } } }

[launch]
entry = "bin/hello-notes"
"""

SCRIPT = b"#!/bin/sh\necho hello\n"
CHANGELOG = b"# Changelog\n\n## 1.4.0\n\n- Sync.\n"


def valid_files() -> dict[str, bytes]:
    return {"mercato.toml": MANIFEST.encode(), "CHANGELOG.md": CHANGELOG, "bin/hello-notes": SCRIPT}


# --- tar.gz ------------------------------------------------------------------------------

@dataclass
class TarEntry:
    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    mode: int = 0o644
    linkname: str = ""


def tar_bytes(entries: list[TarEntry], *, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type, info.mode, info.linkname = entry.type, entry.mode, entry.linkname
            info.size = len(entry.data) if entry.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
            tar.addfile(info, io.BytesIO(entry.data) if info.size else None)
    return out.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def files_tar_gz(files: dict[str, bytes], *, mode: int = 0o644) -> bytes:
    entries = [TarEntry(name, data, mode=0o755 if name.startswith("bin/") else mode) for name, data in files.items()]
    return gz(tar_bytes(entries))


def raw_tar_header(name: bytes, *, size: int = 0, type_: bytes = b"0", mode: int = 0o644,
                   linkname: bytes = b"", magic: bytes = b"ustar\x0000") -> bytes:
    """A tar header block with any bytes in its name (no validation), checksum fixed up."""
    block = bytearray(512)
    block[0:len(name[:100])] = name[:100]
    block[100:108] = b"%07o\0" % mode
    block[108:116] = b"%07o\0" % 0
    block[116:124] = b"%07o\0" % 0
    block[124:136] = b"%011o\0" % size
    block[136:148] = b"%011o\0" % 0
    block[156:157] = type_
    block[157:157 + len(linkname)] = linkname
    block[257:265] = magic
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def raw_tar(members: list[tuple[bytes, bytes]], *, type_: bytes = b"0") -> bytes:
    """A tar (uncompressed) of (raw name, data) pairs, ended properly."""
    out = bytearray()
    for name, data in members:
        out += raw_tar_header(name, size=len(data), type_=type_)
        out += data + bytes(-len(data) % 512)
    return bytes(out + bytes(1024))


# --- zip ---------------------------------------------------------------------------------

@dataclass
class ZipEntry:
    name: bytes
    data: bytes = b""
    method: int = 8
    flags: int = 0
    made_by: int = 3 << 8 | 20
    external_attr: int = (stat.S_IFREG | 0o644) << 16
    local_name: bytes | None = None     # a different name in the local header
    declared_size: int | None = None    # a lie in the central directory
    local_flags: int | None = None
    comment: bytes = b""
    crc: int | None = None
    utf8_flag: bool | None = None       # None: set for non-ASCII names, as zip writers do


def zip_bytes(entries: list[ZipEntry], *, comment: bytes = b"", prepend: bytes = b"", append: bytes = b"",
              gap: bytes = b"", cd_gap: bytes = b"") -> bytes:
    """A zip written field by field, so any field can lie."""
    out = bytearray(prepend)
    central = bytearray()
    for entry in entries:
        if entry.method == 8:
            compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
            packed = compressor.compress(entry.data) + compressor.flush()
        else:
            packed = entry.data
        crc = entry.crc if entry.crc is not None else zlib.crc32(entry.data)
        size = entry.declared_size if entry.declared_size is not None else len(entry.data)
        utf8 = not entry.name.isascii() if entry.utf8_flag is None else entry.utf8_flag
        flags = entry.flags | (0x800 if utf8 else 0)
        local_name = entry.local_name if entry.local_name is not None else entry.name
        local_flags = entry.local_flags if entry.local_flags is not None else flags
        offset = len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, local_flags, entry.method, 0, 0x21, crc, len(packed),
                           size, len(local_name), 0)
        out += local_name + packed + gap
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", entry.made_by, 20, flags, entry.method, 0, 0x21, crc,
                               len(packed), size, len(entry.name), 0, len(entry.comment), 0, 0,
                               entry.external_attr, offset)
        central += entry.name + entry.comment
    cd_offset = len(out)
    out += central + cd_gap
    out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central) + len(cd_gap),
                       cd_offset, len(comment))
    out += comment + append
    return bytes(out)


def files_zip(files: dict[str, bytes]) -> bytes:
    entries = []
    for name, data in files.items():
        mode = 0o755 if name.startswith("bin/") else 0o644
        entries.append(ZipEntry(name.encode(), data, external_attr=(stat.S_IFREG | mode) << 16))
    return zip_bytes(entries)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
