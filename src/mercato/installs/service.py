"""Installs (PRODUCT I1–I6, DOMAIN.md "Installation and task").

Installation: ``installing → installed ⇄ stopped``, ``installed → upgrading → installed``,
``installed|stopped → uninstalling → uninstalled``, any → ``failed`` (the last operation
failed; the previous version stays where it was). A failed installation may be
uninstalled, stopped, resumed, and upgraded when a version is in place (a decision:
otherwise neither a retry nor anything else gets a failed copy going or off the machine).

Task: ``queued → dispatched → running → succeeded | failed | canceled``;
``queued|dispatched|running → canceled`` on request; ``failed → queued`` on retry
(attempt + 1, up to ``max_attempts``). One task per installation is dispatched or running
at a time (``installations.active_task_id``, taken with a guarded update); later ones
queue in ``queued_at`` order. A request is checked against the state the installation
will have once its open tasks succeed; the dispatch checks the state it really has (a
task that no longer fits fails at once, with the reason).

The installation takes its ``…ing`` state when the task is dispatched and its outcome
when the agent reports the result. A dispatched or running task must report within its
deadline (each report extends it); status correction fails it otherwise.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jsonschema import Draft202012Validator
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.bus import service as bus_service
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.catalog import service as catalog
from mercato.catalog.errors import ListingNotFound
from mercato.config import Settings
from mercato.installs import repository
from mercato.installs.auth import new_instance_token
from mercato.installs.errors import (
    AlreadyLatest,
    InstallationNameTaken,
    InstallationNotFound,
    InstallationTransitionRefused,
    InstallListingNotFound,
    InstanceNotFound,
    InvalidConfig,
    NothingToOpen,
    RequirementsNotMet,
    RetryLimitReached,
    TaskCanceled,
    TaskNotFound,
    TaskTransitionRefused,
    VersionNotAvailable,
)
from mercato.kit.clock import utcnow
from mercato.kit.metrics import INSTALL_TASKS, count_on_commit
from mercato.kit.semver import parse_range, parse_version, version_sort_key
from mercato.library import service as library
from mercato.models import Installation, InstallTask, Instance, Listing, ListingVersion
from mercato.notifications import service as notifications
from mercato.releases import service as versions
from mercato.releases.errors import NotEntitled

# What a task leaves the installation in when it succeeds.
OUTCOME = {"install": "installed", "upgrade": "installed", "resume": "installed", "stop": "stopped",
           "uninstall": "uninstalled"}
# The state an installation shows while the task runs (stop and resume are quick: none).
WORKING = {"install": "installing", "upgrade": "upgrading", "uninstall": "uninstalling"}
# The states a task may start from.
STARTS_FROM = {"install": ("installing", "failed"), "upgrade": ("installed", "failed"),
               "uninstall": ("installed", "stopped", "failed"), "stop": ("installed", "failed"),
               "resume": ("stopped", "failed")}
TERMINAL_TASK = ("succeeded", "failed", "canceled")
NAME_FIELDS = ("loc", "msg", "type")


@dataclass(frozen=True)
class Scope:
    """Whose rows the caller sees: one owner's, or (``owner_id`` None) everyone's."""

    owner_id: uuid.UUID | None

    @classmethod
    def of(cls, actor: Principal, *, everything: bool) -> Scope:
        return cls(None if everything else actor.user_id)


# --- instances ------------------------------------------------------------------------------

async def _move_task(session: AsyncSession, task: InstallTask, *, from_: Sequence[str], to: str, at: datetime,
                     **values: Any) -> bool:
    """The guarded task transition; an outcome is counted in /metrics once it commits."""
    moved = await repository.move_task(session, task.id, from_=from_, to=to, at=at, **values)
    if moved and to in TERMINAL_TASK:
        count_on_commit(session, INSTALL_TASKS.labels(task.kind, to))
    return moved


async def register_instance(session: AsyncSession, *, actor: Principal, name: str) -> tuple[Instance, str]:
    token, digest = new_instance_token()
    now = utcnow()
    instance = Instance(id=uuid.uuid4(), owner_id=actor.user_id, name=name, token_hash=digest,
                        token_hint=token[:12], resources={}, inventory=[], created_at=now, updated_at=now)
    repository.add(session, instance)
    await session.flush()
    await publish(session, CloudEvent(type="instance.registered", subject=str(instance.id), data={
        "instance_id": str(instance.id), "user_id": str(actor.user_id), "name": name}))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.instance_register,
                resource_type="instance", resource_id=instance.id, after={"name": name})
    return instance, token


async def get_instance(session: AsyncSession, *, scope: Scope, instance_id: uuid.UUID) -> Instance:
    instance = await repository.instance(session, instance_id, owner_id=scope.owner_id)
    if instance is None:
        raise InstanceNotFound(f"You have no instance {instance_id}.")
    return instance


async def instances(session: AsyncSession, *, scope: Scope, after: tuple[datetime, uuid.UUID] | None,
                    limit: int) -> list[Instance]:
    return await repository.instances(session, owner_id=scope.owner_id, after=after, limit=limit)


async def delete_instance(session: AsyncSession, *, actor: Principal, instance_id: uuid.UUID) -> None:
    """Revoke the token at once; open tasks of the instance are canceled (nobody would run them)."""
    instance = await get_instance(session, scope=Scope(actor.user_id), instance_id=instance_id)
    for task in await repository.open_tasks_of_instance(session, instance.id):
        await _cancel(session, task, message="The instance was deleted.")
    if not await repository.revoke_instance(session, instance.id, at=utcnow()):
        raise InstanceNotFound(f"You have no instance {instance_id}.")
    await publish(session, CloudEvent(type="instance.deleted", subject=str(instance.id), data={
        "instance_id": str(instance.id), "user_id": str(instance.owner_id), "name": instance.name}))
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.instance_delete,
                resource_type="instance", resource_id=instance.id, before={"name": instance.name})


# --- checks before a task is created ------------------------------------------------------------

def requirement_problems(manifest: dict[str, Any], instance: Instance) -> list[dict[str, Any]]:
    """What the instance lacks for this package, from its last report (empty: it fits)."""
    problems: list[dict[str, Any]] = []
    compatibility = manifest.get("compatibility") or {}
    platforms = compatibility.get("platforms") or ["any"]
    if "any" not in platforms:
        if instance.platform is None:
            problems.append(_problem("platform", "missing", f"The instance has not reported its platform; the "
                                     f"package runs on {', '.join(platforms)}."))
        elif instance.platform not in platforms:
            problems.append(_problem("platform", "unsupported", f"The package runs on {', '.join(platforms)}, "
                                     f"not on {instance.platform}."))
    host = compatibility.get("host")
    if host and not parse_range(host).is_any:
        if instance.host_version is None:
            problems.append(_problem("host_version", "missing", f"The instance has not reported its host version; "
                                     f"the package needs {host}."))
        elif instance.host_version not in parse_range(host):
            problems.append(_problem("host_version", "unsupported", f"The package needs host {host}; the instance "
                                     f"has {instance.host_version}."))
    requirements = manifest.get("requirements") or {}
    for key, what in (("memory_mb", "memory"), ("disk_mb", "disk space")):
        needed = requirements.get(key)
        if not needed:
            continue
        available = (instance.resources or {}).get(key)
        if available is None:
            problems.append(_problem(key, "missing", f"The instance has not reported its free {what}; the package "
                                     f"needs {needed} MB."))
        elif available < needed:
            problems.append(_problem(key, "insufficient", f"The package needs {needed} MB of {what}; the instance "
                                     f"has {available} MB free."))
    return problems


def _problem(field: str, kind: str, message: str) -> dict[str, Any]:
    return {"loc": ["instance", field], "msg": message, "type": f"requirement_{kind}"}


def checked_config(manifest: dict[str, Any], config: dict[str, Any] | None) -> dict[str, Any]:
    """The configuration with the schema's top-level defaults filled in; InvalidConfig names
    every missing or invalid setting."""
    schema = (manifest.get("config") or {}).get("schema")
    given = dict(config or {})
    if not schema:
        if given:
            raise InvalidConfig("This package takes no settings.",
                                errors=[{"loc": ["body", "config", key], "msg": "Unknown setting.", "type": "extra"}
                                        for key in sorted(given)])
        return given
    for key, spec in (schema.get("properties") or {}).items():
        if isinstance(spec, dict) and "default" in spec and key not in given:
            given[key] = spec["default"]
    errors = []
    for error in sorted(Draft202012Validator(schema).iter_errors(given), key=lambda e: list(e.absolute_path)):
        path = [str(p) for p in error.absolute_path]
        if error.validator == "required":
            missing = [name for name in error.validator_value if name not in (error.instance or {})]
            errors.extend({"loc": ["body", "config", *path, name], "msg": f"The setting {name!r} is required.",
                           "type": "missing"} for name in missing)
        else:
            errors.append({"loc": ["body", "config", *path], "msg": error.message, "type": str(error.validator)})
    if errors:
        names = ", ".join(".".join(str(p) for p in e["loc"][2:]) or "config" for e in errors)
        raise InvalidConfig(f"The configuration does not fit the package's settings: {names}.", errors=errors)
    return given


async def _listing_for(session: AsyncSession, actor_id: uuid.UUID, listing_id: uuid.UUID) -> Listing:
    """The listing, if the owner may install it: an entitlement, or a free published
    listing (got into the library now, as a free download does)."""
    try:
        listing = await catalog.get_by_id(session, listing_id)
    except ListingNotFound:
        raise InstallListingNotFound(f"There is no listing {listing_id}.") from None
    if not await library.entitle_for_download(session, user_id=actor_id, listing=listing, count=False):
        if listing.status != "published" and listing.sort_price == 0:
            raise InstallListingNotFound(f"There is no listing {listing_id}.")
        raise NotEntitled(f"Buy {listing.slug} first: only its owners may install it.")
    return listing


async def _version_for(session: AsyncSession, listing: Listing, version: str | None) -> ListingVersion:
    found = (await versions.find_version(session, listing.id, version, statuses=("approved",)) if version
             else await versions.latest_approved(session, listing.id))
    if found is None:
        raise VersionNotAvailable(f"{listing.slug} has no approved version {version!r}." if version
                                  else f"{listing.slug} has no approved version yet.",
                                  errors=[{"loc": ["body", "version"], "msg": "Not an approved version.",
                                           "type": "version_not_available"}])
    return found


def _check_requirements(version: ListingVersion, instance: Instance) -> None:
    problems = requirement_problems(version.manifest, instance)
    if problems:
        raise RequirementsNotMet(f"{instance.name} cannot run version {version.version}: "
                                 + " ".join(p["msg"] for p in problems), errors=problems)


# --- installations and tasks -------------------------------------------------------------------

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
    listing = await _listing_for(session, actor.user_id, listing_id)
    found = await _version_for(session, listing, version)
    _check_requirements(found, instance)
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
        **_installation_data(installation), "state": "installing", "version": version.version}))
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
    await _task_event(session, task)
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
    return await _upgrade(session, settings=settings, installation=installation, version=version,
                          owner_id=actor.user_id)


async def _upgrade(session: AsyncSession, *, settings: Settings, installation: Installation, version: str | None,
                   owner_id: uuid.UUID) -> InstallTask:
    instance = await get_instance(session, scope=Scope(owner_id), instance_id=installation.instance_id)
    listing = await _listing_for(session, owner_id, installation.listing_id)
    found = await _version_for(session, listing, version)
    current = installation.version or "0.0.0"
    if (found.version == current) or (version is None and version_sort_key(found.version) <= version_sort_key(current)):
        raise AlreadyLatest(f"{installation.name!r} has {current}; the latest approved version is {found.version}.")
    _check_requirements(found, instance)
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
    listing = await _listing_for(session, actor.user_id, source.listing_id)
    found = await _version_for(session, listing, source.version)
    _check_requirements(found, instance)
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


# --- tasks for their owners ---------------------------------------------------------------------

async def get_task(session: AsyncSession, *, scope: Scope, task_id: uuid.UUID) -> InstallTask:
    task = await repository.task(session, task_id, owner_id=scope.owner_id)
    if task is None:
        raise TaskNotFound(f"You have no task {task_id}.")
    return task


async def tasks(session: AsyncSession, *, scope: Scope, state: str | None, instance_id: uuid.UUID | None,
                installation_id: uuid.UUID | None, after: tuple[datetime, uuid.UUID] | None,
                limit: int) -> list[InstallTask]:
    return await repository.tasks(session, owner_id=scope.owner_id, state=state, instance_id=instance_id,
                                  installation_id=installation_id, after=after, limit=limit)


async def state_of(session: AsyncSession, task_id: uuid.UUID) -> str | None:
    task = await repository.task(session, task_id)
    return task.state if task else None


async def cancel(session: AsyncSession, *, actor: Principal, task_id: uuid.UUID) -> InstallTask:
    task = await get_task(session, scope=Scope(actor.user_id), task_id=task_id)
    if task.state in TERMINAL_TASK:
        raise TaskTransitionRefused(f"Task {task.id} is {task.state} already; only queued, dispatched or running "
                                    "tasks can be canceled.")
    if not await _cancel(session, task, message="Canceled by the owner."):
        raise TaskTransitionRefused(f"Task {task.id} finished meanwhile.")
    await session.refresh(task)
    return task


async def _cancel(session: AsyncSession, task: InstallTask, *, message: str) -> bool:
    was = task.state
    if not await _move_task(session, task, from_=repository.OPEN_TASK_STATES, to="canceled",
                                      at=utcnow(), finished_at=utcnow(), message=message):
        return False
    await session.refresh(task)
    installation = await _installation_row(session, task.installation_id)
    await repository.release_installation(session, installation.id, task.id)
    if task.kind == "install" and installation.version is None:
        await _move(session, installation, from_=("installing", "failed"), to="uninstalled")
    elif was in repository.ACTIVE_TASK_STATES and installation.state == WORKING.get(task.kind):
        await _move(session, installation, from_=(installation.state,), to=task.from_state or "installed")
    await _task_event(session, task)
    return True


async def retry(session: AsyncSession, *, actor: Principal, task_id: uuid.UUID) -> InstallTask:
    task = await get_task(session, scope=Scope(actor.user_id), task_id=task_id)
    if task.state != "failed":
        raise TaskTransitionRefused(f"Task {task.id} is {task.state}; only a failed task can be retried.")
    if task.attempt >= task.max_attempts:
        raise RetryLimitReached(f"Task {task.id} has had {task.attempt} of {task.max_attempts} attempts; "
                                "start a new operation instead.")
    if not await repository.retry(session, task.id, at=utcnow()):
        raise TaskTransitionRefused(f"Task {task.id} changed meanwhile.")
    await session.refresh(task)
    await _task_event(session, task)
    return task


# --- the agent ----------------------------------------------------------------------------------

async def heartbeat(session: AsyncSession, *, instance_id: uuid.UUID, inventory: list[dict[str, Any]],
                    resources: dict[str, Any], platform: str | None, host_version: str | None) -> int:
    """Store what the agent reports (kept as reported: status correction compares it)."""
    values: dict[str, Any] = {"inventory": inventory, "resources": resources}
    if platform is not None:
        values["platform"] = platform
    if host_version is not None:
        values["host_version"] = host_version
    await repository.record_heartbeat(session, instance_id, at=utcnow(), values=values)
    return await repository.count_queued(session, instance_id)


async def dispatch(session: AsyncSession, *, settings: Settings, instance_id: uuid.UUID,
                   limit: int) -> list[InstallTask]:
    """Hand out the instance's next queued tasks (one per idle installation), marking them
    dispatched with a deadline; a task that no longer fits its installation fails here."""
    handed: list[InstallTask] = []
    for task in await repository.queued_heads(session, instance_id, limit=limit):
        installation = await _installation_row(session, task.installation_id)
        now = utcnow()
        if installation.state not in STARTS_FROM[task.kind] or (task.kind == "upgrade"
                                                                 and installation.version is None):
            if await _move_task(session, task, from_=("queued",), to="failed", at=now, finished_at=now,
                                          message=f"The installation is {installation.state}: it cannot {task.kind}."):
                await session.refresh(task)
                await _task_event(session, task)
            continue
        if not await repository.take_installation(session, installation.id, task.id):
            continue
        if not await _move_task(session, task, from_=("queued",), to="dispatched", at=now,
                                          dispatched_at=now, from_state=installation.state,
                                          deadline_at=now + timedelta(seconds=settings.installs_task_deadline_seconds)):
            await repository.release_installation(session, installation.id, task.id)
            continue
        if task.kind in WORKING and installation.state != WORKING[task.kind]:
            await _move(session, installation, from_=(installation.state,), to=WORKING[task.kind])
        await session.refresh(task)
        await _task_event(session, task)
        handed.append(task)
    return handed


async def agent_task(session: AsyncSession, *, instance_id: uuid.UUID, task_id: uuid.UUID) -> InstallTask:
    task = await repository.task(session, task_id, instance_id=instance_id)
    if task is None:
        raise TaskNotFound(f"This instance has no task {task_id}.")
    return task


async def in_flight(session: AsyncSession, *, instance_id: uuid.UUID) -> list[InstallTask]:
    return await repository.in_flight(session, instance_id)


async def progress(session: AsyncSession, *, settings: Settings, instance_id: uuid.UUID, task_id: uuid.UUID,
                   percent: int, message: str | None) -> InstallTask:
    task = await agent_task(session, instance_id=instance_id, task_id=task_id)
    _refuse_finished(task)
    now = utcnow()
    deadline = now + timedelta(seconds=settings.installs_task_deadline_seconds)
    if task.state == "dispatched":
        await _move_task(session, task, from_=("dispatched",), to="running", at=now, started_at=now)
    if not await repository.report_progress(session, task.id, percent=percent, message=message, at=now,
                                            deadline=deadline):
        await session.refresh(task)
        _refuse_finished(task)
    await session.refresh(task)
    await publish(session, CloudEvent(type="task.progress", subject=str(task.id), data={
        **_task_data(task), "progress": task.progress, "message": task.message}))
    return task


def _refuse_finished(task: InstallTask) -> None:
    if task.state == "canceled":
        raise TaskCanceled(f"Task {task.id} was canceled: stop, roll back, and report nothing more.")
    if task.state in TERMINAL_TASK:
        raise TaskTransitionRefused(f"Task {task.id} is {task.state} already.")


async def result(session: AsyncSession, *, instance_id: uuid.UUID, task_id: uuid.UUID, outcome: str,
                 message: str | None) -> InstallTask:
    """The agent's last word on a task. Repeating the same outcome is harmless (the first
    one counts); a result for a canceled task is refused with ``task_canceled``."""
    task = await agent_task(session, instance_id=instance_id, task_id=task_id)
    if task.state == outcome:
        return task
    _refuse_finished(task)
    if task.state == "queued":
        raise TaskTransitionRefused(f"Task {task.id} has not been handed out yet: fetch it first.")
    now = utcnow()
    values: dict[str, Any] = {"finished_at": now, "message": message, "deadline_at": None}
    if outcome == "succeeded":
        values["progress"] = 100
    if task.started_at is None:
        values["started_at"] = now
    if not await _move_task(session, task, from_=repository.ACTIVE_TASK_STATES, to=outcome, at=now,
                                      **values):
        await session.refresh(task)
        if task.state == outcome:
            return task
        _refuse_finished(task)
    await session.refresh(task)
    await _finish_installation(session, task, succeeded=outcome == "succeeded")
    await _task_event(session, task)
    return task


async def _finish_installation(session: AsyncSession, task: InstallTask, *, succeeded: bool) -> None:
    installation = await _installation_row(session, task.installation_id)
    await repository.release_installation(session, installation.id, task.id)
    if installation.state == "uninstalled":
        return
    if not succeeded:
        await _move(session, installation, from_=(installation.state,), to="failed")
        return
    values: dict[str, Any] = {}
    if task.kind in ("install", "upgrade"):
        values["version"] = task.version
    elif task.kind == "uninstall":
        values["version"] = None
    await _move(session, installation, from_=(installation.state,), to=OUTCOME[task.kind], **values)
    if task.kind == "install":
        await catalog.count(session, installation.listing_id, day_stat="installs", install_count=1)


async def artifact_of(session: AsyncSession, *, instance_id: uuid.UUID, task_id: uuid.UUID) -> ListingVersion:
    """The version an active install or upgrade task downloads."""
    task = await agent_task(session, instance_id=instance_id, task_id=task_id)
    if task.version_id is None or task.state not in repository.ACTIVE_TASK_STATES:
        raise TaskNotFound(f"Task {task.id} has no artifact to download now (it is {task.state}).")
    found = await versions.find_by_id(session, task.version_id)
    if found is None:
        raise TaskNotFound(f"The version of task {task.id} is gone.")
    return found


async def artifact_for_download(session: AsyncSession, *, instance_id: uuid.UUID,
                                task_id: uuid.UUID) -> ListingVersion:
    """The archive an agent fetches for a task, if the task's owner may still have it.

    Checked when the bytes are handed out, not when the task was queued: an entitlement
    revoked meanwhile (a refund) answers 403 ``not_entitled``. The fetch counts as one of the
    owner's downloads (the refund policy's limit reads it), like a download through the API.
    """
    task = await agent_task(session, instance_id=instance_id, task_id=task_id)
    found = await artifact_of(session, instance_id=instance_id, task_id=task_id)
    await _listing_for(session, task.owner_id, found.listing_id)
    await library.count_download(session, user_id=task.owner_id, listing_id=found.listing_id)
    return found


# --- status correction (I5) ---------------------------------------------------------------------

@dataclass
class Corrections:
    tasks_failed: int = 0
    installations_fixed: int = 0
    instances_compared: int = 0


async def fail_overdue(session: AsyncSession, *, limit: int) -> int:
    """Dispatched or running tasks past their deadline fail (the agent went quiet)."""
    now = utcnow()
    failed = 0
    for task in await repository.overdue(session, now=now, limit=limit):
        old = task.state
        if not await _move_task(session, task, from_=(old,), to="failed", at=now, finished_at=now,
                                          deadline_at=None,
                                          message="No report from the agent within the task's deadline."):
            continue
        await session.refresh(task)
        await _finish_installation(session, task, succeeded=False)
        await _task_event(session, task)
        await _corrected(session, resource="task", row_id=task.id, owner_id=task.owner_id,
                         instance_id=task.instance_id, field="state", old=old, new="failed",
                         reason="deadline_passed")
        failed += 1
    return failed


async def correct_instance(session: AsyncSession, instance: Instance) -> int:
    """Make the records of the instance's idle installations what its last inventory says.

    Only installations with no open task and not changed since the report are compared
    (a report from before a task finished must not undo it). Reported: state and version
    as reported. Not reported: the directory is gone, so the installation is uninstalled.
    Items naming installations the store does not know are ignored.
    """
    reported_at = instance.reported_at
    assert reported_at is not None
    reported = {}
    for item in instance.inventory or []:
        try:
            reported[uuid.UUID(str(item.get("installation_id")))] = item
        except (ValueError, AttributeError):
            continue
    fixed = 0
    for installation in await repository.live_installations_of(session, instance.id):
        if installation.active_task_id is not None or installation.updated_at >= reported_at:
            continue
        if await repository.open_tasks_of(session, installation.id):
            continue
        item = reported.get(installation.id)
        new_state, new_version = ("uninstalled", None) if item is None else (item["state"], item.get("version"))
        if (new_state, new_version) == (installation.state, installation.version):
            continue
        old = {"state": installation.state, "version": installation.version}
        if not await _move(session, installation, from_=(installation.state,), to=new_state, version=new_version,
                           idle=True):
            continue
        await _corrected(session, resource="installation", row_id=installation.id, owner_id=installation.owner_id,
                         instance_id=instance.id, field="state", old=old,
                         new={"state": new_state, "version": new_version},
                         reason="not_in_inventory" if item is None else "inventory_differs")
        fixed += 1
    await repository.mark_corrected(session, instance.id, reported_at=reported_at)
    return fixed


async def instances_to_correct(session: AsyncSession, *, settings: Settings, limit: int) -> list[Instance]:
    fresh_after = utcnow() - timedelta(seconds=settings.installs_heartbeat_stale_seconds)
    return await repository.instances_to_correct(session, fresh_after=fresh_after, limit=limit)


async def _corrected(session: AsyncSession, *, resource: str, row_id: uuid.UUID, owner_id: uuid.UUID,
                     instance_id: uuid.UUID, field: str, old: Any, new: Any, reason: str) -> None:
    await publish(session, CloudEvent(type="status.corrected", subject=str(row_id), data={
        "resource": resource, "id": str(row_id), "user_id": str(owner_id), "instance_id": str(instance_id),
        "field": field, "old": old, "new": new, "reason": reason}))


async def snapshot(session: AsyncSession, *, settings: Settings) -> dict[str, Any]:
    """``GET /admin/runtime``: counts by state, instances reporting, overdue tasks, and every
    sweep's last run and health (its lease row)."""
    now = utcnow()
    fresh_after = now - timedelta(seconds=settings.installs_heartbeat_stale_seconds)
    return {"at": now, "instances": await repository.instance_counts(session, fresh_after=fresh_after),
            "installations": await repository.counts_by_state(session, Installation),
            "tasks": await repository.counts_by_state(session, InstallTask),
            "overdue_tasks": await repository.count_overdue(session, now=now),
            "sweeps": [{"name": lease.name, "last_run_at": lease.last_run_at, "ok": lease.last_ok,
                        "error": lease.last_error, "next_run_after": lease.expires_at}
                       for lease in await bus_service.leases(session)]}


# --- update notices (I6) ------------------------------------------------------------------------

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
                await _upgrade(session, settings=settings, installation=installation, version=found.version,
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
            **_installation_data(installation), "version": found.version, "installed_version": current,
            "auto_upgrade": upgrading}))
        told += 1
    return told


# --- the pieces -------------------------------------------------------------------------------------

async def _installation_row(session: AsyncSession, installation_id: uuid.UUID) -> Installation:
    installation = await repository.installation(session, installation_id, owner_id=None)
    if installation is None:
        raise InstallationNotFound(f"There is no installation {installation_id}.")
    await session.refresh(installation)
    return installation


async def _move(session: AsyncSession, installation: Installation, *, from_: tuple[str, ...], to: str,
                idle: bool = False, **values: Any) -> bool:
    old = installation.state
    if not await repository.move_installation(session, installation.id, from_=from_, to=to, at=utcnow(), idle=idle,
                                              **values):
        return False
    await session.refresh(installation)
    await publish(session, CloudEvent(type="installation.state_changed", subject=str(installation.id), data={
        **_installation_data(installation), "from": old, "to": to, "version": installation.version}))
    return True


def _installation_data(installation: Installation) -> dict[str, Any]:
    return {"installation_id": str(installation.id), "instance_id": str(installation.instance_id),
            "user_id": str(installation.owner_id), "listing_id": str(installation.listing_id),
            "name": installation.name}


def _task_data(task: InstallTask) -> dict[str, Any]:
    return {"task_id": str(task.id), "instance_id": str(task.instance_id),
            "installation_id": str(task.installation_id), "user_id": str(task.owner_id), "kind": task.kind,
            "state": task.state, "version": task.version, "attempt": task.attempt}


async def _task_event(session: AsyncSession, task: InstallTask) -> None:
    data = _task_data(task)
    if task.state in TERMINAL_TASK:
        data["message"] = task.message
    await publish(session, CloudEvent(type=f"task.{task.state}", subject=str(task.id), data=data))
