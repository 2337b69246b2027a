"""Installations (I2–I4): install, upgrade, clone, uninstall, stop, resume and open a package on an instance.

Each operation queues a task for the instance's agent. A request is checked against the
state the installation will have once its open tasks succeed; the dispatch checks the
state it really has (a task that no longer fits fails at once, with the reason).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.principal import Principal
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.config import Settings
from mercato.installs import repository
from mercato.installs.checks import check_requirements, checked_config, listing_for, version_for
from mercato.installs.errors import (
    AlreadyLatest,
    InstallationNameTaken,
    InstallationNotFound,
    InstallationTransitionRefused,
    NothingToOpen,
)
from mercato.installs.instances import Scope, get_instance
from mercato.installs.transitions import OUTCOME, STARTS_FROM, installation_data, task_event
from mercato.kit.clock import utcnow
from mercato.kit.semver import version_sort_key
from mercato.models import Installation, InstallTask, Instance, Listing, ListingVersion
from mercato.releases import service as versions


async def get_installation(session: AsyncSession, *, scope: Scope, installation_id: uuid.UUID) -> Installation:
    installation = await repository.installation(session, installation_id, owner_id=scope.owner_id)
    if installation is None:
        raise InstallationNotFound(f"You have no installation {installation_id}.")
    return installation


async def installations_of(session: AsyncSession, *, scope: Scope, instance_id: uuid.UUID,
                           after: tuple[datetime, uuid.UUID] | None, limit: int,
                           include_uninstalled: bool) -> list[Installation]:
    instance = await get_instance(session, scope=scope, instance_id=instance_id)
    return await repository.installations_of(session, instance.id, after=after, limit=limit,
                                             include_uninstalled=include_uninstalled)


async def install(session: AsyncSession, *, actor: Principal, settings: Settings, instance_id: uuid.UUID,
                  listing_id: uuid.UUID, version: str | None, name: str | None, config: dict[str, Any] | None,
                  auto_upgrade: bool) -> InstallTask:
    instance = await get_instance(session, scope=Scope(actor.user_id), instance_id=instance_id)
    listing = await listing_for(session, actor.user_id, listing_id)
    found = await version_for(session, listing, version)
    check_requirements(found, instance)
    settled = checked_config(found.manifest, config)
    return await _new_installation(session, settings=settings, instance=instance, listing=listing, version=found,
                                   name=name or listing.slug, config=settled, auto_upgrade=auto_upgrade)


async def _new_installation(session: AsyncSession, *, settings: Settings, instance: Instance, listing: Listing,
                            version: ListingVersion, name: str, config: dict[str, Any],
                            auto_upgrade: bool) -> InstallTask:
    if await repository.name_taken(session, instance.id, name):
        raise InstallationNameTaken(f"{instance.name} has an installation named {name!r} already: "
                                    "choose another name.")
    now = utcnow()
    installation = Installation(id=uuid.uuid4(), instance_id=instance.id, owner_id=instance.owner_id,
                                listing_id=listing.id, name=name, active_name=name, state="installing",
                                version=None, config=config, auto_upgrade=auto_upgrade, created_at=now,
                                updated_at=now)
    repository.add(session, installation)
    await session.flush()
    await publish(session, CloudEvent(type="installation.created", subject=str(installation.id), data={
        **installation_data(installation), "state": "installing", "version": version.version}))
    return await _queue(session, settings=settings, installation=installation, kind="install", version=version)


async def _queue(session: AsyncSession, *, settings: Settings, installation: Installation, kind: str,
                 version: ListingVersion | None) -> InstallTask:
    now = utcnow()
    task = InstallTask(id=uuid.uuid4(), instance_id=installation.instance_id, installation_id=installation.id,
                       owner_id=installation.owner_id, kind=kind, state="queued",
                       version_id=version.id if version else None, version=version.version if version else None,
                       from_version=installation.version, progress=0, attempt=1,
                       max_attempts=settings.installs_task_max_attempts, queued_at=now, created_at=now,
                       updated_at=now)
    repository.add(session, task)
    await session.flush()
    await task_event(session, task)
    return task


async def _projected_state(session: AsyncSession, installation: Installation) -> str:
    """The state the installation will have once its open tasks succeed."""
    state = installation.state
    for task in await repository.open_tasks_of(session, installation.id):
        state = OUTCOME[task.kind]
    return state


async def _ready_for(session: AsyncSession, installation: Installation, kind: str) -> None:
    state = await _projected_state(session, installation)
    if state not in STARTS_FROM[kind] or (kind == "upgrade" and installation.version is None):
        raise InstallationTransitionRefused(
            f"Installation {installation.name!r} is {installation.state}"
            + (f" (and will be {state} after its queued tasks)" if state != installation.state else "")
            + f"; {kind} needs it to be {' or '.join(STARTS_FROM[kind])}.")


async def operate(session: AsyncSession, *, actor: Principal, settings: Settings, installation_id: uuid.UUID,
                  kind: str) -> InstallTask:
    """uninstall, stop, resume: a task for the agent."""
    installation = await get_installation(session, scope=Scope(actor.user_id), installation_id=installation_id)
    await _ready_for(session, installation, kind)
    return await _queue(session, settings=settings, installation=installation, kind=kind, version=None)


async def upgrade(session: AsyncSession, *, actor: Principal, settings: Settings, installation_id: uuid.UUID,
                  version: str | None) -> InstallTask:
    installation = await get_installation(session, scope=Scope(actor.user_id), installation_id=installation_id)
    await _ready_for(session, installation, "upgrade")
    return await queue_upgrade(session, settings=settings, installation=installation, version=version,
                               owner_id=actor.user_id)


async def queue_upgrade(session: AsyncSession, *, settings: Settings, installation: Installation,
                        version: str | None, owner_id: uuid.UUID) -> InstallTask:
    """The upgrade task to ``version`` (None: the latest approved), once the owner may still
    install the listing, the instance can run it and the settings fit it."""
    instance = await get_instance(session, scope=Scope(owner_id), instance_id=installation.instance_id)
    listing = await listing_for(session, owner_id, installation.listing_id)
    found = await version_for(session, listing, version)
    current = installation.version or "0.0.0"
    if (found.version == current) or (version is None and version_sort_key(found.version) <= version_sort_key(current)):
        raise AlreadyLatest(f"{installation.name!r} has {current}; the latest approved version is {found.version}.")
    check_requirements(found, instance)
    settled = checked_config(found.manifest, installation.config)
    if settled != installation.config:
        await repository.update_installation(session, installation.id, at=utcnow(), config=settled)
    return await _queue(session, settings=settings, installation=installation, kind="upgrade", version=found)


async def clone(session: AsyncSession, *, actor: Principal, settings: Settings, installation_id: uuid.UUID,
                name: str, config: dict[str, Any] | None) -> InstallTask:
    """A second copy of the same listing and version on the same instance, under another name."""
    source = await get_installation(session, scope=Scope(actor.user_id), installation_id=installation_id)
    if source.version is None or source.state not in ("installed", "stopped"):
        raise InstallationTransitionRefused(f"Installation {source.name!r} is {source.state}; only an installed or "
                                            "stopped installation can be cloned.")
    instance = await get_instance(session, scope=Scope(actor.user_id), instance_id=source.instance_id)
    listing = await listing_for(session, actor.user_id, source.listing_id)
    found = await version_for(session, listing, source.version)
    check_requirements(found, instance)
    settled = checked_config(found.manifest, source.config if config is None else config)
    return await _new_installation(session, settings=settings, instance=instance, listing=listing, version=found,
                                   name=name, config=settled, auto_upgrade=source.auto_upgrade)


async def set_auto_upgrade(session: AsyncSession, *, actor: Principal, installation_id: uuid.UUID,
                           auto_upgrade: bool) -> Installation:
    installation = await get_installation(session, scope=Scope(actor.user_id), installation_id=installation_id)
    await repository.update_installation(session, installation.id, at=utcnow(), auto_upgrade=auto_upgrade)
    await session.refresh(installation)
    return installation


async def launch(session: AsyncSession, *, scope: Scope, installation_id: uuid.UUID) -> dict[str, Any]:
    """What "open" returns: the manifest's ``[launch]`` of the version in place."""
    installation = await get_installation(session, scope=scope, installation_id=installation_id)
    if installation.state != "installed" or installation.version is None:
        raise NothingToOpen(f"Installation {installation.name!r} is {installation.state}; only an installed one "
                            "can be opened (resume a stopped one first).")
    found = await versions.find_version(session, installation.listing_id, installation.version)
    launch_table = (found.manifest.get("launch") or {}) if found else {}
    instance = await repository.instance(session, installation.instance_id, owner_id=None)
    if launch_table.get("url"):
        values = {**{k: str(v) for k, v in installation.config.items() if isinstance(v, str | int)},
                  "host": str(((instance.resources if instance else None) or {}).get("host") or "localhost")}
        url = str(launch_table["url"])
        for key, value in values.items():
            url = url.replace("{" + key + "}", value)
        return {"installation_id": installation.id, "kind": "url", "entry": None, "url": url}
    if launch_table.get("entry"):
        return {"installation_id": installation.id, "kind": "entry", "entry": launch_table["entry"], "url": None}
    raise NothingToOpen(f"{installation.name!r} (a plugin or library) has nothing to open.")
