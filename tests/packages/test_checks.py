"""Automated checks (PRODUCT P3): findings and a risk score reviewers can trust."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from mercato.packages.archive import ArchiveMember, InspectedArchive, inspect_archive
from mercato.packages.checks import MAX_FINDINGS_PER_CODE, SCORING, CheckReport, run_checks
from mercato.packages.errors import LaunchEntryMissing
from mercato.packages.manifest import parse_manifest
from tests.packages import MANIFEST, TarEntry, gz, tar_bytes, valid_files, write


def archive_of(tmp_path: Path, manifest: str = MANIFEST, extra: list[TarEntry] | None = None) -> InspectedArchive:
    files = valid_files()
    files["mercato.toml"] = manifest.encode()
    entries = [TarEntry(name, data, mode=0o755 if name.startswith("bin/") else 0o644) for name, data in files.items()]
    return inspect_archive(write(tmp_path / "p.tar.gz", gz(tar_bytes([*entries, *(extra or [])]))))


def codes(report: CheckReport) -> list[str]:
    return [f.code for f in report.findings]


def with_network(*entries: str) -> str:
    listed = ", ".join(f'"{e}"' for e in entries)
    return MANIFEST.replace('network = ["api.example.org:443"]', f"network = [{listed}]")


def test_well_behaved_package_passes_with_a_low_score(tmp_path: Path) -> None:
    report = run_checks(archive_of(tmp_path))
    assert report.passed and report.counts()["error"] == 0
    assert set(codes(report)) == {"network_access", "notifications", "executable_file"}
    assert report.risk_score == 2 + 2 + 1


def test_any_host_is_a_warning_that_raises_the_score(tmp_path: Path) -> None:
    report = run_checks(archive_of(tmp_path, with_network("*")))
    finding = next(f for f in report.findings if f.code == "network_any_host")
    assert finding.severity == "warning" and "'*'" in finding.message
    assert "network_port_range" in codes(report)  # no port: any port
    assert report.risk_score == 25 + 5 + 2 + 1


def test_wildcard_hosts_and_port_ranges_are_flagged(tmp_path: Path) -> None:
    report = run_checks(archive_of(tmp_path, with_network("*.example.org:443", "example.org:8000-9000")))
    assert "network_wildcard_host" in codes(report) and "network_port_range" in codes(report)
    assert "network_any_host" not in codes(report)


def test_filesystem_outside_data_is_flagged(tmp_path: Path) -> None:
    manifest = MANIFEST.replace('filesystem = ["data"]', 'filesystem = ["data/cache", "config", "logs"]')
    report = run_checks(archive_of(tmp_path, manifest))
    flagged = [f.path for f in report.findings if f.code == "filesystem_outside_data"]
    assert flagged == ["config", "logs"]


def test_missing_homepage_and_changelog_are_noted(tmp_path: Path) -> None:
    manifest = MANIFEST.replace('homepage = "https://example.org/hello-notes"\n', "").replace(
        'changelog = "CHANGELOG.md"\n', "")
    report = run_checks(archive_of(tmp_path, manifest))
    assert {"homepage_missing", "changelog_missing"} <= set(codes(report))
    assert report.passed


def test_setuid_file_is_an_error(tmp_path: Path) -> None:
    report = run_checks(archive_of(tmp_path, extra=[TarEntry("bin/helper", b"x", mode=0o4755)]))
    finding = next(f for f in report.findings if f.code == "setuid_file")
    assert finding.severity == "error" and finding.path == "bin/helper"
    assert not report.passed and report.findings[0].severity == "error"


def test_native_binaries_hidden_and_world_writable_files(tmp_path: Path) -> None:
    report = run_checks(archive_of(tmp_path, extra=[
        TarEntry("bin/native", b"\x7fELF" + bytes(60), mode=0o755),
        TarEntry("data/.env", b"SECRET=1"),
        TarEntry("data/open", b"x", mode=0o666),
    ]))
    by_code = {f.code: f for f in report.findings}
    assert by_code["native_binary"].path == "bin/native" and "ELF" in by_code["native_binary"].message
    assert by_code["hidden_file"].path == "data/.env"
    assert by_code["world_writable_file"].path == "data/open"


def test_launch_entry_missing_from_the_archive_is_refused(tmp_path: Path) -> None:
    manifest = MANIFEST.replace('entry = "bin/hello-notes"', 'entry = "bin/missing"')
    with pytest.raises(LaunchEntryMissing) as refused:
        archive_of(tmp_path, manifest)
    assert refused.value.status == 422 and refused.value.code == "launch_entry_missing"
    assert "bin/missing" in str(refused.value)
    with pytest.raises(LaunchEntryMissing):  # a folder is no entry either
        archive_of(tmp_path, MANIFEST.replace('entry = "bin/hello-notes"', 'entry = "bin"'))


def test_launch_entry_missing_is_still_an_error_finding(tmp_path: Path) -> None:
    """The checks keep their own finding for an archive inspected before the refusal existed."""
    manifest = MANIFEST.replace('entry = "bin/hello-notes"', 'entry = "bin/missing"')
    report = run_checks(dataclasses.replace(archive_of(tmp_path), manifest=parse_manifest(manifest.encode())))
    finding = next(f for f in report.findings if f.code == "launch_entry_missing")
    assert finding.severity == "error" and finding.path == "bin/missing"
    assert not report.passed and report.risk_score >= 50


def test_launch_entry_without_execute_bit_is_a_warning(tmp_path: Path) -> None:
    files = valid_files()
    entries = [TarEntry(name, data, mode=0o644) for name, data in files.items()]
    report = run_checks(inspect_archive(write(tmp_path / "p.tar.gz", gz(tar_bytes(entries)))))
    assert "launch_entry_not_executable" in codes(report)


def test_large_package_is_flagged() -> None:
    manifest = parse_manifest(MANIFEST.encode())
    members = [ArchiveMember("mercato.toml", 10, False, 0o644), ArchiveMember("bin/hello-notes", 10, False, 0o755),
               ArchiveMember("data/huge.bin", 600 * 1024 * 1024, False, 0o644)]
    archive = InspectedArchive(format="zip", sha256="0" * 64, size=1, unpacked_size=600 * 1024 * 1024 + 20,
                               members=members, manifest=manifest, manifest_text=MANIFEST, changelog=None)
    assert "large_package" in codes(run_checks(archive))


def test_score_is_capped_per_code_and_in_total(tmp_path: Path) -> None:
    many = [TarEntry(f"bin/tool{i}", b"\x7fELF" + bytes(10), mode=0o4755) for i in range(30)]
    report = run_checks(archive_of(tmp_path, with_network("*"), extra=many))
    native = [f for f in report.findings if f.code == "native_binary"]
    assert len(native) == MAX_FINDINGS_PER_CODE + 1 and "10 more" in native[-1].message
    severity, points, cap = SCORING["native_binary"]
    assert points * 30 > cap
    # setuid 40 (capped) + any host 25 + any port 5 + native 15 (capped) + notifications 2 + executable 1
    assert report.risk_score == 88
    broken = with_network("*").replace('entry = "bin/hello-notes"', 'entry = "bin/missing"')
    assert run_checks(dataclasses.replace(archive_of(tmp_path, with_network("*"), extra=many),
                                          manifest=parse_manifest(broken.encode()))).risk_score == 100


def test_report_document_is_json_ready(tmp_path: Path) -> None:
    document = run_checks(archive_of(tmp_path, with_network("*"))).to_document()
    assert json.loads(json.dumps(document)) == document
    assert set(document) == {"risk_score", "passed", "counts", "findings"}
    assert {"severity", "code", "message", "path"} == set(document["findings"][0])
