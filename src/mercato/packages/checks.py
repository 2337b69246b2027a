"""Automated checks run on submission (PRODUCT P3): findings and a risk score for reviewers.

The archive already passed :func:`~mercato.packages.archive.inspect_archive` (anything
unsafe was refused there); these checks describe what remains for a human to weigh:
what the manifest asks for, what kind of files the package holds, how big it is.

Each finding has a ``severity``: ``error`` (the package is broken or dangerous: a reviewer
should not approve it as is), ``warning`` (look closely) or ``info``. The risk score is
the sum, over finding codes, of ``points × number of findings`` capped per code (table
:data:`SCORING`), capped at 100. For example broad network access (``*``, 25) plus two
native binaries (2 × 5) plus notifications (2) scores 37. A package with no findings
scores 0. Per code at most :data:`MAX_FINDINGS_PER_CODE` findings are listed; the rest
are summed up in one more finding of the same code (and still count for the score).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mercato.packages.archive import ArchiveMember, InspectedArchive
from mercato.packages.manifest import network_entry_parts

Severity = Literal["info", "warning", "error"]

MAX_FINDINGS_PER_CODE = 20
LARGE_UNPACKED_BYTES = 512 * 1024 * 1024
MEDIUM_UNPACKED_BYTES = 100 * 1024 * 1024

# code: (severity, points per finding, most points from this code)
SCORING: dict[str, tuple[Severity, int, int]] = {
    "launch_entry_missing": ("error", 50, 50),
    "setuid_file": ("error", 40, 40),
    "network_any_host": ("warning", 25, 25),
    "filesystem_outside_data": ("warning", 10, 20),
    "network_wildcard_host": ("warning", 5, 15),
    "network_port_range": ("warning", 5, 15),
    "native_binary": ("warning", 5, 15),
    "world_writable_file": ("warning", 5, 10),
    "large_package": ("warning", 10, 10),
    "launch_entry_not_executable": ("warning", 5, 5),
    "network_access": ("info", 2, 10),
    "notifications": ("info", 2, 2),
    "executable_file": ("info", 1, 10),
    "hidden_file": ("info", 1, 5),
    "medium_package": ("info", 2, 2),
    "homepage_missing": ("info", 2, 2),
    "changelog_missing": ("info", 2, 2),
}


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    message: str
    path: str | None = None

    def to_document(self) -> dict[str, Any]:
        return {"severity": self.severity, "code": self.code, "message": self.message, "path": self.path}


@dataclass(frozen=True)
class CheckReport:
    risk_score: int
    findings: list[Finding]

    @property
    def passed(self) -> bool:
        """No finding of severity ``error``."""
        return not any(f.severity == "error" for f in self.findings)

    def counts(self) -> dict[str, int]:
        out = {"error": 0, "warning": 0, "info": 0}
        for finding in self.findings:
            out[finding.severity] += 1
        return out

    def to_document(self) -> dict[str, Any]:
        return {"risk_score": self.risk_score, "passed": self.passed, "counts": self.counts(),
                "findings": [f.to_document() for f in self.findings]}


class _Findings:
    def __init__(self) -> None:
        self.items: list[Finding] = []
        self.totals: dict[str, int] = {}

    def add(self, code: str, message: str, path: str | None = None) -> None:
        count = self.totals.get(code, 0) + 1
        self.totals[code] = count
        if count <= MAX_FINDINGS_PER_CODE:
            self.items.append(Finding(SCORING[code][0], code, message, path))

    def report(self) -> CheckReport:
        findings = list(self.items)
        score = 0
        for code, count in self.totals.items():
            severity, points, cap = SCORING[code]
            score += min(points * count, cap)
            if count > MAX_FINDINGS_PER_CODE:
                findings.append(Finding(severity, code, f"... and {count - MAX_FINDINGS_PER_CODE} more like these."))
        order = {"error": 0, "warning": 1, "info": 2}
        findings.sort(key=lambda f: order[f.severity])
        return CheckReport(risk_score=min(score, 100), findings=findings)


def _manifest_findings(archive: InspectedArchive, out: _Findings) -> None:
    manifest = archive.manifest
    if manifest.package.homepage is None:
        out.add("homepage_missing", "No homepage: users can't learn more or report problems.")
    if manifest.package.changelog is None:
        out.add("changelog_missing", "No changelog: users can't see what changed in this version.")
    for entry in manifest.permissions.network:
        host, port = network_entry_parts(entry)
        if host == "*":
            out.add("network_any_host", f"Asks to reach any host on the network ({entry!r}).")
        elif host.startswith("*."):
            out.add("network_wildcard_host", f"Asks to reach every subdomain of {host[2:]} ({entry!r}).")
        else:
            out.add("network_access", f"Asks to reach {entry!r}.")
        if port is None or port == "*" or "-" in port:
            out.add("network_port_range", f"Asks for {'any port' if port in (None, '*') else 'the ports ' + port} "
                                          f"({entry!r}); a single port is easier to trust.")
    for path in manifest.permissions.filesystem:
        if path != "data" and not path.startswith("data/"):
            out.add("filesystem_outside_data", f"Asks for filesystem access to {path!r}, outside its data folder.",
                    path)
    if manifest.permissions.notifications:
        out.add("notifications", "Asks to send notifications.")


def _member_findings(member: ArchiveMember, out: _Findings) -> None:
    if any(part.startswith(".") for part in member.path.split("/")):
        if not member.is_dir:
            out.add("hidden_file", f"Hidden file {member.path!r}.", member.path)
    if member.is_dir:
        return
    if member.mode & 0o6000:
        bits = " and ".join(b for b, m in (("setuid", 0o4000), ("setgid", 0o2000)) if member.mode & m)
        out.add("setuid_file", f"{member.path!r} has the {bits} bit set; packages must not raise privileges.",
                member.path)
    if member.mode & 0o002:
        out.add("world_writable_file", f"{member.path!r} is writable by every user.", member.path)
    if member.file_type in ("elf", "pe", "mach-o"):
        kind = {"elf": "ELF", "pe": "Windows (PE)", "mach-o": "Mach-O"}[member.file_type]
        out.add("native_binary", f"{member.path!r} is a native {kind} program; reviewers can't read it.", member.path)
    elif member.mode & 0o111:
        out.add("executable_file", f"{member.path!r} is executable.", member.path)


def _launch_findings(archive: InspectedArchive, out: _Findings) -> None:
    launch = archive.manifest.launch
    if launch is None or launch.entry is None:
        return
    member = archive.member(launch.entry)
    if member is None or member.is_dir:
        out.add("launch_entry_missing",
                f"launch.entry is {launch.entry!r}, which is not a file in the package; opening it would fail.",
                launch.entry)
        return
    platforms = archive.manifest.compatibility.platforms
    windows_only = all(p.startswith("windows-") for p in platforms)
    if not windows_only and not member.mode & 0o111:
        out.add("launch_entry_not_executable",
                f"launch.entry {launch.entry!r} is not executable; on Linux and macOS it can't be started.",
                launch.entry)


def run_checks(archive: InspectedArchive) -> CheckReport:
    """Lint the manifest and scan the (already validated) archive; see the module docstring."""
    out = _Findings()
    _manifest_findings(archive, out)
    _launch_findings(archive, out)
    for member in archive.members:
        _member_findings(member, out)
    if archive.unpacked_size > LARGE_UNPACKED_BYTES:
        out.add("large_package", f"The package unpacks to {archive.unpacked_size // (1024 * 1024)} MiB.")
    elif archive.unpacked_size > MEDIUM_UNPACKED_BYTES:
        out.add("medium_package", f"The package unpacks to {archive.unpacked_size // (1024 * 1024)} MiB.")
    return out.report()
