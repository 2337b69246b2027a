"""Update notices (I6): owners of older copies hear of a newer compatible version, and
copies with ``auto_upgrade`` get their upgrade task."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.catalog import service as catalog
from mercato.config import Settings
from mercato.installs import repository
from mercato.installs.checks import requirement_problems
from mercato.installs.errors import (
    AlreadyLatest,
    InstallListingNotFound,
    InstanceNotFound,
    InvalidConfig,
    RequirementsNotMet,
)
from mercato.installs.installations import queue_upgrade
from mercato.installs.transitions import installation_data
from mercato.kit.semver import parse_version, version_sort_key
from mercato.notifications import service as notifications
from mercato.releases import service as versions
from mercato.releases.errors import NotEntitled


async def on_version_approved(session: AsyncSession, *, settings: Settings, version_id: uuid.UUID,
                              event_id: uuid.UUID) -> int:
    """Tell owners of older copies that a newer compatible version is out; queue the upgrade
    where the owner asked for automatic upgrades. Returns how many installations heard of it."""
    found = await versions.find_by_id(session, version_id)
    if found is None or found.status != "approved":
        return 0
    listing = await catalog.get_by_id(session, found.listing_id)
    told = 0
    for installation, instance in await repository.installed_copies_of(session, listing.id):
        current = installation.version or "0.0.0"
        if (version_sort_key(found.version) <= version_sort_key(current)
                or installation.notified_version == found.version):
            continue
        if parse_version(found.version).prerelease and not parse_version(current).prerelease:
            continue  # pre-releases are offered only to copies already on one (who asked for them)
        if requirement_problems(found.manifest, instance):
            continue  # not compatible with that instance: nothing to offer it
        upgrading = installation.auto_upgrade and installation.state == "installed" and \
            not await repository.open_tasks_of(session, installation.id)
        if upgrading:
            try:
                await queue_upgrade(session, settings=settings, installation=installation, version=found.version,
                                    owner_id=installation.owner_id)
            except (InvalidConfig, NotEntitled, InstallListingNotFound, RequirementsNotMet, AlreadyLatest,
                    InstanceNotFound):
                upgrading = False
        await repository.update_installation(session, installation.id, at=installation.updated_at,
                                             notified_version=found.version)
        await notifications.notify(
            session, event_id=uuid.uuid5(event_id, str(installation.id)), user_ids=[installation.owner_id],
            kind="installation.update_available",
            title=f"{listing.name} {found.version} is available",
            body=(f"{installation.name} on {instance.name} is upgrading from {current}." if upgrading
                  else f"{installation.name} on {instance.name} has {current}."),
            link=f"/instances/{installation.instance_id}",
            data={"installation_id": str(installation.id), "listing_id": str(listing.id),
                  "version": found.version})
        await publish(session, CloudEvent(type="installation.update_available", subject=str(installation.id), data={
            **installation_data(installation), "version": found.version, "installed_version": current,
            "auto_upgrade": upgrading}))
        told += 1
    return told
