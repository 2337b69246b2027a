"""The Open VSX registry API's answers: an extension's JSON, its version references, a namespace,
search and ``/api/v2/-/query``; every URL in them keeps the registry URL the client was given."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.clock import utcnow
from mercato.models import Listing, ListingVersion
from mercato.openvsx.extensions import (
    MAX_SCANNED_EXTENSIONS,
    SORTS,
    Extension,
    Registry,
    matches_filters,
    may_download,
    namespace_publisher,
    pick_version,
    published_extensions,
    target_platform,
    versions_of,
)
from mercato.openvsx.schemas import (
    ExtensionJson,
    ExtensionReferenceJson,
    NamespaceJson,
    SearchEntryJson,
    UserJson,
    VersionReferenceJson,
    VersionTargetPlatformsJson,
)
from mercato.releases import service as publishing


def json_time(value: datetime | None) -> str:
    """A time as Open VSX writes it (UTC, microseconds, ``Z``)."""
    return (value or utcnow()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _version_path(extension: Extension, version: ListingVersion) -> list[str]:
    target = target_platform(version)
    return [extension.publisher.slug, extension.name, *([target] if target != "universal" else []), version.version]


def download_name(extension: Extension, version: ListingVersion) -> str:
    target = target_platform(version)
    suffix = f"@{target}" if target != "universal" else ""
    return f"{extension.publisher.slug}.{extension.name}-{version.version}{suffix}.vsix"


def file_urls(registry: Registry, extension: Extension, version: ListingVersion) -> dict[str, str]:
    base = registry.api(*_version_path(extension, version), "file")
    files = {"download": f"{base}/{download_name(extension, version)}"}
    for kind, stored in (version.manifest.get("files") or {}).items():
        files[kind] = f"{base}/{stored['name']}"
    files["sha256"] = f"{base}/{download_name(extension, version)[:-len('.vsix')]}.sha256"
    return files


def _references(registry: Registry, ids: list[str]) -> list[ExtensionReferenceJson] | None:
    out = []
    for item in ids:
        namespace, _, name = item.partition(".")
        if namespace and name:
            out.append(ExtensionReferenceJson(url=registry.api(namespace, name), namespace=namespace, extension=name))
    return out or None


def _paid_marks(registry: Registry, listing: Listing, downloadable: bool) -> dict[str, Any]:
    if listing.sort_price == 0:
        return {}
    marks: dict[str, Any] = {"price": {"amount": listing.digital_price if listing.digital_price is not None
                                       else listing.sort_price, "currency": listing.currency}}
    if not downloadable:
        marks["purchase_url"] = f"{registry.store}/listings/{listing.slug}"
    return marks


def extension_json(registry: Registry, extension: Extension, version: ListingVersion,
                   versions: list[ListingVersion], *, downloadable: bool, all_versions: bool = True) -> ExtensionJson:
    """Open VSX's ExtensionJson for one version of an extension."""
    manifest = version.manifest
    listing, publisher = extension.listing, extension.publisher
    latest = pick_version(versions, None, extension) if versions else version
    aliases = ["latest"] if latest.id == version.id else []
    if manifest.get("preRelease") and versions and pick_version(versions, "pre-release", extension).id == version.id:
        aliases.append("pre-release")
    url = registry.api(*_version_path(extension, version))
    all_links: dict[str, str] | None = None
    if all_versions:
        all_links = {"latest": registry.api(*_version_path(extension, latest))}
        for other in versions:
            all_links.setdefault(other.version, registry.api(*_version_path(extension, other)))
    engines = manifest.get("engines") or None
    return ExtensionJson(
        namespace_url=registry.api(publisher.slug), reviews_url=registry.api(publisher.slug, extension.name, "reviews"),
        files=file_urls(registry, extension, version), name=extension.name, namespace=publisher.slug,
        target_platform=target_platform(version), version=version.version, pre_release=bool(manifest.get("preRelease")),
        published_by=UserJson(login_name=publisher.slug, full_name=publisher.name), verified=publisher.verified,
        all_versions=all_links, average_rating=listing.rating_average if listing.rating_count else None,
        download_count=listing.download_count, review_count=listing.rating_count, version_alias=aliases,
        timestamp=json_time(version.decided_at or version.created_at), preview=bool(manifest.get("preview")),
        display_name=manifest.get("displayName"), namespace_display_name=publisher.name or publisher.slug,
        description=manifest.get("description"), engines=engines, categories=manifest.get("categories") or None,
        extension_kind=manifest.get("extensionKind") or None, tags=manifest.get("tags") or None,
        license=manifest.get("license"), homepage=manifest.get("homepage"), repository=manifest.get("repository"),
        sponsor_link=manifest.get("sponsorLink"), bugs=manifest.get("bugs"), qna=manifest.get("qna"),
        gallery_color=manifest.get("galleryColor"), gallery_theme=manifest.get("galleryTheme"),
        localized_languages=manifest.get("localizedLanguages") or None,
        dependencies=_references(registry, manifest.get("dependencies") or []),
        bundled_extensions=_references(registry, manifest.get("bundledExtensions") or []),
        downloads={target_platform(version): file_urls(registry, extension, version)["download"]},
        all_target_platform_versions=[
            VersionTargetPlatformsJson(version=v.version, target_platforms=[target_platform(v)]) for v in versions
        ] or None,
        url=url, downloadable=downloadable, **_paid_marks(registry, listing, downloadable))


def version_reference(registry: Registry, extension: Extension, version: ListingVersion) -> VersionReferenceJson:
    return VersionReferenceJson(url=registry.api(*_version_path(extension, version)),
                                files=file_urls(registry, extension, version), version=version.version,
                                target_platform=target_platform(version),
                                engines=version.manifest.get("engines") or None)


def search_entry(registry: Registry, extension: Extension, version: ListingVersion, *, downloadable: bool,
                 versions: list[ListingVersion] | None) -> SearchEntryJson:
    listing, manifest = extension.listing, version.manifest
    return SearchEntryJson(
        url=registry.api(extension.publisher.slug, extension.name), files=file_urls(registry, extension, version),
        name=extension.name, namespace=extension.publisher.slug, version=version.version,
        timestamp=json_time(version.decided_at or version.created_at), verified=extension.publisher.verified,
        all_versions=[version_reference(registry, extension, v) for v in versions] if versions is not None else None,
        average_rating=listing.rating_average if listing.rating_count else None, review_count=listing.rating_count,
        download_count=listing.download_count, display_name=manifest.get("displayName"),
        description=manifest.get("description"), **_paid_marks(registry, listing, downloadable))


async def namespace_json(session: AsyncSession, registry: Registry, namespace: str) -> NamespaceJson:
    publisher = await namespace_publisher(session, namespace)
    rows = await publishing.published_extensions(session, text=None, publisher_ids=[publisher.id],
                                                 limit=MAX_SCANNED_EXTENSIONS)
    names = sorted(str(version.manifest["name"]) for _, version in rows)
    return NamespaceJson(name=publisher.slug, extensions={name: registry.api(publisher.slug, name) for name in names},
                         verified=publisher.verified)


# --- search -------------------------------------------------------------------------------------------

async def search(session: AsyncSession, registry: Registry, *, query: str | None, category: str | None,
                 target: str | None, size: int, offset: int, sort_by: str, descending: bool,
                 include_all_versions: bool) -> tuple[list[SearchEntryJson], int]:
    found = [(e, v) for e, v in await published_extensions(session, text=query)
             if matches_filters(v, category=category, target=target)]
    key = SORTS.get(sort_by, SORTS["relevance"])
    found.sort(key=lambda item: (key(*item), item[0].listing.slug), reverse=descending)
    page = []
    for extension, version in found[offset:offset + size]:
        versions = await versions_of(session, extension) if include_all_versions else None
        page.append(search_entry(registry, extension, version, versions=versions,
                                 downloadable=await may_download(session, registry, extension.listing)))
    return page, len(found)


async def query(session: AsyncSession, registry: Registry, *, namespace: str | None, name: str | None,
                version: str | None, extension_id: str | None, extension_uuid: str | None,
                namespace_uuid: str | None, include_all_versions: str, target: str | None,
                size: int, offset: int) -> tuple[list[ExtensionJson], int]:
    """``/api/v2/-/query``: one entry per matching version (all of them with
    ``includeAllVersions=true``, else the latest), newest first."""
    if extension_id:
        namespace, _, name = extension_id.partition(".")
    candidates = [(e, v) for e, v in await published_extensions(session, text=None)
                  if (not namespace or e.publisher.slug == namespace.lower())
                  and (not name or e.name.lower() == name.lower())
                  and (not extension_uuid or str(e.listing.id) == extension_uuid)
                  and (not namespace_uuid or str(e.publisher.id) == namespace_uuid)]
    entries: list[ExtensionJson] = []
    for extension, _ in candidates:
        versions = await versions_of(session, extension, target=target)
        if not versions:
            continue
        downloadable = await may_download(session, registry, extension.listing)
        if version:
            chosen = [v for v in versions if v.version == version]
        elif include_all_versions == "true":
            chosen = versions
        else:
            chosen = [pick_version(versions, None, extension)]
        entries += [extension_json(registry, extension, v, versions, downloadable=downloadable,
                                   all_versions=include_all_versions != "false") for v in chosen]
    return entries[offset:offset + size], len(entries)
