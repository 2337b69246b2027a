"""Versions: upload, submission, the outcome of review, yanking and downloads.

The archive is inspected (``mercato.packages``) and stored before the transaction that
records it begins, so a large upload never holds the database's write lock. An archive
stored for a version whose transaction then fails stays in the store unreferenced; the
store is content-addressed, so a retry of the same file reuses it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Condition, Permission
from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.catalog import service as catalog
from mercato.catalog.errors import ListingTransitionRefused
from mercato.kit import semver
from mercato.kit.clock import utcnow
from mercato.kit.errors import Forbidden, found_or_raise
from mercato.kit.keys import artifact_message
from mercato.library import service as library
from mercato.models import Listing, ListingVersion
from mercato.publishers import service as publishers
from mercato.releases import repository
from mercato.releases.errors import (
    ManifestMismatch,
    NotEntitled,
    NothingToSubmit,
    VersionExists,
    VersionNotFound,
    VersionTransitionRefused,
)

MAX_LISTED_FILES = 1000


def _data(listing: Listing, version: ListingVersion, **extra: Any) -> dict[str, Any]:
    return {"listing_id": str(listing.id), "publisher_id": str(listing.publisher_id), "slug": listing.slug,
            "version_id": str(version.id), "version": version.version, **extra}


async def sees_every_version(session: AsyncSession, viewer: Principal | None, listing: Listing) -> bool:
    """Members of the publisher, reviewers and admins see versions in every state; others
    only approved and yanked ones."""
    if viewer is None:
        return False
    if viewer.condition_for(Permission.listing_read) is Condition.any:
        return True
    return await publishers.member_role(session, listing.publisher_id, viewer.user_id) is not None


async def list_versions(session: AsyncSession, viewer: Principal | None, listing: Listing, *,
                        after: tuple[str, uuid.UUID] | None, limit: int) -> list[ListingVersion]:
    statuses = None if await sees_every_version(session, viewer, listing) else repository.PUBLIC_STATUSES
    return await repository.of_listing(session, listing.id, statuses=statuses, after=after, limit=limit)


async def get_version(session: AsyncSession, viewer: Principal | None, listing: Listing,
                      version: str) -> ListingVersion:
    statuses = None if await sees_every_version(session, viewer, listing) else repository.PUBLIC_STATUSES
    return found_or_raise(await repository.get(session, listing.id, version, statuses=statuses),
                          VersionNotFound, f"{listing.slug} has no version {version!r}.")


async def approved_versions(session: AsyncSession, listing_id: uuid.UUID) -> list[ListingVersion]:
    return await repository.of_listing(session, listing_id, statuses=("approved",), after=None, limit=20)


async def by_id(session: AsyncSession, version_id: uuid.UUID) -> ListingVersion:
    return found_or_raise(await repository.by_id(session, version_id),
                          VersionNotFound, f"There is no version {version_id}.")


async def find_by_id(session: AsyncSession, version_id: uuid.UUID) -> ListingVersion | None:
    """A version by id, whatever its status; None when there is none."""
    return await repository.by_id(session, version_id)


async def find_version(session: AsyncSession, listing_id: uuid.UUID, version: str, *,
                       statuses: Sequence[str] | None = None) -> ListingVersion | None:
    """A listing's version by its SemVer string, optionally only in one of ``statuses``."""
    return await repository.get(session, listing_id, version, statuses=statuses)


async def latest_approved(session: AsyncSession, listing_id: uuid.UUID) -> ListingVersion | None:
    """The approved release of highest precedence (a pre-release only while there is no release)."""
    return await repository.latest_approved(session, listing_id)


# --- upload -------------------------------------------------------------------------------------

def check_manifest_fits(listing: Listing, archive: Any) -> None:
    """The package must be this listing's: same name (slug) and kind."""
    manifest = archive.manifest
    problems = []
    if manifest.name != listing.slug:
        problems.append({"loc": ["mercato.toml", "package", "name"], "type": "value_error",
                         "msg": f"is {manifest.name!r}; this listing's packages are named {listing.slug!r}"})
    if manifest.kind != listing.kind:
        problems.append({"loc": ["mercato.toml", "package", "kind"], "type": "value_error",
                         "msg": f"is {manifest.kind!r}; the listing is a {listing.kind}"})
    if problems:
        raise ManifestMismatch("The package does not belong to this listing: " + "; ".join(
            f"package.{p['loc'][-1]} {p['msg']}" for p in problems), errors=problems)


async def record_upload(session: AsyncSession, *, actor: Principal, key: str, archive: Any,
                        report: Any) -> ListingVersion:
    """Record an inspected, stored archive as a new version of the listing (status ``uploaded``)."""
    listing = await catalog.get_for_change(session, actor, key, Permission.version_upload)
    if listing.status == "suspended":
        raise ListingTransitionRefused("A suspended listing takes no uploads.")
    check_manifest_fits(listing, archive)
    manifest = archive.manifest
    checks = report.to_document()
    checks["files"] = [{"path": m.path, "size": m.size} for m in archive.members if not m.is_dir][:MAX_LISTED_FILES]
    now = utcnow()
    version = ListingVersion(
        id=uuid.uuid4(), listing_id=listing.id, version=manifest.version,
        ordering=semver.ordering_key(manifest.version), status="uploaded", sha256=archive.sha256,
        size=archive.size, unpacked_size=archive.unpacked_size, archive_format=archive.format,
        file_count=sum(1 for m in archive.members if not m.is_dir), manifest=manifest.to_document(), checks=checks,
        risk_score=report.risk_score, changelog=archive.changelog, platforms=list(manifest.compatibility.platforms),
        host_range=manifest.compatibility.host, uploaded_by=actor.user_id, download_count=0,
        created_at=now, updated_at=now)
    if await repository.exists(session, listing.id, version.version) or not await repository.add(session, version):
        raise VersionExists(f"{listing.slug} {version.version} was already uploaded; raise the version in "
                            "mercato.toml and build again.")
    await publish(session, CloudEvent(type="version.uploaded", subject=str(version.id), data=_data(
        listing, version, sha256=version.sha256, size=version.size, risk_score=version.risk_score)))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.version_upload,
                resource_type="version", resource_id=version.id,
                after={"listing": listing.slug, "version": version.version, "sha256": version.sha256,
                       "risk_score": version.risk_score})
    return version


async def listing_for_upload(session: AsyncSession, *, actor: Principal, key: str) -> Listing:
    """Check the caller may upload to the listing before its body is inspected."""
    return await catalog.get_for_change(session, actor, key, Permission.version_upload)


# --- submission and review outcomes -------------------------------------------------------------

async def submit(session: AsyncSession, *, actor: Principal, key: str, version: str | None,
                 security_update: bool) -> tuple[Listing, ListingVersion, str]:
    """Put an uploaded version (the newest when ``version`` is None) into review; a listing
    that is not public yet goes into review with it. Returns them and the review's priority:
    the review task itself is opened by the caller, ``moderation.service.submit``."""
    listing = await catalog.get_for_change(session, actor, key, Permission.version_submit)
    if version is None:
        found = await repository.newest_uploaded(session, listing.id)
        if found is None:
            raise NothingToSubmit(f"Upload a version of {listing.slug} first (mercato publish).")
    else:
        found = await get_version(session, actor, listing, version)
    if listing.status == "suspended":
        raise ListingTransitionRefused("A suspended listing takes no new submissions.")
    now = utcnow()
    if not await repository.transition(session, found.id, from_=("uploaded",), to="in_review", at=now,
                                       submitted_at=now):
        raise VersionTransitionRefused(f"Only an uploaded version can be submitted ({found.version} is "
                                       f"{found.status}); upload a new version instead.")
    await catalog.on_submitted(session, listing, version=found.version)
    publisher = await publishers.get_by_id(session, listing.publisher_id)
    priority = "high" if security_update or publisher.verified else "normal"
    await publish(session, CloudEvent(type="version.submitted", subject=str(found.id), data=_data(listing, found)))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.version_submit,
                resource_type="version", resource_id=found.id,
                after={"listing": listing.slug, "version": found.version, "priority": priority})
    return listing, found, priority


async def _refresh_latest(session: AsyncSession, listing: Listing) -> ListingVersion | None:
    latest = await repository.latest_approved(session, listing.id)
    await catalog.on_latest_changed(session, listing, latest_id=latest.id if latest else None,
                                    latest=latest.version if latest else None,
                                    platforms=list(latest.platforms) if latest else [])
    return latest


async def approve(session: AsyncSession, *, version: ListingVersion, reviewer_id: uuid.UUID,
                  signer: Any) -> ListingVersion:
    """Approval signs the artifact digest with the store key and publishes the version."""
    listing = await catalog.get_by_id(session, version.listing_id)
    now = utcnow()
    if not await repository.transition(session, version.id, from_=("in_review",), to="approved", at=now,
                                       decided_at=now, decided_by=reviewer_id, decision_reason=None,
                                       signature=signer.sign(artifact_message(version.sha256)),
                                       signature_key_id=signer.key_id):
        raise VersionTransitionRefused(f"{listing.slug} {version.version} is not in review.")
    latest = await repository.latest_approved(session, listing.id)
    await catalog.on_approved(session, listing, latest_id=latest.id if latest else None,
                              latest=latest.version if latest else None,
                              platforms=list(latest.platforms) if latest else [])
    await publish(session, CloudEvent(type="version.approved", subject=str(version.id), data=_data(
        listing, version, latest=latest is not None and latest.id == version.id)))
    return version


async def refuse(session: AsyncSession, *, version: ListingVersion, reviewer_id: uuid.UUID, outcome: str,
                 reason: str) -> ListingVersion:
    """``rejected`` or ``changes_requested``: the publisher fixes it and uploads a new version."""
    listing = await catalog.get_by_id(session, version.listing_id)
    now = utcnow()
    if not await repository.transition(session, version.id, from_=("in_review",), to=outcome, at=now,
                                       decided_at=now, decided_by=reviewer_id, decision_reason=reason):
        raise VersionTransitionRefused(f"{listing.slug} {version.version} is not in review.")
    await catalog.on_refused(session, listing, outcome=outcome, reason=reason)
    await publish(session, CloudEvent(type=f"version.{outcome}", subject=str(version.id),
                                      data=_data(listing, version, reason=reason)))
    return version


async def reopen(session: AsyncSession, *, version: ListingVersion) -> None:
    """An upheld appeal puts a rejected version (and its listing) back into review."""
    listing = await catalog.get_by_id(session, version.listing_id)
    if not await repository.transition(session, version.id, from_=("rejected",), to="in_review", at=utcnow(),
                                       decided_at=None, decided_by=None):
        raise VersionTransitionRefused(f"{listing.slug} {version.version} is not rejected.")
    await catalog.on_submitted(session, listing, version=version.version)


async def yank(session: AsyncSession, *, actor: Principal, key: str, version: str, reason: str) -> ListingVersion:
    """Hide an approved version from new installs; those who have it keep it. "Latest" moves
    to the next highest approved version."""
    listing = await catalog.get_for_change(session, actor, key, Permission.version_yank)
    found = await get_version(session, actor, listing, version)
    now = utcnow()
    if not await repository.transition(session, found.id, from_=("approved",), to="yanked", at=now,
                                       yanked_at=now, yank_reason=reason):
        raise VersionTransitionRefused(f"Only an approved version can be yanked ({found.version} is {found.status}).")
    await _refresh_latest(session, listing)
    await publish(session, CloudEvent(type="version.yanked", subject=str(found.id),
                                      data=_data(listing, found, reason=reason)))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.version_yank,
                resource_type="version", resource_id=found.id,
                before={"status": "approved"}, after={"status": "yanked", "reason": reason})
    return found


# --- downloads ----------------------------------------------------------------------------------

async def for_download(session: AsyncSession, *, viewer: Principal, key: str, version: str,
                       count: bool = True) -> tuple[Listing, ListingVersion]:
    """The version a caller may download.

    Members of the publisher, reviewers and admins download any version (to test and review
    it). Everyone else needs an approved (or yanked) version and an entitlement: free
    listings entitle any signed-in user on first download, paid ones their owners.
    """
    listing = await catalog.get_visible(session, viewer, key)
    if viewer.condition_for(Permission.version_download, listing.slug) is None:  # a token scoped to other listings
        raise Forbidden(f"This API token's scopes do not reach {listing.slug!r} (version:download@{listing.slug}).")
    privileged = await sees_every_version(session, viewer, listing)
    found = await get_version(session, viewer, listing, version)
    if not privileged:
        if not await library.entitle_for_download(session, user_id=viewer.user_id, listing=listing, count=count):
            raise NotEntitled(f"Buy {listing.slug} first: only its owners may download it.")
    return listing, found


async def count_download(session: AsyncSession, *, listing: Listing, version: ListingVersion,
                         user_id: uuid.UUID | None = None) -> None:
    """An answer handed out bytes of the archive: count it on the version, the listing and, for
    ``user_id``, on their entitlement (what the refund policy's download limit reads)."""
    await repository.count_download(session, version.id)
    await catalog.count(session, listing.id, day_stat="downloads", download_count=1)
    if user_id is not None:
        await library.count_download(session, user_id=user_id, listing_id=listing.id)


# --- the Open VSX adapter's reads (mercato.openvsx) ---------------------------------------------

async def published_extensions(session: AsyncSession, *, text: str | None,
                               publisher_ids: list[uuid.UUID] | None,
                               limit: int) -> list[tuple[Listing, ListingVersion]]:
    """Published listings whose latest approved version is a VS Code extension (``vsix``)."""
    return await repository.published_latest_of_format(session, archive_format="vsix", text=text,
                                                       publisher_ids=publisher_ids, limit=limit)


async def approved_of(session: AsyncSession, listing_id: uuid.UUID, *, limit: int) -> list[ListingVersion]:
    """Approved versions, highest first (yanked ones are hidden from new installs)."""
    return await repository.of_listing(session, listing_id, statuses=("approved",), after=None, limit=limit)
