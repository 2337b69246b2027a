"""Open VSX on Mercato: namespace = publisher, extension = a plugin listing, VSIX = a version.

Publishing goes through the same services as the API (catalog for the listing, publishing for
the version and the review queue): a published VSIX is an ``uploaded`` version submitted to
review, visible to clients once approved, hidden again when yanked, signed on approval.
Reading answers only approved versions of published listings.

Paid extensions: metadata is public; the VSIX bytes go to owners only. An editor cannot send
credentials to a gallery, so a user creates a personal, read-only registry token that rides in
the registry URL's path (``/openvsx/t/{token}/…``) and opens the downloads of what they own.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Condition, Permission
from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.catalog import service as catalog
from mercato.catalog.errors import ListingNotFound, ListingSlugTaken
from mercato.kit.clock import utcnow
from mercato.kit.errors import Forbidden
from mercato.kit.security import new_secret, secret_digest
from mercato.library import service as library
from mercato.models import Listing, ListingVersion, Publisher
from mercato.models.openvsx import RegistryToken
from mercato.moderation import service as review
from mercato.openvsx import repository
from mercato.openvsx.errors import (
    AlreadyPublished,
    ExtensionNotFound,
    NamespaceCreationRefused,
    NamespaceNotFound,
    NamespaceTaken,
    PurchaseRequired,
    RegistryTokenInvalid,
    RegistryTokenNotFound,
)
from mercato.openvsx.schemas import (
    ExtensionJson,
    ExtensionReferenceJson,
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
    NamespaceJson,
    SearchEntryJson,
    UserJson,
    VersionReferenceJson,
    VersionTargetPlatformsJson,
)
from mercato.packages.vsix import InspectedVsix
from mercato.publishers import service as publishers
from mercato.publishers.errors import PublisherNotFound
from mercato.releases import service as publishing
from mercato.releases.errors import VersionExists

# Where app.py mounts the registry API (and its personal-token form), as clients are told.
PREFIX = "/openvsx"
PERSONAL_PREFIX = "/openvsx/t/{registry_token}"
REGISTRY_TOKEN_PREFIX = "mcv_"
# The Open VSX server version whose API this adapter answers like: ovsx >= 1.4 then sends the
# token in a header and asks /api/-/size-limit (both need a registry at 1.3.0 or later).
OPENVSX_API_VERSION = "1.3.0"
# Search and the gallery filter in memory over at most this many published extensions.
MAX_SCANNED_EXTENSIONS = 2000
MAX_VERSIONS = 200
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
_SLUG = re.compile(r"^[a-z0-9-]{2,64}$")


@dataclass(frozen=True)
class Registry:
    """Who asks and where the answers' URLs point: ``base`` is the registry URL the client was
    given (with the personal token in it, if any), so every URL in an answer keeps it."""

    base: str
    store: str
    user_id: uuid.UUID | None = None

    def api(self, *segments: str) -> str:
        return "/".join([self.base, "api", *segments])


@dataclass(frozen=True)
class Extension:
    publisher: Publisher
    listing: Listing
    name: str  # the extension's name in the editor


# --- personal registry tokens -------------------------------------------------------------------

async def create_token(session: AsyncSession, *, actor: Principal, name: str) -> tuple[RegistryToken, str]:
    """A read-only token for the registry URL; its secret is returned once, stored as a hash."""
    secret = new_secret(REGISTRY_TOKEN_PREFIX)
    token = RegistryToken(id=uuid.uuid4(), user_id=actor.user_id, name=name.strip(), hint=secret[:10],
                          token_hash=secret_digest(secret), created_at=utcnow())
    await repository.add(session, token)
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.registry_token_create,
                resource_type="registry_token", resource_id=token.id, after={"name": token.name})
    return token, secret


async def list_tokens(session: AsyncSession, *, actor: Principal) -> list[RegistryToken]:
    return await repository.active_of(session, actor.user_id)


async def revoke_token(session: AsyncSession, *, actor: Principal, token_id: uuid.UUID) -> None:
    if not await repository.revoke(session, actor.user_id, token_id, utcnow()):
        raise RegistryTokenNotFound(f"You have no active registry token with id {token_id}.")
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.registry_token_revoke,
                resource_type="registry_token", resource_id=token_id)


async def user_of_token(session: AsyncSession, secret: str) -> uuid.UUID:
    token = await repository.active_by_hash(session, secret_digest(secret)) \
        if secret.startswith(REGISTRY_TOKEN_PREFIX) else None
    if token is None:
        raise RegistryTokenInvalid("This personal registry URL's token is invalid or was revoked; create a new one "
                                   "(POST /api/v1/me/registry-tokens) and update the editor's settings.")
    return token.user_id


# --- finding extensions ---------------------------------------------------------------------------

async def _publisher(session: AsyncSession, namespace: str) -> Publisher:
    try:
        return await publishers.get(session, namespace.lower())
    except PublisherNotFound:
        raise NamespaceNotFound(f"Namespace not found: {namespace}") from None


def _slugs_for(namespace: str, name: str) -> list[str]:
    """The listing slugs an extension may live under: its name, or namespace-name when the name
    was taken by another publisher's listing."""
    return [slug for slug in (name.lower(), f"{namespace}-{name}".lower()) if _SLUG.match(slug)]


async def find(session: AsyncSession, namespace: str, name: str) -> Extension:
    """A published extension (its latest approved version is a VSIX), else 404."""
    missing = ExtensionNotFound(f"Extension not found: {namespace}.{name}")
    try:
        publisher = await _publisher(session, namespace)
    except NamespaceNotFound:
        raise missing from None
    for slug in _slugs_for(publisher.slug, name):
        try:
            listing = await catalog.get_visible(session, None, slug)
        except ListingNotFound:
            continue
        if listing.publisher_id == publisher.id and listing.latest_version_id is not None:
            latest = await publishing.by_id(session, listing.latest_version_id)
            if latest.archive_format == "vsix" and latest.manifest.get("name", "").lower() == name.lower():
                return Extension(publisher=publisher, listing=listing, name=latest.manifest["name"])
    raise missing


async def versions_of(session: AsyncSession, extension: Extension, *,
                      target: str | None = None) -> list[ListingVersion]:
    """Approved VSIX versions, highest first (optionally of one target platform)."""
    rows = await publishing.approved_of(session, extension.listing.id, limit=MAX_VERSIONS)
    return [v for v in rows if v.archive_format == "vsix" and (target is None or _target(v) == target)]


def _target(version: ListingVersion) -> str:
    return str(version.manifest.get("targetPlatform") or "universal")


def pick_version(versions: list[ListingVersion], wanted: str | None, extension: Extension) -> ListingVersion:
    """``wanted`` is a version, ``latest``, ``pre-release`` or None (latest)."""
    if not versions:
        raise ExtensionNotFound(f"Extension not found: {extension.publisher.slug}.{extension.name}")
    if wanted in (None, "latest"):
        stable = [v for v in versions if not v.manifest.get("preRelease")]
        return (stable or versions)[0]
    if wanted == "pre-release":
        pre = [v for v in versions if v.manifest.get("preRelease")]
        if pre:
            return pre[0]
    for version in versions:
        if version.version == wanted:
            return version
    raise ExtensionNotFound(f"Extension not found: {extension.publisher.slug}.{extension.name} {wanted}")


async def may_download(session: AsyncSession, registry: Registry, listing: Listing) -> bool:
    """Free: anyone. Paid: its owners and the publisher's members, through a personal registry URL."""
    if listing.sort_price == 0:
        return True
    if registry.user_id is None:
        return False
    if await library.is_entitled(session, user_id=registry.user_id, listing_id=listing.id):
        return True
    return await publishers.member_role(session, listing.publisher_id, registry.user_id) is not None


# --- the JSON shapes --------------------------------------------------------------------------------

def _time(value: datetime | None) -> str:
    return (value or utcnow()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _version_path(extension: Extension, version: ListingVersion) -> list[str]:
    target = _target(version)
    return [extension.publisher.slug, extension.name, *([target] if target != "universal" else []), version.version]


def download_name(extension: Extension, version: ListingVersion) -> str:
    target = _target(version)
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
        target_platform=_target(version), version=version.version, pre_release=bool(manifest.get("preRelease")),
        published_by=UserJson(login_name=publisher.slug, full_name=publisher.name), verified=publisher.verified,
        all_versions=all_links, average_rating=listing.rating_average if listing.rating_count else None,
        download_count=listing.download_count, review_count=listing.rating_count, version_alias=aliases,
        timestamp=_time(version.decided_at or version.created_at), preview=bool(manifest.get("preview")),
        display_name=manifest.get("displayName"), namespace_display_name=publisher.name or publisher.slug,
        description=manifest.get("description"), engines=engines, categories=manifest.get("categories") or None,
        extension_kind=manifest.get("extensionKind") or None, tags=manifest.get("tags") or None,
        license=manifest.get("license"), homepage=manifest.get("homepage"), repository=manifest.get("repository"),
        sponsor_link=manifest.get("sponsorLink"), bugs=manifest.get("bugs"), qna=manifest.get("qna"),
        gallery_color=manifest.get("galleryColor"), gallery_theme=manifest.get("galleryTheme"),
        localized_languages=manifest.get("localizedLanguages") or None,
        dependencies=_references(registry, manifest.get("dependencies") or []),
        bundled_extensions=_references(registry, manifest.get("bundledExtensions") or []),
        downloads={_target(version): file_urls(registry, extension, version)["download"]},
        all_target_platform_versions=[VersionTargetPlatformsJson(version=v.version, target_platforms=[_target(v)])
                                      for v in versions] or None,
        url=url, downloadable=downloadable, **_paid_marks(registry, listing, downloadable))


def version_reference(registry: Registry, extension: Extension, version: ListingVersion) -> VersionReferenceJson:
    return VersionReferenceJson(url=registry.api(*_version_path(extension, version)),
                                files=file_urls(registry, extension, version), version=version.version,
                                target_platform=_target(version), engines=version.manifest.get("engines") or None)


def search_entry(registry: Registry, extension: Extension, version: ListingVersion, *, downloadable: bool,
                 versions: list[ListingVersion] | None) -> SearchEntryJson:
    listing, manifest = extension.listing, version.manifest
    return SearchEntryJson(
        url=registry.api(extension.publisher.slug, extension.name), files=file_urls(registry, extension, version),
        name=extension.name, namespace=extension.publisher.slug, version=version.version,
        timestamp=_time(version.decided_at or version.created_at), verified=extension.publisher.verified,
        all_versions=[version_reference(registry, extension, v) for v in versions] if versions is not None else None,
        average_rating=listing.rating_average if listing.rating_count else None, review_count=listing.rating_count,
        download_count=listing.download_count, display_name=manifest.get("displayName"),
        description=manifest.get("description"), **_paid_marks(registry, listing, downloadable))


async def namespace_json(session: AsyncSession, registry: Registry, namespace: str) -> NamespaceJson:
    publisher = await _publisher(session, namespace)
    rows = await publishing.published_extensions(session, text=None, publisher_ids=[publisher.id],
                                                 limit=MAX_SCANNED_EXTENSIONS)
    names = sorted(str(version.manifest["name"]) for _, version in rows)
    return NamespaceJson(name=publisher.slug, extensions={name: registry.api(publisher.slug, name) for name in names},
                         verified=publisher.verified)


# --- search -------------------------------------------------------------------------------------------

async def _published(session: AsyncSession, *, text: str | None) -> list[tuple[Extension, ListingVersion]]:
    rows = await publishing.published_extensions(session, text=text, publisher_ids=None, limit=MAX_SCANNED_EXTENSIONS)
    by_id = await catalog.publishers_by_id(session, {listing.publisher_id for listing, _ in rows})
    return [(Extension(publisher=by_id[listing.publisher_id], listing=listing, name=str(version.manifest["name"])),
             version) for listing, version in rows if listing.publisher_id in by_id]


def _matches(version: ListingVersion, *, category: str | None, target: str | None, tag: str | None = None) -> bool:
    manifest = version.manifest
    if category and category.lower() not in [c.lower() for c in manifest.get("categories") or []]:
        return False
    if tag and tag.lower() not in [t.lower() for t in manifest.get("tags") or []]:
        return False
    return not target or _target(version) in (target, "universal")


_SORTS = {
    "relevance": lambda e, v: e.listing.download_count,
    "downloadCount": lambda e, v: e.listing.download_count,
    "rating": lambda e, v: e.listing.rating_average,
    "averageRating": lambda e, v: e.listing.rating_average,
    "timestamp": lambda e, v: (v.decided_at or v.created_at).timestamp(),
}


async def search(session: AsyncSession, registry: Registry, *, query: str | None, category: str | None,
                 target: str | None, size: int, offset: int, sort_by: str, descending: bool,
                 include_all_versions: bool) -> tuple[list[SearchEntryJson], int]:
    found = [(e, v) for e, v in await _published(session, text=query)
             if _matches(v, category=category, target=target)]
    key = _SORTS.get(sort_by, _SORTS["relevance"])
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
    candidates = [(e, v) for e, v in await _published(session, text=None)
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


# --- the VS Code gallery ------------------------------------------------------------------------------

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
    return GalleryVersion(version=version.version, last_updated=_time(version.decided_at or version.created_at),
                          asset_uri=asset_uri if with_uri else None, fallback_asset_uri=asset_uri if with_uri else None,
                          files=files, properties=properties, target_platform=_target(version))


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
        tags=list(manifest.get("tags") or []), release_date=_time(first.decided_at or first.created_at),
        published_date=_time(first.decided_at or first.created_at),
        last_updated=_time(latest.decided_at or latest.created_at), categories=list(manifest.get("categories") or []),
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
    found = await _published(session, text=None if ids or names else (text or None))
    if ids or names:
        found = [(e, v) for e, v in found
                 if str(e.listing.id) in ids or f"{e.publisher.slug}.{e.name}".lower() in names]
    else:
        found = [(e, v) for e, v in found if _matches(v, category=category, target=None, tag=tag)]
    page_size = page_filter.pageSize if page_filter and page_filter.pageSize > 0 else DEFAULT_GALLERY_PAGE
    page_number = max(1, page_filter.pageNumber if page_filter else 1)
    if page_filter and not (ids or names):
        key = _SORTS[GALLERY_SORTS.get(page_filter.sortBy, "relevance")]
        found.sort(key=lambda item: (key(*item), item[0].listing.slug), reverse=page_filter.sortOrder != 1)
    visible: list[tuple[Extension, list[ListingVersion]]] = []
    for extension, _ in found:
        if not await may_download(session, registry, extension.listing):
            continue
        versions = [v for v in await versions_of(session, extension)
                    if not target or _target(v) in (target, "universal")]
        if versions:
            visible.append((extension, versions))
    page = visible[(page_number - 1) * page_size:page_number * page_size]
    extensions = [_gallery_extension(registry, e, versions, body.flags) for e, versions in page]
    return GalleryQueryResult(results=[GalleryResultItem(extensions=extensions, result_metadata=[GalleryMetadata(
        metadata_type="ResultCount", metadata_items=[GalleryMetadataItem(name="TotalCount", count=len(visible))])])])


# --- files and downloads --------------------------------------------------------------------------------

async def vsix_for_download(session: AsyncSession, registry: Registry, extension: Extension,
                            version: ListingVersion) -> None:
    """Refuse the VSIX of a paid extension to anyone but its owners; count the download
    (an owner's per-entitlement count is what the refund policy reads)."""
    listing = extension.listing
    if not await may_download(session, registry, listing):
        where = f"{registry.store}/listings/{listing.slug}"
        hint = (" Then install it through your personal registry URL (docs/openvsx.md)." if registry.user_id is None
                else "")
        raise PurchaseRequired(f"{extension.publisher.slug}.{extension.name} is a paid extension: buy it at "
                               f"{where}.{hint}", purchase_url=where)
    if registry.user_id is not None and listing.sort_price != 0:
        await library.entitle_for_download(session, user_id=registry.user_id, listing=listing, count=True)
    await publishing.count_download(session, listing=listing, version=version)


def stored_file(version: ListingVersion, file_name: str) -> tuple[str, dict[str, Any]] | None:
    """(kind, {"name", "sha256", "size"}) of a small file kept beside the VSIX, by its file name."""
    for kind, stored in (version.manifest.get("files") or {}).items():
        if stored.get("name") == file_name:
            return kind, stored
    return None


# --- publishing -------------------------------------------------------------------------------------

async def check_may_publish(session: AsyncSession, *, actor: Principal, namespace: str) -> Publisher:
    """Before the body is read: the namespace exists and the caller acts for it."""
    publisher = await _publisher(session, namespace)
    if actor.condition_for(Permission.version_upload) is Condition.any:
        return publisher
    if await publishers.member_role(session, publisher.id, actor.user_id) is None:
        raise Forbidden(f"You are not a member of the publisher {publisher.slug!r}, so you can't publish to the "
                        f"namespace {publisher.slug}.")
    return publisher


async def create_namespace(session: AsyncSession, *, actor: Principal, name: str) -> str:
    """Namespace = publisher. Members of an existing publisher are told it is theirs; a new
    one is created only by those who may create publishers (others apply to become one)."""
    slug = name.lower()
    try:
        publisher = await publishers.get(session, slug)
    except PublisherNotFound:
        publisher = None
    if publisher is not None:
        if await publishers.member_role(session, publisher.id, actor.user_id) is not None:
            return f"Namespace {publisher.slug} is your publisher {publisher.name!r} on this store"
        raise NamespaceTaken(f"Namespace already exists: {publisher.slug}")
    if actor.condition_for(Permission.publisher_create) is None:
        raise NamespaceCreationRefused(f"There is no publisher {slug!r} on this store. Apply to become a publisher "
                                       "(POST /api/v1/publisher-applications); the namespace is its slug.")
    if not _SLUG.match(slug):
        raise NamespaceCreationRefused(f"{name!r} can't be a publisher slug: use 2–64 of a-z, 0-9 and '-'.")
    await publishers.create(session, actor=actor, slug=slug, name=name, description="", website=None,
                            owner_email=actor.email)
    return f"Created namespace {slug}"


async def _listing_for(session: AsyncSession, *, actor: Principal, publisher: Publisher,
                       inspected: InspectedVsix, currency: str) -> Listing:
    """The extension's listing: an existing one of this publisher (slug = name, or namespace-name),
    else a new free draft plugin listing (price it through the API before submitting, or later)."""
    manifest = inspected.manifest
    slugs = _slugs_for(publisher.slug, manifest.extension_name)
    for slug in slugs:
        try:
            listing = await catalog.get_for_change(session, actor, slug, Permission.version_upload)
        except (ListingNotFound, Forbidden):
            continue
        if listing.publisher_id == publisher.id:
            return listing
    for slug in slugs:
        try:
            return await catalog.create(session, actor=actor, currency=currency, fields={
                "publisher": publisher.slug, "slug": slug,
                "name": (manifest.display_name or manifest.extension_name)[:100], "kind": "plugin",
                "summary": (manifest.description or "")[:140], "tags": manifest.tags[:20],
                "license": manifest.license, "homepage": manifest.homepage})
        except ListingSlugTaken:
            continue
    raise AlreadyPublished(f"Extension {publisher.slug}.{manifest.extension_name} can't get a listing: the slugs "
                           f"{' and '.join(slugs)} belong to other publishers' listings. Rename the extension.")


async def publish(session: AsyncSession, *, actor: Principal, inspected: InspectedVsix, report: Any,
                  stored_files: dict[str, dict[str, Any]], currency: str) -> tuple[Extension, ListingVersion]:
    """Record a VSIX as a new version of its listing (created as a draft if needed) and submit
    it to review, with the same services and checks as the API's upload and submit."""
    manifest = inspected.manifest
    publisher = await check_may_publish(session, actor=actor, namespace=manifest.publisher)
    listing = await _listing_for(session, actor=actor, publisher=publisher, inspected=inspected, currency=currency)
    extension_id = f"{publisher.slug}.{manifest.extension_name}"
    target = "" if manifest.target_platform == "universal" else f" ({manifest.target_platform})"
    try:
        version = await publishing.record_upload(session, actor=actor, key=listing.slug,
                                                 archive=inspected.for_listing(listing.slug, stored_files),
                                                 report=report)
    except VersionExists:
        raise AlreadyPublished(f"Extension {extension_id} {manifest.version}{target} is already published.") from None
    _, version = await review.submit(session, actor=actor, key=listing.slug, version=version.version,
                                     security_update=False, note=f"Published with ovsx as {extension_id}.")
    return Extension(publisher=publisher, listing=listing, name=manifest.extension_name), version
