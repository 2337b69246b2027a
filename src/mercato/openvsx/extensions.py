"""Finding Open VSX extensions among Mercato's listings: namespace = publisher, extension = a plugin
listing whose latest approved version is a VSIX; its approved versions, who may download them,
and the scan of every published extension that search, the query API and the gallery filter.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.catalog import service as catalog
from mercato.catalog.errors import ListingNotFound
from mercato.library import service as library
from mercato.models import Listing, ListingVersion, Publisher
from mercato.openvsx.errors import ExtensionNotFound, NamespaceNotFound
from mercato.publishers import service as publishers
from mercato.publishers.errors import PublisherNotFound
from mercato.releases import service as publishing

# Search and the gallery filter in memory over at most this many published extensions.
MAX_SCANNED_EXTENSIONS = 2000
MAX_VERSIONS = 200
SLUG = re.compile(r"^[a-z0-9-]{2,64}$")


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


# --- finding extensions -------------------------------------------------------------------------

async def namespace_publisher(session: AsyncSession, namespace: str) -> Publisher:
    """The publisher a namespace names (namespace = publisher), else 404."""
    try:
        return await publishers.get(session, namespace.lower())
    except PublisherNotFound:
        raise NamespaceNotFound(f"Namespace not found: {namespace}") from None


def listing_slugs(namespace: str, name: str) -> list[str]:
    """The listing slugs an extension may live under: its name, or namespace-name when the name
    was taken by another publisher's listing."""
    return [slug for slug in (name.lower(), f"{namespace}-{name}".lower()) if SLUG.match(slug)]


async def find(session: AsyncSession, namespace: str, name: str) -> Extension:
    """A published extension (its latest approved version is a VSIX), else 404."""
    missing = ExtensionNotFound(f"Extension not found: {namespace}.{name}")
    try:
        publisher = await namespace_publisher(session, namespace)
    except NamespaceNotFound:
        raise missing from None
    for slug in listing_slugs(publisher.slug, name):
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
    return [v for v in rows if v.archive_format == "vsix" and (target is None or target_platform(v) == target)]


def target_platform(version: ListingVersion) -> str:
    """The VSIX's target platform; ``universal`` when it names none."""
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


# --- every published extension ------------------------------------------------------------------

async def published_extensions(session: AsyncSession, *, text: str | None) -> list[tuple[Extension, ListingVersion]]:
    """Every published extension (matching ``text``) with its latest approved VSIX: search, the
    query API and the gallery filter these in memory."""
    rows = await publishing.published_extensions(session, text=text, publisher_ids=None, limit=MAX_SCANNED_EXTENSIONS)
    by_id = await catalog.publishers_by_id(session, {listing.publisher_id for listing, _ in rows})
    return [(Extension(publisher=by_id[listing.publisher_id], listing=listing, name=str(version.manifest["name"])),
             version) for listing, version in rows if listing.publisher_id in by_id]


def matches_filters(version: ListingVersion, *, category: str | None, target: str | None,
                    tag: str | None = None) -> bool:
    manifest = version.manifest
    if category and category.lower() not in [c.lower() for c in manifest.get("categories") or []]:
        return False
    if tag and tag.lower() not in [t.lower() for t in manifest.get("tags") or []]:
        return False
    return not target or target_platform(version) in (target, "universal")


# Sort keys of search and the gallery, by the names their clients send.
SORTS = {
    "relevance": lambda e, v: e.listing.download_count,
    "downloadCount": lambda e, v: e.listing.download_count,
    "rating": lambda e, v: e.listing.rating_average,
    "averageRating": lambda e, v: e.listing.rating_average,
    "timestamp": lambda e, v: (v.decided_at or v.created_at).timestamp(),
}
