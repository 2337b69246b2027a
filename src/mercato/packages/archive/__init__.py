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

The package, by job: ``policy.py`` (limits, member names, what one pass has seen),
``gzip_stream.py`` and ``tar.py`` (a ``.tar.gz``), ``zip.py``, ``detect.py`` (the format,
by content) and ``inspection.py`` (the entry points, exported here).
"""

from mercato.packages.archive.inspection import (
    InspectedArchive,
    ScannedArchive,
    inspect_archive,
    scan_archive,
    sha256_of,
)
from mercato.packages.archive.policy import ArchiveMember, PackageLimits

__all__ = ["ArchiveMember", "InspectedArchive", "PackageLimits", "ScannedArchive", "inspect_archive", "scan_archive",
           "sha256_of"]
