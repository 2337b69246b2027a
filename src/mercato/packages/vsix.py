"""Reading a VS Code extension package (``.vsix``): the second manifest reader, beside ``mercato.toml``.

A VSIX is a zip. It goes through the same inspection as every package
(:func:`~mercato.packages.archive.scan_archive`: paths, links, duplicates, bombs, polyglots),
then its manifest is read from ``extension/package.json`` (publisher, name, version,
``engines.vscode``, categories, …) and ``extension.vsixmanifest`` (the target platform and
where the readme, changelog, licence and icon are). Nothing is executed or unpacked to disk.

:class:`VsixManifest` answers the questions the publishing service and the package checks ask
of a manifest (``name``, ``kind``, ``version``, ``compatibility``, ``permissions``, …), so a
VSIX is recorded as a version by the same code as any package.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from html import unescape
from pathlib import Path
from typing import Any

from mercato.kit import semver
from mercato.packages.archive import (
    ArchiveMember,
    PackageLimits,
    ScannedArchive,
    scan_archive,
)
from mercato.packages.errors import ArchiveUnsupported, ManifestInvalid, ManifestMissing

PACKAGE_JSON = "extension/package.json"
VSIX_MANIFEST = "extension.vsixmanifest"
MAX_PACKAGE_JSON_BYTES = 1024 * 1024
MAX_VSIX_MANIFEST_BYTES = 256 * 1024
MAX_ASSET_BYTES = 2 * 1024 * 1024
# The platforms VS Code and Open VSX know; "universal" runs everywhere.
TARGET_PLATFORMS = ("universal", "web", "win32-x64", "win32-ia32", "win32-arm64", "linux-x64", "linux-arm64",
                    "linux-armhf", "alpine-x64", "alpine-arm64", "darwin-x64", "darwin-arm64")
# Names as VS Code's marketplace allows them (and Open VSX checks): letters, digits, '-'; a letter or digit first.
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}$")
# The vsixmanifest's <Asset Type="…" Path="…"/> entries name the files the gallery serves.
ASSET_TYPES = {
    "Microsoft.VisualStudio.Services.Content.Details": "readme",
    "Microsoft.VisualStudio.Services.Content.Changelog": "changelog",
    "Microsoft.VisualStudio.Services.Content.License": "license",
    "Microsoft.VisualStudio.Services.Icons.Default": "icon",
}
_ASSET = re.compile(r"<Asset\s+([^>]*?)/?>", re.IGNORECASE)
_IDENTITY = re.compile(r"<Identity\s+([^>]*?)/?>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r'([A-Za-z][A-Za-z0-9_.:-]*)\s*=\s*"([^"]*)"')


@dataclass(frozen=True)
class _PackageFacts:
    homepage: str | None
    changelog: str | None


@dataclass(frozen=True)
class _NoPermissions:
    """A VS Code extension declares no Mercato install permissions (it runs inside the editor)."""

    network: tuple[str, ...] = ()
    filesystem: tuple[str, ...] = ()
    notifications: bool = False


@dataclass(frozen=True)
class _Compatibility:
    host: str | None
    platforms: list[str]


@dataclass(frozen=True)
class VsixManifest:
    """What a VSIX says about itself. ``name`` is the Mercato listing slug it is published under
    (set with :meth:`for_listing`); ``extension_name`` is its name in the editor."""

    publisher: str
    extension_name: str
    version: str
    target_platform: str
    display_name: str | None
    description: str | None
    engines: dict[str, str]
    categories: list[str]
    tags: list[str]
    license: str | None
    homepage: str | None
    repository: str | None
    bugs: str | None
    qna: str | None
    sponsor_link: str | None
    gallery_color: str | None
    gallery_theme: str | None
    pre_release: bool
    preview: bool
    extension_kind: list[str]
    dependencies: list[str]
    bundled_extensions: list[str]
    localized_languages: list[str]
    assets: dict[str, str]  # readme | changelog | license | icon → member path
    # kind → {"name", "sha256", "size"} once the small files are in the artifact store.
    stored_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    name: str = ""
    kind: str = "plugin"
    launch: None = None
    permissions: _NoPermissions = field(default_factory=_NoPermissions)

    @property
    def package(self) -> _PackageFacts:
        return _PackageFacts(homepage=self.homepage, changelog=self.assets.get("changelog"))

    @property
    def compatibility(self) -> _Compatibility:
        # The editor checks engines.vscode itself; the listing's platform filter gets the target.
        return _Compatibility(host=None, platforms=["any" if self.target_platform == "universal"
                                                    else self.target_platform])

    def for_listing(self, slug: str) -> VsixManifest:
        return replace(self, name=slug)

    def to_document(self) -> dict[str, Any]:
        """Stored per version (``ListingVersion.manifest``); ``format`` tells it from a mercato.toml."""
        return {
            "format": "vsix", "publisher": self.publisher, "name": self.extension_name, "version": self.version,
            "targetPlatform": self.target_platform, "displayName": self.display_name,
            "description": self.description, "engines": self.engines, "categories": self.categories,
            "tags": self.tags, "license": self.license, "homepage": self.homepage, "repository": self.repository,
            "bugs": self.bugs, "qna": self.qna, "sponsorLink": self.sponsor_link, "galleryColor": self.gallery_color,
            "galleryTheme": self.gallery_theme, "preRelease": self.pre_release, "preview": self.preview,
            "extensionKind": self.extension_kind, "dependencies": self.dependencies,
            "bundledExtensions": self.bundled_extensions, "localizedLanguages": self.localized_languages,
            "assets": self.assets, "files": self.stored_files,
        }


@dataclass(frozen=True)
class InspectedVsix:
    """A VSIX that passed the archive inspection, with its manifest and the small files the
    registry serves (``files``: package.json, vsixmanifest, readme, changelog, licence, icon)."""

    format: str
    sha256: str
    size: int
    unpacked_size: int
    members: list[ArchiveMember]
    manifest: VsixManifest
    changelog: str | None
    files: dict[str, tuple[str, bytes]]  # kind → (file name, bytes)

    def member(self, path: str) -> ArchiveMember | None:
        return next((m for m in self.members if m.path == path), None)

    def for_listing(self, slug: str, stored_files: dict[str, dict[str, Any]]) -> InspectedVsix:
        return replace(self, manifest=replace(self.manifest.for_listing(slug), stored_files=stored_files))


def _invalid(message: str, loc: list[str | int]) -> ManifestInvalid:
    return ManifestInvalid(message, errors=[{"loc": loc, "msg": message, "type": "value_error"}])


def _text(value: Any, loc: str, *, limit: int = 2000) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(f"package.json: {loc} must be a string.", ["package.json", loc])
    return value[:limit] or None


def _strings(value: Any, loc: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(f"package.json: {loc} must be a list of strings.", ["package.json", loc])
    return list(dict.fromkeys(v[:200] for v in value))[:100]


def _url(value: Any, loc: str) -> str | None:
    """package.json links are a string or ``{"url": …}`` (repository, bugs)."""
    if isinstance(value, dict):
        value = value.get("url")
    text = _text(value, loc, limit=500)
    return text if text and text.startswith(("https://", "http://")) else None


def _attributes(element: str) -> dict[str, str]:
    return {key: unescape(value) for key, value in _ATTRIBUTE.findall(element)}


def parse_package_json(data: bytes, vsix_manifest: bytes | None, member_paths: set[str]) -> VsixManifest:
    """The manifest of a VSIX from its ``extension/package.json`` and ``extension.vsixmanifest``."""
    if len(data) > MAX_PACKAGE_JSON_BYTES:
        raise _invalid(f"extension/package.json is larger than {MAX_PACKAGE_JSON_BYTES} bytes.", ["package.json"])
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _invalid(f"extension/package.json is not valid JSON ({exc}).", ["package.json"]) from None
    if not isinstance(document, dict):
        raise _invalid("extension/package.json must hold a JSON object.", ["package.json"])
    for key in ("publisher", "name", "version"):
        if not isinstance(document.get(key), str) or not document[key]:
            raise _invalid(f"package.json: the field {key!r} is required (a string).", ["package.json", key])
    publisher, name, version = document["publisher"], document["name"], document["version"]
    for key, value in (("publisher", publisher), ("name", name)):
        if not _NAME.match(value):
            raise _invalid(f"package.json: {key} {value!r} may hold only letters, digits and '-', starting with a "
                           "letter or digit (at most 63 characters).", ["package.json", key])
    try:
        semver.parse_version(version)
    except ValueError:
        raise _invalid(f"package.json: version {version!r} is not a SemVer version (e.g. 1.4.0).",
                       ["package.json", "version"]) from None
    engines = document.get("engines") or {}
    if not isinstance(engines, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in engines.items()):
        raise _invalid("package.json: engines must map engine names to version ranges.", ["package.json", "engines"])
    if "vscode" not in engines:
        raise _invalid("package.json: engines.vscode is required (the VS Code versions it runs on, e.g. ^1.80.0).",
                       ["package.json", "engines", "vscode"])
    identity: dict[str, str] = {}
    assets: dict[str, str] = {}
    if vsix_manifest is not None:
        text = vsix_manifest[:MAX_VSIX_MANIFEST_BYTES].decode("utf-8", "replace")
        if (match := _IDENTITY.search(text)) is not None:
            identity = _attributes(match.group(1))
        for element in _ASSET.findall(text):
            attributes = _attributes(element)
            kind = ASSET_TYPES.get(attributes.get("Type", ""))
            if kind and attributes.get("Path") in member_paths:
                assets.setdefault(kind, attributes["Path"])
    if ("icon" not in assets and isinstance(document.get("icon"), str)
            and f"extension/{document['icon']}" in member_paths):
        assets["icon"] = f"extension/{document['icon']}"
    target = identity.get("TargetPlatform") or "universal"
    if target not in TARGET_PLATFORMS:
        raise _invalid(f"extension.vsixmanifest: the target platform {target!r} is unknown; use one of "
                       f"{', '.join(TARGET_PLATFORMS)}.", ["extension.vsixmanifest", "TargetPlatform"])
    if identity.get("Version") not in (None, version) or identity.get("Publisher") not in (None, publisher):
        raise _invalid("extension.vsixmanifest and extension/package.json disagree on the publisher or version; "
                       "package the extension again with vsce.", ["extension.vsixmanifest", "Identity"])
    gallery = document.get("galleryBanner") if isinstance(document.get("galleryBanner"), dict) else {}
    pre_release = bool(identity.get("PreRelease") == "true"
                       or _property(vsix_manifest, "Microsoft.VisualStudio.Code.PreRelease"))
    return VsixManifest(
        publisher=publisher, extension_name=name, version=version, target_platform=target,
        display_name=_text(document.get("displayName"), "displayName", limit=200),
        description=_text(document.get("description"), "description"),
        engines={k[:50]: v[:100] for k, v in list(engines.items())[:20]},
        categories=_strings(document.get("categories"), "categories"),
        tags=_strings(document.get("keywords"), "keywords"),
        license=_text(document.get("license"), "license", limit=100),
        homepage=_url(document.get("homepage"), "homepage"), repository=_url(document.get("repository"), "repository"),
        bugs=_url(document.get("bugs"), "bugs"), qna=_url(document.get("qna"), "qna"),
        sponsor_link=_url(document.get("sponsor"), "sponsor"),
        gallery_color=_text(gallery.get("color"), "galleryBanner.color", limit=50),
        gallery_theme=_text(gallery.get("theme"), "galleryBanner.theme", limit=20),
        pre_release=pre_release, preview=document.get("preview") is True,
        extension_kind=_strings(document.get("extensionKind") if isinstance(document.get("extensionKind"), list)
                                else ([document["extensionKind"]] if isinstance(document.get("extensionKind"), str)
                                      else None), "extensionKind"),
        dependencies=_strings(document.get("extensionDependencies"), "extensionDependencies"),
        bundled_extensions=_strings(document.get("extensionPack"), "extensionPack"),
        localized_languages=_localized(document),
        assets=assets)


def _property(vsix_manifest: bytes | None, key: str) -> bool:
    if vsix_manifest is None:
        return False
    return re.search(rf'<Property\s+Id="{re.escape(key)}"\s+Value="true"', vsix_manifest.decode("utf-8", "replace")) \
        is not None


def _localized(document: dict[str, Any]) -> list[str]:
    contributes = document.get("contributes")
    localizations = contributes.get("localizations") if isinstance(contributes, dict) else None
    if not isinstance(localizations, list):
        return []
    return list(dict.fromkeys(str(item.get("languageId"))[:20] for item in localizations
                              if isinstance(item, dict) and item.get("languageId")))[:50]


def inspect_vsix(path: Path, *, limits: PackageLimits | None = None) -> InspectedVsix:
    """Inspect a VSIX end to end (synchronous, CPU-bound: run it in a worker thread)."""
    limits = limits or PackageLimits()
    scanned: ScannedArchive = scan_archive(
        path, limits=limits, wanted={PACKAGE_JSON: MAX_PACKAGE_JSON_BYTES + 1, VSIX_MANIFEST: MAX_VSIX_MANIFEST_BYTES})
    if scanned.format != "zip":
        raise ArchiveUnsupported("A VS Code extension (.vsix) is a zip archive; package it with vsce.")
    found = scanned.members.get(PACKAGE_JSON)
    if found is None or found.is_dir:
        raise ManifestMissing("The file has no extension/package.json: it is not a VS Code extension. "
                              "Package it with `vsce package` (or `ovsx publish` from the extension folder).")
    members = list(scanned.members.values())
    paths = {m.path for m in members if not m.is_dir}
    manifest = parse_package_json(scanned.captured[PACKAGE_JSON], scanned.captured.get(VSIX_MANIFEST), paths)
    files: dict[str, tuple[str, bytes]] = {"manifest": ("package.json", scanned.captured[PACKAGE_JSON])}
    if VSIX_MANIFEST in scanned.captured:
        files["vsixmanifest"] = (VSIX_MANIFEST, scanned.captured[VSIX_MANIFEST])
    for kind, member_path in manifest.assets.items():
        member = scanned.members[member_path]
        if member.size <= MAX_ASSET_BYTES:
            files[kind] = (member_path.rsplit("/", 1)[-1], scanned.read_member(member_path, MAX_ASSET_BYTES))
    changelog = files["changelog"][1].decode("utf-8", "replace")[:limits.max_changelog_bytes] \
        if "changelog" in files else None
    return InspectedVsix(format="vsix", sha256=scanned.sha256, size=scanned.size,
                         unpacked_size=sum(m.size for m in members if not m.is_dir), members=members,
                         manifest=manifest, changelog=changelog, files=files)


__all__ = ["TARGET_PLATFORMS", "InspectedVsix", "VsixManifest", "inspect_vsix", "parse_package_json"]
