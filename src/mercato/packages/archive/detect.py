"""Telling an archive's format by its content (magic bytes), never by its file name.

Only a zip or a gzip-compressed tar passes; polyglots (a zip that also looks like a tar,
a gzip file that also ends like a zip, bytes before a zip) are refused, and a known
other format is named in the refusal.
"""

from __future__ import annotations

from typing import BinaryIO, Literal

from mercato.packages.archive.gzip_stream import check_gzip_header
from mercato.packages.archive.zip import zip_end_hidden_in
from mercato.packages.errors import ArchiveUnsupported

ArchiveFormat = Literal["zip", "tar.gz"]


def detect_format(file: BinaryIO, size: int) -> ArchiveFormat:
    """The format of the ``size`` bytes in ``file``, from its first and last bytes; else refused."""
    file.seek(0)
    head = file.read(512)
    file.seek(max(0, size - 22 - 65535))
    tail = file.read()
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        if head[257:262] == b"ustar":
            raise ArchiveUnsupported("The file is both a zip and a tar archive (a polyglot). Rebuild the archive.")
        return "zip"
    if head[:2] == b"\x1f\x8b":
        check_gzip_header(head)
        if zip_end_hidden_in(tail):
            raise ArchiveUnsupported("The file is a gzip stream that also ends like a zip archive (a polyglot). "
                                     "Rebuild the archive.")
        return "tar.gz"
    if zip_end_hidden_in(tail) or b"PK\x05\x06" in tail[-22:-18]:
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
