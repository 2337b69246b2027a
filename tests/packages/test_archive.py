"""QUALITY I3-I5: hostile archives are refused with a code, and nothing is ever written."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import stat
import struct
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from mercato.config import Settings
from mercato.packages.archive import PackageLimits, inspect_archive, sha256_of
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
    ManifestInvalid,
    ManifestMissing,
    PackageError,
    PackageTooLarge,
)
from tests.packages import (
    CHANGELOG,
    MANIFEST,
    TarEntry,
    ZipEntry,
    files_tar_gz,
    files_zip,
    gz,
    raw_tar,
    raw_tar_header,
    tar_bytes,
    valid_files,
    write,
    zip_bytes,
)

MiB = 1024 * 1024


def with_files(**extra: bytes) -> dict[str, bytes]:
    files = valid_files()
    files.update({name.replace("__", "/"): data for name, data in extra.items()})
    return files


def tar_with(*entries: TarEntry) -> bytes:
    base = [TarEntry(name, data, mode=0o755 if name.startswith("bin/") else 0o644)
            for name, data in valid_files().items()]
    return gz(tar_bytes([*base, *entries]))


def zip_with(*entries: ZipEntry) -> bytes:
    base = [ZipEntry(name.encode(), data) for name, data in valid_files().items()]
    return zip_bytes([*base, *entries])


@functools.cache
def deflate_zeros(total: int) -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    chunk = bytes(MiB)
    parts = [compressor.compress(chunk) for _ in range(total // MiB)]
    return b"".join(parts) + compressor.flush()


def zip_bomb(total: int, *, declared: int | None = None) -> bytes:
    """The valid files plus ``total`` zeros in one deflated member (compressed once, cheaply)."""
    files = [ZipEntry(name.encode(), data) for name, data in valid_files().items()]
    body = zip_bytes(files)
    cd_start, end_start = body.index(b"PK\x01\x02"), body.rindex(b"PK\x05\x06")
    members, central = bytearray(body[:cd_start]), bytearray(body[cd_start:end_start])
    packed, name, chunk, crc = deflate_zeros(total), b"data/zeros.bin", bytes(MiB), 0
    for _ in range(total // MiB):
        crc = zlib.crc32(chunk, crc)
    size = declared if declared is not None else total
    offset = len(members)
    members += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(packed), size, len(name), 0)
    members += name + packed
    central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 3 << 8 | 20, 20, 0, 8, 0, 0x21, crc, len(packed), size,
                           len(name), 0, 0, 0, 0, (stat.S_IFREG | 0o644) << 16, offset)
    central += name
    count = len(files) + 1
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central), len(members), 0)
    return bytes(members + central + end)


@functools.cache
def tar_gz_bomb(total: int) -> bytes:
    header = raw_tar_header(b"data/zeros.bin", size=total)
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    parts = [compressor.compress(raw_tar([(n.encode(), d) for n, d in valid_files().items()])[:-1024])]
    parts.append(compressor.compress(header))
    chunk = bytes(MiB)
    parts.extend(compressor.compress(chunk) for _ in range(total // MiB))
    parts.append(compressor.compress(bytes(1024)))
    return b"".join(parts) + compressor.flush()


def many_members_zip(count: int) -> bytes:
    entries = [ZipEntry(name.encode(), data) for name, data in valid_files().items()]
    entries += [ZipEntry(f"data/f{i}".encode(), b"", method=0) for i in range(count - len(entries))]
    return zip_bytes(entries)


def many_members_tar_gz(count: int) -> bytes:
    members = [(name.encode(), data) for name, data in valid_files().items()]
    members += [(f"data/f{i}".encode(), b"") for i in range(count - len(members))]
    return gz(raw_tar(members))


def symlink_zip() -> bytes:
    return zip_with(ZipEntry(b"bin/link", b"/etc/passwd", method=0, external_attr=(stat.S_IFLNK | 0o777) << 16))


def zip_also_tar() -> bytes:
    """A zip whose first member's name puts "ustar" where a tar header has its magic (offset 257)."""
    first = ZipEntry(b"x" * 227 + b"ustar", b"x")
    return zip_bytes([first, *[ZipEntry(n.encode(), d) for n, d in valid_files().items()]])


# (id, archive bytes, expected error, limits)
SMALL = PackageLimits(max_members=50, bomb_threshold_bytes=64 * 1024, max_ratio=50, max_unpacked_bytes=8 * MiB)
Case = tuple[str, Callable[[], bytes], type[PackageError], PackageLimits | None]
HOSTILE: list[Case] = [
    # path traversal and unsafe names, both formats
    ("tar-traversal", lambda: tar_with(TarEntry("../evil.txt", b"x")), ArchiveUnsafePath, None),
    ("tar-deep-traversal", lambda: tar_with(TarEntry("data/../../evil.txt", b"x")), ArchiveUnsafePath, None),
    ("tar-absolute", lambda: tar_with(TarEntry("/tmp/evil.txt", b"x")), ArchiveUnsafePath, None),
    ("tar-drive-letter", lambda: tar_with(TarEntry("C:/evil.txt", b"x")), ArchiveUnsafePath, None),
    ("tar-drive-relative", lambda: tar_with(TarEntry("C:evil.txt", b"x")), ArchiveUnsafePath, None),
    ("tar-backslash", lambda: tar_with(TarEntry("data\\..\\..\\evil.txt", b"x")), ArchiveUnsafePath, None),
    ("tar-control-char", lambda: tar_with(TarEntry("data/a\x1bb.txt", b"x")), ArchiveUnsafePath, None),
    ("tar-newline", lambda: tar_with(TarEntry("data/a\nb.txt", b"x")), ArchiveUnsafePath, None),
    ("tar-nul-in-pax-path", lambda: tar_with(TarEntry("data/a\x00b.txt" + "é", b"x")), ArchiveUnsafePath, None),
    ("tar-bidi-override", lambda: tar_with(TarEntry("data/\u202etxt.exe", b"x")), ArchiveUnsafePath, None),
    ("tar-zero-width", lambda: tar_with(TarEntry("bin/hello\u200b-notes", b"x")), ArchiveUnsafePath, None),
    ("tar-fullwidth-traversal", lambda: tar_with(TarEntry("\uff0e\uff0e\uff0fevil.txt", b"x")), ArchiveUnsafePath,
     None),
    ("tar-fullwidth-slash", lambda: tar_with(TarEntry("data\uff0fx.txt", b"x")), ArchiveUnsafePath, None),
    ("tar-dot-leader", lambda: tar_with(TarEntry("data/\u2025/evil.txt", b"x")), ArchiveUnsafePath, None),
    ("tar-empty-segment", lambda: tar_with(TarEntry("data//x.txt", b"x")), ArchiveUnsafePath, None),
    ("tar-dot-segment", lambda: tar_with(TarEntry("data/./x.txt", b"x")), ArchiveUnsafePath, None),
    ("tar-trailing-dot", lambda: tar_with(TarEntry("data/x.", b"x")), ArchiveUnsafePath, None),
    ("tar-not-utf8", lambda: gz(raw_tar([(b"mercato.toml", MANIFEST.encode()), (b"data/\xff\xfe.txt", b"x")])),
     ArchiveUnsafePath, None),
    ("tar-gnu-longname-traversal", lambda: gz(tar_bytes(
        [TarEntry("../" + "a" * 120, b"x"), *[TarEntry(n, d) for n, d in valid_files().items()]],
        fmt=tarfile.GNU_FORMAT)), ArchiveUnsafePath, None),
    ("tar-pax-path-traversal", lambda: tar_with(TarEntry("data/" + "é" * 80 + "/../../../evil", b"x")),
     ArchiveUnsafePath, None),
    ("zip-traversal", lambda: zip_with(ZipEntry(b"../evil.txt", b"x")), ArchiveUnsafePath, None),
    ("zip-absolute", lambda: zip_with(ZipEntry(b"/etc/evil", b"x")), ArchiveUnsafePath, None),
    ("zip-drive-letter", lambda: zip_with(ZipEntry(b"C:\\Windows\\evil.dll", b"x")), ArchiveUnsafePath, None),
    ("zip-backslash", lambda: zip_with(ZipEntry(b"..\\evil.txt", b"x")), ArchiveUnsafePath, None),
    ("zip-nul", lambda: zip_with(ZipEntry(b"data/evil.txt\x00.md", b"x")), ArchiveUnsafePath, None),
    ("zip-control-char", lambda: zip_with(ZipEntry(b"data/\x07bell", b"x")), ArchiveUnsafePath, None),
    ("zip-non-ascii-without-utf8-flag", lambda: zip_with(ZipEntry("data/café.txt".encode(), b"x", utf8_flag=False)),
     ArchiveUnsafePath, None),
    ("zip-bad-utf8", lambda: zip_with(ZipEntry(b"data/\xc3\x28.txt", b"x", flags=0x800)), ArchiveUnsafePath, None),
    ("zip-fullwidth-traversal", lambda: zip_with(ZipEntry("．．／evil".encode(), b"x")), ArchiveUnsafePath, None),
    # links and special files
    ("tar-symlink", lambda: tar_with(TarEntry("bin/link", type=tarfile.SYMTYPE, linkname="/etc/passwd")),
     ArchiveLink, None),
    ("tar-symlink-relative", lambda: tar_with(TarEntry("data/up", type=tarfile.SYMTYPE, linkname="../..")),
     ArchiveLink, None),
    ("tar-hardlink", lambda: tar_with(TarEntry("data/hard", type=tarfile.LNKTYPE, linkname="mercato.toml")),
     ArchiveLink, None),
    ("tar-char-device", lambda: tar_with(TarEntry("data/tty", type=tarfile.CHRTYPE)), ArchiveLink, None),
    ("tar-block-device", lambda: tar_with(TarEntry("data/sda", type=tarfile.BLKTYPE)), ArchiveLink, None),
    ("tar-fifo", lambda: tar_with(TarEntry("data/pipe", type=tarfile.FIFOTYPE)), ArchiveLink, None),
    ("zip-symlink", symlink_zip, ArchiveLink, None),
    ("zip-fifo", lambda: zip_with(ZipEntry(b"data/pipe", b"", method=0, external_attr=(stat.S_IFIFO | 0o644) << 16)),
     ArchiveLink, None),
    # duplicates
    ("tar-duplicate", lambda: tar_with(TarEntry("mercato.toml", MANIFEST.encode())), ArchiveDuplicateMember, None),
    ("tar-duplicate-case", lambda: tar_with(TarEntry("changelog.md", b"x")), ArchiveDuplicateMember, None),
    ("tar-duplicate-dot-slash", lambda: tar_with(TarEntry("./CHANGELOG.md", b"x")), ArchiveDuplicateMember, None),
    ("tar-duplicate-nfkc", lambda: tar_with(TarEntry("ＣＨＡＮＧＥＬＯＧ.md", b"x")), ArchiveDuplicateMember, None),
    ("tar-duplicate-composed", lambda: tar_with(TarEntry("data/caf\u00e9", b"x"), TarEntry("data/cafe\u0301", b"y")),
     ArchiveDuplicateMember, None),
    ("tar-file-and-folder", lambda: tar_with(TarEntry("bin/hello-notes/x", b"x")), ArchiveDuplicateMember, None),
    ("zip-duplicate", lambda: zip_with(ZipEntry(b"bin/hello-notes", b"other")), ArchiveDuplicateMember, None),
    ("zip-duplicate-case", lambda: zip_with(ZipEntry(b"MERCATO.TOML", b"x")), ArchiveDuplicateMember, None),
    ("zip-duplicate-dir", lambda: zip_with(ZipEntry(b"data/", method=0, external_attr=(stat.S_IFDIR | 0o755) << 16),
                                           ZipEntry(b"DATA/", method=0, external_attr=(stat.S_IFDIR | 0o755) << 16)),
     ArchiveDuplicateMember, None),
    # bombs and limits
    ("zip-bomb", lambda: zip_bomb(70 * MiB), ArchiveBomb, None),
    ("zip-bomb-lying-central-directory", lambda: zip_bomb(70 * MiB, declared=1000), ArchiveBomb, None),
    ("zip-lying-size-small", lambda: zip_with(ZipEntry(b"data/x.bin", bytes(5000), declared_size=100)), ArchiveBomb,
     None),
    ("zip-lying-size-large", lambda: zip_with(ZipEntry(b"data/x.bin", bytes(100), declared_size=5000)),
     ArchiveCorrupt, None),
    ("tar-gz-bomb", lambda: tar_gz_bomb(70 * MiB), ArchiveBomb, None),
    ("zip-over-unpacked-limit", lambda: zip_with(ZipEntry(b"data/big.bin", os.urandom(9 * MiB), method=0)),
     ArchiveBomb, SMALL),
    ("zip-ratio-small-limits", lambda: zip_with(ZipEntry(b"data/zeros.bin", bytes(2 * MiB))), ArchiveBomb, SMALL),
    ("tar-ratio-small-limits", lambda: tar_with(TarEntry("data/zeros.bin", bytes(2 * MiB))), ArchiveBomb, SMALL),
    ("zip-too-many-members", lambda: many_members_zip(51), ArchiveTooManyMembers, SMALL),
    ("tar-too-many-members", lambda: many_members_tar_gz(51), ArchiveTooManyMembers, SMALL),
    ("zip-10001-members", lambda: many_members_zip(10_001), ArchiveTooManyMembers, None),
    ("tar-10001-members", lambda: many_members_tar_gz(10_001), ArchiveTooManyMembers, None),
    # polyglots and hidden data
    ("zip-prepended", lambda: b"MZ\x90\x00fake program" + zip_with(), ArchiveUnsupported, None),
    ("zip-prepended-local-header", lambda: zip_with()[:200] + zip_with(), ArchiveUnsupported, None),
    ("zip-appended", lambda: zip_with() + b"appended payload", ArchiveUnsupported, None),
    ("zip-comment", lambda: zip_bytes([ZipEntry(n.encode(), d) for n, d in valid_files().items()],
                                      comment=b"hidden data"), ArchiveUnsupported, None),
    ("zip-member-comment", lambda: zip_with(ZipEntry(b"data/x", b"x", comment=b"hidden")), ArchiveUnsupported, None),
    ("zip-gap-between-members", lambda: zip_bytes([ZipEntry(n.encode(), d) for n, d in valid_files().items()],
                                                  gap=b"hidden"), ArchiveUnsupported, None),
    ("zip-bytes-before-end-record", lambda: zip_bytes([ZipEntry(n.encode(), d) for n, d in valid_files().items()],
                                                      cd_gap=b"hidden"), ArchiveUnsupported, None),
    ("zip-also-tar", zip_also_tar, ArchiveUnsupported, None),
    ("gzip-trailing-garbage", lambda: files_tar_gz(valid_files()) + b"garbage", ArchiveUnsupported, None),
    ("gzip-concatenated", lambda: files_tar_gz(valid_files()) + gz(b"second member"), ArchiveUnsupported, None),
    ("gzip-then-zip", lambda: files_tar_gz(valid_files()) + zip_with(), ArchiveUnsupported, None),
    ("gzip-comment-header", lambda: b"\x1f\x8b\x08\x10" + files_tar_gz(valid_files())[4:10] + b"hidden\x00"
     + files_tar_gz(valid_files())[10:], ArchiveUnsupported, None),
    ("gzip-not-tar", lambda: gz(b"just some text, not a tar archive" * 40), ArchiveUnsupported, None),
    ("gzip-v7-tar", lambda: gz(raw_tar_header(b"mercato.toml", size=0, magic=bytes(8)) + bytes(1024)),
     ArchiveUnsupported, None),
    ("tar-data-after-end", lambda: gz(raw_tar([(b"mercato.toml", MANIFEST.encode())]) + b"hidden"),
     ArchiveUnsupported, None),
    ("plain-tar", lambda: raw_tar([(b"mercato.toml", MANIFEST.encode())]), ArchiveUnsupported, None),
    ("not-an-archive", lambda: b"#!/bin/sh\nrm -rf /\n", ArchiveUnsupported, None),
    ("bzip2", lambda: b"BZh91AY&SY" + bytes(100), ArchiveUnsupported, None),
    ("empty-file", lambda: b"", ArchiveUnsupported, None),
    ("tar-sparse-type", lambda: tar_with(TarEntry("data/sparse", type=tarfile.GNUTYPE_SPARSE)), ArchiveUnsupported,
     None),
    # header mismatch and encryption
    ("zip-local-name-mismatch", lambda: zip_with(ZipEntry(b"data/safe.txt", b"x", local_name=b"../evil.txt")),
     ArchiveHeaderMismatch, None),
    ("zip-local-name-mismatch-same-length", lambda: zip_with(ZipEntry(b"data/a.txt", b"x", local_name=b"data/b.txt")),
     ArchiveHeaderMismatch, None),
    ("zip-local-flags-mismatch", lambda: zip_with(ZipEntry(b"data/a.txt", b"x", local_flags=0x1)),
     ArchiveHeaderMismatch, None),
    ("zip-encrypted", lambda: zip_with(ZipEntry(b"data/secret.txt", b"x", flags=0x1)), ArchiveEncrypted, None),
    ("zip-aes", lambda: zip_with(ZipEntry(b"data/secret.txt", b"x", method=99)), ArchiveEncrypted, None),
    # corruption
    ("zip-truncated", lambda: zip_with()[:-30], ArchiveCorrupt, None),
    ("zip-bad-crc", lambda: zip_with(ZipEntry(b"data/x.txt", b"hello", crc=1234)), ArchiveCorrupt, None),
    ("tar-gz-truncated", lambda: files_tar_gz(valid_files())[:-40], ArchiveCorrupt, None),
    ("tar-bad-header-checksum", lambda: gz(raw_tar([(b"mercato.toml", MANIFEST.encode())])[:-1024]
                                           + raw_tar_header(b"data/x")[:148] + b"0000000\x00"
                                           + raw_tar_header(b"data/x")[156:] + bytes(1024)), ArchiveCorrupt, None),
    # manifest
    ("manifest-missing", lambda: files_tar_gz({"README.md": b"hi"}), ManifestMissing, None),
    ("manifest-in-subfolder", lambda: files_zip({"hello-notes/" + n: d for n, d in valid_files().items()}),
     ManifestMissing, None),
    ("manifest-confusable-name", lambda: files_zip({"mercat\u043e.toml": MANIFEST.encode()}), ManifestMissing,
     None),
    ("manifest-uppercase", lambda: files_tar_gz({"Mercato.toml": MANIFEST.encode()}), ManifestMissing, None),
    ("manifest-invalid", lambda: files_tar_gz(with_files(**{"mercato.toml": b"[package]\nname = 'X'\n"})),
     ManifestInvalid, None),
    ("changelog-missing", lambda: files_tar_gz({"mercato.toml": MANIFEST.encode(), "bin/hello-notes": b"x"}),
     ManifestInvalid, None),
    ("empty-zip", lambda: zip_bytes([]), ManifestMissing, None),
]


def hostile_path(directory: Path, case: Case) -> Path:
    return write(directory / f"{case[0]}.pkg", case[1]())


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.mark.parametrize("case", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_archive_is_refused_with_its_code_and_nothing_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: Case) -> None:
    corpus, workdir, scratch = tmp_path / "corpus", tmp_path / "cwd", tmp_path / "scratch"
    for folder in (corpus, workdir, scratch):
        folder.mkdir()
    path = hostile_path(corpus, case)
    monkeypatch.chdir(workdir)  # a relative extraction would land here
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # and temporary files here
    monkeypatch.setenv("TMPDIR", str(scratch))
    before, beside = _snapshot(tmp_path), sorted(os.listdir(tmp_path.parent))
    with pytest.raises(PackageError) as caught:
        inspect_archive(path, limits=case[3] or PackageLimits())
    assert type(caught.value) is case[2], caught.value.detail
    assert caught.value.code == case[2].code
    assert 400 <= caught.value.status < 500
    assert caught.value.detail and caught.value.detail != caught.value.title
    assert _snapshot(tmp_path) == before  # nothing written, nothing touched
    assert sorted(os.listdir(tmp_path.parent)) == beside  # nothing beside it either ("../evil")


# --- valid archives ----------------------------------------------------------------------

@pytest.mark.parametrize("build, fmt", [(files_tar_gz, "tar.gz"), (files_zip, "zip")])
def test_valid_archive_is_read_with_its_manifest_and_changelog(tmp_path: Path, build: Callable[..., bytes],
                                                                fmt: str) -> None:
    data = build(with_files(data__notes=b"n"))
    path = write(tmp_path / "upload.bin", data)
    inspected = inspect_archive(path, limits=PackageLimits(), declared_sha256=hashlib.sha256(data).hexdigest())
    assert inspected.format == fmt
    assert inspected.sha256 == hashlib.sha256(data).hexdigest() == sha256_of(path)
    assert inspected.size == len(data)
    assert inspected.manifest.name == "hello-notes" and inspected.manifest.version == "1.4.0"
    assert inspected.manifest_text == MANIFEST
    assert inspected.changelog == CHANGELOG.decode()
    assert {m.path for m in inspected.members} == {"mercato.toml", "CHANGELOG.md", "bin/hello-notes", "data/notes"}
    assert inspected.unpacked_size == sum(len(d) for d in with_files(data__notes=b"n").values())
    entry = inspected.member("bin/hello-notes")
    assert entry is not None and entry.mode == 0o755 and entry.file_type == "script"
    assert inspected.to_document()["members"]


def test_format_is_detected_by_content_not_by_name(tmp_path: Path) -> None:
    zipped = write(tmp_path / "package.tar.gz", files_zip(valid_files()))
    assert inspect_archive(zipped).format == "zip"
    fake = write(tmp_path / "package.zip", b"plain text pretending to be a zip")
    with pytest.raises(ArchiveUnsupported):
        inspect_archive(fake)


def test_gnu_tar_with_dot_slash_names_is_accepted(tmp_path: Path) -> None:
    entries = [TarEntry("./", type=tarfile.DIRTYPE, mode=0o755)]
    entries += [TarEntry("./" + name, data) for name, data in valid_files().items()]
    path = write(tmp_path / "p.tar.gz", gz(tar_bytes(entries, fmt=tarfile.GNU_FORMAT)))
    inspected = inspect_archive(path)
    assert sorted(m.path for m in inspected.members) == ["CHANGELOG.md", "bin/hello-notes", "mercato.toml"]


def test_changelog_before_the_manifest_is_still_read_from_a_tar(tmp_path: Path) -> None:
    files = valid_files()
    ordered = {"CHANGELOG.md": files["CHANGELOG.md"], "bin/hello-notes": files["bin/hello-notes"],
               "mercato.toml": files["mercato.toml"]}
    for build in (files_tar_gz, files_zip):
        inspected = inspect_archive(write(tmp_path / "p", build(ordered)))
        assert [m.path for m in inspected.members][0] == "CHANGELOG.md"
        assert inspected.changelog == CHANGELOG.decode()


def test_long_changelog_is_cut_at_the_cap(tmp_path: Path) -> None:
    long = b"".join(b"- change %d\n" % i for i in range(40_000))
    path = write(tmp_path / "p.zip", files_zip(with_files(**{"CHANGELOG.md": long})))
    inspected = inspect_archive(path, limits=PackageLimits(max_changelog_bytes=4096))
    assert inspected.changelog is not None
    assert len(inspected.changelog.encode()) < 4200 and inspected.changelog.endswith("[changelog truncated]\n")


def test_native_binaries_are_recognised_by_their_first_bytes(tmp_path: Path) -> None:
    path = write(tmp_path / "p.tar.gz", files_tar_gz(with_files(
        bin__elf=b"\x7fELF\x02\x01\x01" + bytes(100), bin__exe=b"MZ\x90\x00" + bytes(100),
        bin__macho=b"\xcf\xfa\xed\xfe" + bytes(100), data__class=b"\xca\xfe\xba\xbe\x00\x00\x00\x34")))
    types = {m.path: m.file_type for m in inspect_archive(path).members}
    assert types["bin/elf"] == "elf" and types["bin/exe"] == "pe" and types["bin/macho"] == "mach-o"
    assert types["data/class"] is None and types["CHANGELOG.md"] is None


def test_declared_checksum_must_match(tmp_path: Path) -> None:
    data = files_zip(valid_files())
    path = write(tmp_path / "p.zip", data)
    with pytest.raises(ChecksumMismatch) as caught:
        inspect_archive(path, declared_sha256="0" * 64)
    assert caught.value.code == "checksum_mismatch" and caught.value.status == 422
    with pytest.raises(ChecksumMismatch):
        inspect_archive(path, declared_sha256="not-a-digest")
    assert inspect_archive(path, declared_sha256=hashlib.sha256(data).hexdigest().upper()).sha256


def test_archive_over_the_size_limit_is_413(tmp_path: Path) -> None:
    path = write(tmp_path / "p.zip", files_zip(valid_files()))
    with pytest.raises(PackageTooLarge) as caught:
        inspect_archive(path, limits=PackageLimits(max_archive_bytes=100))
    assert caught.value.status == 413 and caught.value.code == "package_too_large"


def test_lying_central_directory_stops_decompression_at_the_declared_size(tmp_path: Path) -> None:
    path = write(tmp_path / "bomb.zip", zip_bomb(70 * MiB, declared=10))
    generous = PackageLimits(max_unpacked_bytes=4096 * MiB, bomb_threshold_bytes=4096 * MiB)
    with pytest.raises(ArchiveBomb) as caught:
        inspect_archive(path, limits=generous)  # no size limit is near: the member's own declaration stops it
    assert "more than the 10 bytes" in caught.value.detail


def test_bomb_threshold_and_ratio_come_from_limits(tmp_path: Path) -> None:
    path = write(tmp_path / "zeros.zip", zip_with(ZipEntry(b"data/zeros.bin", bytes(2 * MiB))))
    assert inspect_archive(path).unpacked_size > 2 * MiB  # under the default 64 MiB threshold
    with pytest.raises(ArchiveBomb):
        inspect_archive(path, limits=PackageLimits(bomb_threshold_bytes=MiB))
    assert inspect_archive(path, limits=PackageLimits(bomb_threshold_bytes=MiB, max_ratio=10_000)).members


def test_ten_thousand_members_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "many.zip", many_members_zip(10_000))
    assert len(inspect_archive(path).members) == 10_000


def test_limits_come_from_settings() -> None:
    settings = Settings(package_max_bytes=10, package_max_unpacked_bytes=20, package_max_members=30,
                        package_bomb_threshold_bytes=40, package_max_ratio=5.0)
    limits = PackageLimits.from_settings(settings)
    assert (limits.max_archive_bytes, limits.max_unpacked_bytes, limits.max_members, limits.bomb_threshold_bytes,
            limits.max_ratio) == (10, 20, 30, 40, 5.0)
    defaults = PackageLimits.from_settings(Settings())
    assert defaults.max_archive_bytes == 512 * MiB and defaults.max_unpacked_bytes == 2048 * MiB
    assert defaults.max_members == 10_000 and defaults.bomb_threshold_bytes == 64 * MiB and defaults.max_ratio == 50


def test_zip_written_by_the_standard_library_is_accepted(tmp_path: Path) -> None:
    import zipfile
    path = tmp_path / "std.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in valid_files().items():
            archive.writestr(name, data)
        archive.writestr("data/é.txt", b"accent")
    assert {m.path for m in inspect_archive(path).members} >= {"mercato.toml", "data/é.txt"}


def test_zip_with_data_descriptors_is_accepted(tmp_path: Path) -> None:
    import io
    import zipfile

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.buffer = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, data: bytes) -> int:  # type: ignore[override]
            self.buffer += data
            return len(data)

    sink = Unseekable()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in valid_files().items():
            archive.writestr(name, data)
    path = write(tmp_path / "streamed.zip", bytes(sink.buffer))
    assert inspect_archive(path).manifest.name == "hello-notes"


def test_refusal_messages_name_the_member(tmp_path: Path) -> None:
    path = write(tmp_path / "p.tar.gz", tar_with(TarEntry("../escape.txt", b"x")))
    with pytest.raises(ArchiveUnsafePath) as caught:
        inspect_archive(path)
    assert "../escape.txt" in caught.value.detail and "rebuild" in caught.value.detail.lower()


def test_manifest_in_a_subfolder_says_where_it_is(tmp_path: Path) -> None:
    path = write(tmp_path / "p.zip", files_zip({"hello-notes/" + n: d for n, d in valid_files().items()}))
    with pytest.raises(ManifestMissing) as caught:
        inspect_archive(path)
    assert "hello-notes/mercato.toml" in caught.value.detail


def test_missing_changelog_is_a_manifest_error_at_its_key(tmp_path: Path) -> None:
    path = write(tmp_path / "p.tar.gz", files_tar_gz({"mercato.toml": MANIFEST.encode(), "bin/hello-notes": b"x"}))
    with pytest.raises(ManifestInvalid) as caught:
        inspect_archive(path)
    assert caught.value.errors and caught.value.errors[0]["loc"] == ["package", "changelog"]


def as_zip64(data: bytes, *, classic_total: int | None = None) -> bytes:
    """The same zip with zip64 end records (and placeholders in the classic one, unless told otherwise)."""
    end = data.rindex(b"PK\x05\x06")
    _, _, _, _, total, cd_size, cd_offset, _ = struct.unpack("<4s4H2LH", data[end:end + 22])
    eocd64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, total, total, cd_size, cd_offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1)
    shown = 0xFFFF if classic_total is None else classic_total
    classic = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, shown, shown, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[:end] + eocd64 + locator + classic


def test_zip64_end_records_are_read(tmp_path: Path) -> None:
    path = write(tmp_path / "z64.zip", as_zip64(files_zip(valid_files())))
    assert inspect_archive(path).manifest.name == "hello-notes"


def test_zip64_end_record_disagreeing_with_the_classic_one_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "z64.zip", as_zip64(files_zip(valid_files()), classic_total=2))
    with pytest.raises(ArchiveHeaderMismatch):
        inspect_archive(path)


def test_zip64_local_headers_from_the_standard_library_are_read(tmp_path: Path) -> None:
    import zipfile
    path = tmp_path / "forced.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in valid_files().items():
            with archive.open(name, "w", force_zip64=True) as target:
                target.write(data)
    assert inspect_archive(path).changelog == CHANGELOG.decode()


# --- tar parser differentials (issue 11, item 1) ------------------------------------------

def _header_block(name: bytes, *, size: int = 0, type_: bytes = b"0", magic: bytes = b"ustar\x0000",
                  prefix: bytes = b"") -> bytes:
    """One tar header built byte by byte (any magic, any prefix), its checksum fixed up."""
    block = bytearray(raw_tar_header(name, size=size, type_=type_, magic=magic))
    block[345:345 + len(prefix)] = prefix
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _member(header: bytes, data: bytes) -> bytes:
    return header + data + bytes(-len(data) % 512)


def _pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length).encode()) + len(body) != length:
        length += 1
    return str(length).encode() + body


def _valid_members(magic: bytes = b"ustar\x0000") -> bytes:
    return b"".join(_member(_header_block(name.encode(), size=len(data), magic=magic), data)
                    for name, data in valid_files().items())


def _gnu_prefix() -> bytes:
    gnu = b"ustar  \x00"
    return _valid_members(gnu) + _member(_header_block(b"data/safe.txt", size=1, magic=gnu, prefix=b"../.."), b"x")


def _pax_then_longname() -> bytes:
    pax = _pax_record("path", b"../../evil.txt")
    longname = b"data/safe.txt\x00"
    return (_valid_members()
            + _member(_header_block(b"PaxHeader/safe", size=len(pax), type_=b"x"), pax)
            + _member(_header_block(b"././@LongLink", size=len(longname), type_=b"L"), longname)
            + _member(_header_block(b"data/safe.txt", size=1), b"x"))


def _longname_then_pax() -> bytes:
    pax = _pax_record("path", b"data/safe.txt")
    longname = b"../../evil.txt\x00"
    return (_valid_members()
            + _member(_header_block(b"././@LongLink", size=len(longname), type_=b"L"), longname)
            + _member(_header_block(b"PaxHeader/safe", size=len(pax), type_=b"x"), pax)
            + _member(_header_block(b"data/safe.txt", size=1), b"x"))


DIFFERENTIALS = [("gnu-magic-with-prefix", _gnu_prefix), ("pax-path-then-gnu-longname", _pax_then_longname),
                 ("gnu-longname-then-pax-path", _longname_then_pax)]


@pytest.mark.parametrize("build", [b for _, b in DIFFERENTIALS], ids=[i for i, _ in DIFFERENTIALS])
def test_tar_layouts_that_extractors_name_differently_are_refused(tmp_path: Path,
                                                                  build: Callable[[], bytes]) -> None:
    raw = build() + bytes(1024)
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:  # the hostile name is what tarfile would write
        assert any(name.startswith("../") for name in archive.getnames()), archive.getnames()
    path = write(tmp_path / "hostile.tar.gz", gz(raw))
    with pytest.raises(ArchiveUnsupported) as caught:
        inspect_archive(path)
    assert 400 <= caught.value.status < 500
    assert "tar" in caught.value.detail


def test_a_plain_gnu_tar_without_prefix_is_still_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "gnu.tar.gz", gz(_valid_members(b"ustar  \x00") + bytes(1024)))
    assert inspect_archive(path).member("mercato.toml") is not None
