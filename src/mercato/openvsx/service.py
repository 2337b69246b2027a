"""Open VSX on Mercato: namespace = publisher, extension = a plugin listing, VSIX = a version.

Publishing goes through the same services as the API (catalog for the listing, publishing for
the version and the review queue): a published VSIX is an ``uploaded`` version submitted to
review, visible to clients once approved, hidden again when yanked, signed on approval.
Reading answers only approved versions of published listings.

Paid extensions: metadata is public; the VSIX bytes go to owners only. An editor cannot send
credentials to a gallery, so a user creates a personal, read-only registry token that rides in
the registry URL's path (``/openvsx/t/{token}/…``) and opens the downloads of what they own.

This module is what other modules use (registry tokens, the prefixes) and what writes: tokens,
downloads, publishing. Reading lives beside it: :mod:`.extensions` finds extensions,
:mod:`.registry_api` answers the Open VSX API and :mod:`.gallery` the VS Code gallery.
"""

from __future__ import annotations

import uuid
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
    NamespaceCreationRefused,
    NamespaceTaken,
    PurchaseRequired,
    RegistryTokenInvalid,
    RegistryTokenNotFound,
)
from mercato.openvsx.extensions import SLUG, Extension, Registry, listing_slugs, may_download, namespace_publisher
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
    publisher = await namespace_publisher(session, namespace)
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
    if not SLUG.match(slug):
        raise NamespaceCreationRefused(f"{name!r} can't be a publisher slug: use 2–64 of a-z, 0-9 and '-'.")
    await publishers.create(session, actor=actor, slug=slug, name=name, description="", website=None,
                            owner_email=actor.email)
    return f"Created namespace {slug}"


async def _listing_for(session: AsyncSession, *, actor: Principal, publisher: Publisher,
                       inspected: InspectedVsix, currency: str) -> Listing:
    """The extension's listing: an existing one of this publisher (slug = name, or namespace-name),
    else a new free draft plugin listing (price it through the API before submitting, or later)."""
    manifest = inspected.manifest
    slugs = listing_slugs(publisher.slug, manifest.extension_name)
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
