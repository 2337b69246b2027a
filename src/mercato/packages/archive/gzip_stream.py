"""The gzip layer of a ``.tar.gz``: one clean gzip stream, decompressed as it is read.

:func:`check_gzip_header` refuses headers that can hide data; :class:`GzipStream` hands
the tar reader decompressed bytes, counting each one with the scan (so a bomb stops at
the limit), and refuses trailing data or a second gzip member.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO

from mercato.packages.archive.policy import CHUNK, Scan
from mercato.packages.errors import ArchiveCorrupt, ArchiveUnsupported


def check_gzip_header(head: bytes) -> None:
    """Refuse a gzip header that is not deflate, or carries extra fields or a comment."""
    if len(head) < 10 or head[2] != 8:
        raise ArchiveUnsupported("The gzip file does not use deflate compression. Rebuild it as .tar.gz.")
    flags = head[3]
    if flags & 0xE0:
        raise ArchiveCorrupt("The gzip header has reserved flags set. Rebuild the archive.")
    if flags & 0x14:  # FEXTRA, FCOMMENT
        raise ArchiveUnsupported("The gzip header carries extra fields or a comment, which can hide data. "
                                 "Rebuild it (mercato package build).")


class GzipStream:
    """Decompressed bytes of a single-member gzip file, counted by the scan as they appear."""

    def __init__(self, file: BinaryIO, scan: Scan) -> None:
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
