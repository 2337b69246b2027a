"""The entry points: :func:`scan_archive` (every structural check) and :func:`inspect_archive`
(those, then ``mercato.toml``, its changelog and its launch entry).

Both read the archive file once for its digest and once through the format's reader;
neither writes anything.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from mercato.packages.archive.detect import ArchiveFormat, detect_format
from mercato.packages.archive.policy import ArchiveMember, MiB, PackageLimits, Scan, human_size, quoted
from mercato.packages.archive.tar import TarScanner
from mercato.packages.archive.zip import ZipScanner
from mercato.packages.errors import (
    ArchiveUnsupported,
    ChecksumMismatch,
    LaunchEntryMissing,
    ManifestInvalid,
    ManifestMissing,
    PackageTooLarge,
)
from mercato.packages.manifest import MANIFEST_NAME, Manifest, decode_manifest, parse_manifest


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


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, as 64 lowercase hex digits."""
    with path.open("rb") as file:
        return _sha256(file)


def _sha256(file: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := file.read(MiB):
        digest.update(chunk)
    return digest.hexdigest()


def _manifest_missing(members: dict[str, ArchiveMember]) -> ManifestMissing:
    elsewhere = sorted(m.path for m in members.values()
                       if m.path.rsplit("/", 1)[-1].lower() == MANIFEST_NAME and m.path != MANIFEST_NAME)
    if elsewhere and "/" not in elsewhere[0]:
        return ManifestMissing(f"The archive has {quoted(elsewhere[0])} at its root, but the manifest must be named "
                               "exactly mercato.toml (lowercase). Rename it and rebuild the archive.")
    if elsewhere:
        return ManifestMissing(f"mercato.toml must be at the root of the archive, but it is at {quoted(elsewhere[0])}. "
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
                scanner = ZipScanner(file, self.size, Scan(limits=self._limits, archive_size=self.size))
                scanner.read_directory()
                return scanner.read_member(path, keep)
            again = Scan(limits=self._limits, archive_size=self.size, wanted={path: keep})
            TarScanner(file, again, stop_at=path).scan_all()
            return again.captured.get(path, b"")


def scan_archive(path: Path, *, limits: PackageLimits, declared_sha256: str | None = None,
                 wanted: dict[str, int] | None = None) -> ScannedArchive:
    """Every check of the package docstring, without reading any manifest; never writes anything.
    ``wanted`` names members (path → bytes to keep) to capture on the way."""
    size = path.stat().st_size
    if size > limits.max_archive_bytes:
        raise PackageTooLarge(f"The archive is {human_size(size)}; packages may be at most "
                              f"{human_size(limits.max_archive_bytes)}. Make the package smaller.")
    if size == 0:
        raise ArchiveUnsupported("The file is empty. Upload a .zip or .tar.gz with mercato.toml at its root.")
    with path.open("rb") as file:
        digest = _sha256(file)
        if declared_sha256 is not None and _checked_digest(declared_sha256) != digest:
            raise ChecksumMismatch(f"The archive's SHA-256 is {digest}, not the {declared_sha256.strip()} declared: "
                                   "it changed on the way. Upload it again.")
        archive_format = detect_format(file, size)
        scan = Scan(limits=limits, archive_size=size, wanted=dict(wanted or {}))
        file.seek(0)
        if archive_format == "zip":
            ZipScanner(file, size, scan).scan_all()
        else:
            TarScanner(file, scan).scan_all()
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
                f"mercato.toml names the changelog {quoted(changelog_path)}, which is not a file in the archive. "
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
                f"mercato.toml's [launch] entry is {quoted(entry)}, which is not a file in the archive: every "
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
