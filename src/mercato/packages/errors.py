"""Why a package archive or its manifest is refused.

Every refusal is a :class:`PackageError`: a 4xx with a stable ``code`` (422 for content,
413 for an archive over the size limit), rendered as RFC 9457 by the one error handler.
``docs/packages.md`` lists the codes for publishers.
"""

from __future__ import annotations

from mercato.kit.errors import MercatoError


class PackageError(MercatoError):
    """Base for every package refusal; its ``detail`` says what was wrong and what to do."""

    status, code, title = 422, "package_invalid", "The package is not valid"


class PackageTooLarge(PackageError):
    status, code, title = 413, "package_too_large", "The package archive is too large"


class ArchiveUnsupported(PackageError):
    code, title = "archive_unsupported", "The file is not a supported package archive"


class ArchiveCorrupt(PackageError):
    code, title = "archive_corrupt", "The package archive is damaged"


class ArchiveEncrypted(PackageError):
    code, title = "archive_encrypted", "The package archive holds encrypted members"


class ArchiveUnsafePath(PackageError):
    code, title = "archive_unsafe_path", "A member of the package has an unsafe path"


class ArchiveLink(PackageError):
    code, title = "archive_link", "The package holds a link or special file"


class ArchiveDuplicateMember(PackageError):
    code, title = "archive_duplicate_member", "The package holds the same path twice"


class ArchiveTooManyMembers(PackageError):
    code, title = "archive_too_many_members", "The package holds too many files and folders"


class ArchiveBomb(PackageError):
    code, title = "archive_bomb", "The package unpacks to too much data"


class ArchiveHeaderMismatch(PackageError):
    code, title = "archive_header_mismatch", "The archive's headers contradict each other"


class ManifestMissing(PackageError):
    code, title = "manifest_missing", "The package has no mercato.toml at its root"


class ManifestInvalid(PackageError):
    """``errors`` holds one ``{"loc", "msg", "type"}`` item per problem."""

    code, title = "manifest_invalid", "The package manifest is not valid"


class LaunchEntryMissing(ManifestInvalid):
    """``[launch] entry`` names no file of the archive: every install would fail to open it."""

    code, title = "launch_entry_missing", "The launch entry is not a file in the package"


class ChecksumMismatch(PackageError):
    code, title = "checksum_mismatch", "The archive's SHA-256 is not the one declared"


class PackageSourceInvalid(PackageError):
    """``mercato package build``: the source folder can't be packed as it is."""

    code, title = "package_source_invalid", "The package folder can't be packed"


class PackageDirectoryExists(PackageError):
    """``mercato package init``: the target folder already holds files."""

    status, code, title = 409, "package_directory_exists", "The folder already exists and is not empty"


ALL_PACKAGE_ERRORS: tuple[type[PackageError], ...] = (
    PackageTooLarge, ArchiveUnsupported, ArchiveCorrupt, ArchiveEncrypted, ArchiveUnsafePath, ArchiveLink,
    ArchiveDuplicateMember, ArchiveTooManyMembers, ArchiveBomb, ArchiveHeaderMismatch, ManifestMissing,
    ManifestInvalid, ChecksumMismatch,
)
"""What an upload can be refused with (for ``responses=`` in OpenAPI)."""
