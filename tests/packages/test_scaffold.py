"""mercato package init / build: a valid skeleton, reproducible archives, the server's validation."""

from __future__ import annotations

import hashlib
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from mercato.packages.archive import PackageLimits, inspect_archive
from mercato.packages.checks import run_checks
from mercato.packages.errors import (
    ArchiveTooManyMembers,
    ManifestInvalid,
    ManifestMissing,
    PackageDirectoryExists,
    PackageSourceInvalid,
)
from mercato.packages.manifest import parse_manifest
from mercato.packages.scaffold import build_package, init_package


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
@pytest.mark.parametrize("kind", ["app", "plugin", "game"])
def test_init_build_inspect_check_round_trip(tmp_path: Path, fmt: str, kind: str) -> None:
    source = init_package(tmp_path, "hello-notes", kind=kind)
    archive = build_package(source, fmt=fmt)  # type: ignore[arg-type]
    assert archive == source / "dist" / f"hello-notes-0.1.0.{fmt}"
    inspected = inspect_archive(archive)
    assert inspected.format == fmt and inspected.manifest.kind == kind
    assert inspected.manifest.version == "0.1.0" and inspected.changelog and "0.1.0" in inspected.changelog
    report = run_checks(inspected)
    assert report.passed and not [f for f in report.findings if f.severity != "info"]


def test_init_writes_a_valid_skeleton(tmp_path: Path) -> None:
    source = init_package(tmp_path, "hello-notes")
    assert sorted(p.relative_to(source).as_posix() for p in source.rglob("*")) == [
        "CHANGELOG.md", "README.md", "bin", "bin/hello-notes", "mercato.toml"]
    manifest = parse_manifest((source / "mercato.toml").read_bytes())
    assert manifest.name == "hello-notes" and manifest.version == "0.1.0"
    assert manifest.launch is not None and manifest.launch.entry == "bin/hello-notes"
    if os.name == "posix":
        assert (source / "bin/hello-notes").stat().st_mode & 0o111


def test_init_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "hello-notes").mkdir()
    (tmp_path / "hello-notes" / "keep.txt").write_text("mine")
    with pytest.raises(PackageDirectoryExists) as caught:
        init_package(tmp_path, "hello-notes")
    assert "not an empty folder" in caught.value.detail
    assert (tmp_path / "hello-notes" / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "hello-notes" / "mercato.toml").exists()


def test_init_accepts_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "hello-notes").mkdir()
    assert (init_package(tmp_path, "hello-notes") / "mercato.toml").is_file()


@pytest.mark.parametrize("name", ["Hello", "x", "-bad", "a_b", "../evil"])
def test_init_refuses_invalid_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(PackageSourceInvalid):
        init_package(tmp_path, name)
    assert list(tmp_path.iterdir()) == []


def test_init_refuses_an_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(PackageSourceInvalid):
        init_package(tmp_path, "hello-notes", kind="service")


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_build_is_reproducible(tmp_path: Path, fmt: str) -> None:
    source = init_package(tmp_path, "hello-notes")
    first = hashlib.sha256(build_package(source, fmt=fmt).read_bytes()).hexdigest()  # type: ignore[arg-type]
    os.utime(source / "README.md", (1_000_000, 1_000_000))
    second = hashlib.sha256(build_package(source, fmt=fmt).read_bytes()).hexdigest()  # type: ignore[arg-type]
    assert first == second


def test_tar_members_are_sorted_with_fixed_metadata(tmp_path: Path) -> None:
    source = init_package(tmp_path, "hello-notes")
    (source / "data").mkdir()
    (source / "data" / "b.txt").write_text("b")
    (source / "data" / "a.txt").write_text("a")
    with tarfile.open(build_package(source)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[0] == "mercato.toml" and names[1:] == sorted(names[1:])
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(315532800, 0, 0, "", "")}
    assert {m.mode for m in members} <= {0o644, 0o755}


def test_zip_members_carry_unix_modes(tmp_path: Path) -> None:
    source = init_package(tmp_path, "hello-notes")
    with zipfile.ZipFile(build_package(source, fmt="zip")) as archive:
        modes = {info.filename: info.external_attr >> 16 & 0o7777 for info in archive.infolist()}
    assert modes["bin/hello-notes"] == 0o755 and modes["mercato.toml"] == 0o644


def test_build_skips_git_pycache_and_the_output_folder(tmp_path: Path) -> None:
    source = init_package(tmp_path, "hello-notes")
    for folder in (".git", "__pycache__", "bin/__pycache__", "dist"):
        (source / folder).mkdir(parents=True, exist_ok=True)
        (source / folder / "junk").write_text("junk")
    paths = {m.path for m in inspect_archive(build_package(source)).members}
    assert not any(p.startswith((".git", "__pycache__", "dist")) or "__pycache__" in p for p in paths)
    elsewhere = tmp_path / "out"
    paths = {m.path for m in inspect_archive(build_package(source, output_dir=elsewhere)).members}
    assert "dist/junk" in paths and (elsewhere / "hello-notes-0.1.0.tar.gz").is_file()


def test_build_refuses_symlinks_and_leaves_no_archive(tmp_path: Path) -> None:
    source = init_package(tmp_path, "hello-notes")
    (source / "link").symlink_to("/etc/passwd")
    with pytest.raises(PackageSourceInvalid) as caught:
        build_package(source)
    assert "symbolic link" in caught.value.detail and str(source / "link") in caught.value.detail
    assert not (source / "dist").exists()


def test_build_deletes_an_archive_the_server_would_refuse(tmp_path: Path) -> None:
    source = init_package(tmp_path, "hello-notes")
    (source / "CHANGELOG.md").unlink()  # the manifest still names it
    with pytest.raises(ManifestInvalid) as caught:
        build_package(source)
    assert caught.value.errors and caught.value.errors[0]["loc"] == ["package", "changelog"]
    assert list((source / "dist").iterdir()) == []


def test_build_uses_the_given_limits(tmp_path: Path) -> None:
    source = init_package(tmp_path, "hello-notes")
    with pytest.raises(ArchiveTooManyMembers):
        build_package(source, limits=PackageLimits(max_members=3))
    assert list((source / "dist").iterdir()) == []


def test_build_needs_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestMissing):
        build_package(tmp_path)
    with pytest.raises(PackageSourceInvalid):
        build_package(tmp_path / "nowhere")


def test_build_refuses_an_invalid_manifest_before_writing(tmp_path: Path) -> None:
    source = init_package(tmp_path, "hello-notes")
    text = (source / "mercato.toml").read_text().replace('kind = "app"', 'kind = "app"\ncolour = "red"')
    (source / "mercato.toml").write_text(text)
    with pytest.raises(ManifestInvalid) as caught:
        build_package(source)
    assert caught.value.errors and caught.value.errors[0]["loc"] == ["package", "colour"]
    assert not (source / "dist").exists()


def test_build_refuses_files_with_unportable_names(tmp_path: Path) -> None:
    source = init_package(tmp_path, "hello-notes")
    (source / "bad:name.txt").write_text("x")
    with pytest.raises(PackageSourceInvalid) as caught:
        build_package(source)
    assert "bad:name.txt" in caught.value.detail
