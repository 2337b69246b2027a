"""The VS Code gallery (``POST /vscode/gallery/extensionquery``): the marketplace protocol VS Code
speaks, answered from the same published extensions as the Open VSX registry API."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.models import ListingVersion
from mercato.openvsx.extensions import (
    SORTS,
    Extension,
    Registry,
    matches_filters,
    may_download,
    pick_version,
    published_extensions,
    target_platform,
    versions_of,
)
from mercato.openvsx.registry_api import file_urls, json_time
from mercato.openvsx.schemas import (
    GalleryExtension,
    GalleryFile,
    GalleryMetadata,
    GalleryMetadataItem,
    GalleryProperty,
    GalleryPublisher,
    GalleryQuery,
    GalleryQueryResult,
    GalleryResultItem,
    GalleryStatistic,
    GalleryVersion,
)

# Which stored file a registry file name or a gallery asset type means.
ASSET_KINDS = {
    "Microsoft.VisualStudio.Services.VSIXPackage": "download",
    "Microsoft.VisualStudio.Code.Manifest": "manifest",
    "Microsoft.VisualStudio.Services.Content.Details": "readme",
    "Microsoft.VisualStudio.Services.Content.Changelog": "changelog",
    "Microsoft.VisualStudio.Services.Content.License": "license",
    "Microsoft.VisualStudio.Services.Icons.Default": "icon",
    "Microsoft.VisualStudio.Services.VsixManifest": "vsixmanifest",
}

FILTER_TAG, FILTER_EXTENSION_ID, FILTER_CATEGORY, FILTER_EXTENSION_NAME = 1, 4, 5, 7
FILTER_TARGET, FILTER_FEATURED, FILTER_SEARCH_TEXT, FILTER_EXCLUDE_WITH_FLAGS = 8, 9, 10, 12
FLAG_INCLUDE_VERSIONS, FLAG_INCLUDE_FILES, FLAG_INCLUDE_CATEGORY_AND_TAGS = 0x1, 0x2, 0x4
FLAG_INCLUDE_VERSION_PROPERTIES, FLAG_INCLUDE_ASSET_URI, FLAG_INCLUDE_STATISTICS = 0x10, 0x80, 0x100
FLAG_INCLUDE_LATEST_VERSION_ONLY = 0x200
GALLERY_SORTS = {4: "downloadCount", 5: "timestamp", 6: "rating"}
DEFAULT_GALLERY_PAGE = 50


def _gallery_version(registry: Registry, extension: Extension, version: ListingVersion, flags: int) -> GalleryVersion:
    manifest = version.manifest
    asset_uri = f"{registry.base}/vscode/asset/{extension.publisher.slug}/{extension.name}/{version.version}"
    files = None
    if flags & FLAG_INCLUDE_FILES:
        urls = file_urls(registry, extension, version)
        files = [GalleryFile(asset_type=asset_type, source=urls[kind])
                 for asset_type, kind in ASSET_KINDS.items() if kind in urls]
    properties = None
    if flags & FLAG_INCLUDE_VERSION_PROPERTIES:
        pairs = [("Microsoft.VisualStudio.Services.Branding.Color", manifest.get("galleryColor")),
                 ("Microsoft.VisualStudio.Services.Branding.Theme", manifest.get("galleryTheme")),
                 ("Microsoft.VisualStudio.Services.Links.Source", manifest.get("repository")),
                 ("Microsoft.VisualStudio.Code.SponsorLink", manifest.get("sponsorLink")),
                 ("Microsoft.VisualStudio.Code.Engine", (manifest.get("engines") or {}).get("vscode")),
                 ("Microsoft.VisualStudio.Code.ExtensionDependencies", ",".join(manifest.get("dependencies") or [])),
                 ("Microsoft.VisualStudio.Code.ExtensionPack", ",".join(manifest.get("bundledExtensions") or [])),
                 ("Microsoft.VisualStudio.Code.LocalizedLanguages",
                  ",".join(manifest.get("localizedLanguages") or [])),
                 ("Microsoft.VisualStudio.Code.PreRelease", "true" if manifest.get("preRelease") else None),
                 ("Microsoft.VisualStudio.Code.WebExtension",
                  "true" if "web" in (manifest.get("extensionKind") or []) else None)]
        properties = [GalleryProperty(key=key, value=value) for key, value in pairs if value]
    with_uri = bool(flags & FLAG_INCLUDE_ASSET_URI)
    return GalleryVersion(version=version.version, last_updated=json_time(version.decided_at or version.created_at),
                          asset_uri=asset_uri if with_uri else None, fallback_asset_uri=asset_uri if with_uri else None,
                          files=files, properties=properties, target_platform=target_platform(version))


def _gallery_extension(registry: Registry, extension: Extension, versions: list[ListingVersion],
                       flags: int) -> GalleryExtension:
    latest = pick_version(versions, None, extension)
    manifest, listing = latest.manifest, extension.listing
    if flags & FLAG_INCLUDE_LATEST_VERSION_ONLY:
        shown = [latest]
    elif flags & (FLAG_INCLUDE_VERSIONS | FLAG_INCLUDE_VERSION_PROPERTIES):
        shown = versions
    else:
        shown = []
    statistics = []
    if flags & FLAG_INCLUDE_STATISTICS:
        statistics.append(GalleryStatistic(statistic_name="install", value=listing.download_count))
        if listing.rating_count:
            statistics.append(GalleryStatistic(statistic_name="averagerating", value=listing.rating_average))
        statistics.append(GalleryStatistic(statistic_name="ratingcount", value=listing.rating_count))
    first = versions[-1]
    publisher = extension.publisher
    return GalleryExtension(
        extension_id=str(listing.id), extension_name=extension.name,
        display_name=manifest.get("displayName") or extension.name, short_description=manifest.get("description"),
        publisher=GalleryPublisher(display_name=publisher.name or publisher.slug, publisher_id=str(publisher.id),
                                   publisher_name=publisher.slug),
        versions=[_gallery_version(registry, extension, v, flags) for v in shown], statistics=statistics,
        tags=list(manifest.get("tags") or []), release_date=json_time(first.decided_at or first.created_at),
        published_date=json_time(first.decided_at or first.created_at),
        last_updated=json_time(latest.decided_at or latest.created_at),
        categories=list(manifest.get("categories") or []),
        flags="preview" if manifest.get("preview") else "")


async def gallery_query(session: AsyncSession, registry: Registry, body: GalleryQuery) -> GalleryQueryResult:
    """POST /vscode/gallery/extensionquery. Paid extensions the caller does not own are left
    out: VS Code shows no price and would offer an Install that can only fail (docs/openvsx.md)."""
    criteria = body.filters[0].criteria if body.filters else []
    page_filter = body.filters[0] if body.filters else None

    def values(kind: int) -> list[str]:
        return [c.value for c in criteria if c.filterType == kind and c.value]

    ids, names = set(values(FILTER_EXTENSION_ID)), {n.lower() for n in values(FILTER_EXTENSION_NAME)}
    text = next(iter(values(FILTER_SEARCH_TEXT)), None)
    tag = next(iter(values(FILTER_TAG)), None)
    category = next(iter(values(FILTER_CATEGORY)), None)
    target = next((t for t in values(FILTER_TARGET) if t), None)
    found = await published_extensions(session, text=None if ids or names else (text or None))
    if ids or names:
        found = [(e, v) for e, v in found
                 if str(e.listing.id) in ids or f"{e.publisher.slug}.{e.name}".lower() in names]
    else:
        found = [(e, v) for e, v in found if matches_filters(v, category=category, target=None, tag=tag)]
    page_size = page_filter.pageSize if page_filter and page_filter.pageSize > 0 else DEFAULT_GALLERY_PAGE
    page_number = max(1, page_filter.pageNumber if page_filter else 1)
    if page_filter and not (ids or names):
        key = SORTS[GALLERY_SORTS.get(page_filter.sortBy, "relevance")]
        found.sort(key=lambda item: (key(*item), item[0].listing.slug), reverse=page_filter.sortOrder != 1)
    visible: list[tuple[Extension, list[ListingVersion]]] = []
    for extension, _ in found:
        if not await may_download(session, registry, extension.listing):
            continue
        versions = [v for v in await versions_of(session, extension)
                    if not target or target_platform(v) in (target, "universal")]
        if versions:
            visible.append((extension, versions))
    page = visible[(page_number - 1) * page_size:page_number * page_size]
    extensions = [_gallery_extension(registry, e, versions, body.flags) for e, versions in page]
    return GalleryQueryResult(results=[GalleryResultItem(extensions=extensions, result_metadata=[GalleryMetadata(
        metadata_type="ResultCount", metadata_items=[GalleryMetadataItem(name="TotalCount", count=len(visible))])])])
