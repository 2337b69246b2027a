"""Every query on instances, installations and tasks, and the guarded statements that move them.

"Visible to" scoping: ``owner_id`` narrows a query to one user's rows; ``None`` (an admin
holding the read permission under ``any``) sees every row. Transitions are ``UPDATE …
WHERE state IN (:from)`` so concurrent requests, the agent and the sweep never both win.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.pagination import after_key
from mercato.models import Installation, InstallTask, Instance, Listing

ACTIVE_TASK_STATES = ("dispatched", "running")
OPEN_TASK_STATES = ("queued", "dispatched", "running")


def _changed(result: Any) -> bool:
    return int(result.rowcount or 0) == 1


# --- instances -----------------------------------------------------------------------------------

def add(session: AsyncSession, row: Instance | Installation | InstallTask) -> None:
    session.add(row)


async def instance(session: AsyncSession, instance_id: uuid.UUID, *, owner_id: uuid.UUID | None) -> Instance | None:
    """A registered (not deleted) instance; with ``owner_id`` only if it is that user's."""
    statement = select(Instance).where(Instance.id == instance_id, Instance.revoked_at.is_(None))
    if owner_id is not None:
        statement = statement.where(Instance.owner_id == owner_id)
    return await session.scalar(statement)


async def instances(session: AsyncSession, *, owner_id: uuid.UUID | None, after: tuple[datetime, uuid.UUID] | None,
                    limit: int) -> list[Instance]:
    statement = select(Instance).where(Instance.revoked_at.is_(None))
    if owner_id is not None:
        statement = statement.where(Instance.owner_id == owner_id)
    return list(await session.scalars(after_key(statement, Instance.created_at, Instance.id, after, limit)))


async def revoke_instance(session: AsyncSession, instance_id: uuid.UUID, *, at: datetime) -> bool:
    return _changed(await session.execute(
        update(Instance).where(Instance.id == instance_id, Instance.revoked_at.is_(None))
        .values(revoked_at=at, updated_at=at).execution_options(synchronize_session=False)))


async def record_heartbeat(session: AsyncSession, instance_id: uuid.UUID, *, at: datetime,
                           values: dict[str, Any]) -> None:
    await session.execute(update(Instance).where(Instance.id == instance_id)
                          .values(reported_at=at, updated_at=at, **values)
                          .execution_options(synchronize_session=False))


async def instances_to_correct(session: AsyncSession, *, fresh_after: datetime, limit: int) -> list[Instance]:
    """Instances with an inventory not compared yet, reported after ``fresh_after``."""
    return list(await session.scalars(
        select(Instance).where(Instance.revoked_at.is_(None), Instance.reported_at.is_not(None),
                               Instance.reported_at > fresh_after,
                               or_(Instance.corrected_at.is_(None), Instance.corrected_at < Instance.reported_at))
        .order_by(Instance.reported_at).limit(limit)))


async def mark_corrected(session: AsyncSession, instance_id: uuid.UUID, *, reported_at: datetime) -> None:
    await session.execute(update(Instance).where(Instance.id == instance_id)
                          .values(corrected_at=reported_at).execution_options(synchronize_session=False))


# --- installations ------------------------------------------------------------------------------

async def installation(session: AsyncSession, installation_id: uuid.UUID, *,
                       owner_id: uuid.UUID | None) -> Installation | None:
    """An installation on a registered instance; with ``owner_id`` only the owner's."""
    statement = (select(Installation).join(Instance, Instance.id == Installation.instance_id)
                 .where(Installation.id == installation_id, Instance.revoked_at.is_(None)))
    if owner_id is not None:
        statement = statement.where(Installation.owner_id == owner_id)
    return await session.scalar(statement)


async def installations_of(session: AsyncSession, instance_id: uuid.UUID, *,
                           after: tuple[datetime, uuid.UUID] | None, limit: int,
                           include_uninstalled: bool) -> list[Installation]:
    statement = select(Installation).where(Installation.instance_id == instance_id)
    if not include_uninstalled:
        statement = statement.where(Installation.state != "uninstalled")
    return list(await session.scalars(after_key(statement, Installation.created_at, Installation.id, after, limit)))


async def live_installations_of(session: AsyncSession, instance_id: uuid.UUID) -> list[Installation]:
    return list(await session.scalars(select(Installation).where(
        Installation.instance_id == instance_id, Installation.state != "uninstalled")))


async def name_taken(session: AsyncSession, instance_id: uuid.UUID, name: str) -> bool:
    return await session.scalar(select(Installation.id).where(
        Installation.instance_id == instance_id, Installation.active_name == name).limit(1)) is not None


async def move_installation(session: AsyncSession, installation_id: uuid.UUID, *, from_: Sequence[str], to: str,
                            at: datetime, idle: bool = False, **values: Any) -> bool:
    """``from_`` → ``to`` once (with ``idle``: only while no task is dispatched or running);
    the uninstalled state frees the name."""
    if to == "uninstalled":
        values["active_name"] = None
    statement = update(Installation).where(Installation.id == installation_id, Installation.state.in_(from_))
    if idle:
        statement = statement.where(Installation.active_task_id.is_(None))
    return _changed(await session.execute(statement.values(state=to, updated_at=at, **values)
                                          .execution_options(synchronize_session=False)))


async def update_installation(session: AsyncSession, installation_id: uuid.UUID, *, at: datetime,
                              **values: Any) -> None:
    await session.execute(update(Installation).where(Installation.id == installation_id)
                          .values(updated_at=at, **values).execution_options(synchronize_session=False))


async def take_installation(session: AsyncSession, installation_id: uuid.UUID, task_id: uuid.UUID) -> bool:
    """The task becomes the installation's one active task, if it has none."""
    return _changed(await session.execute(
        update(Installation).where(Installation.id == installation_id, Installation.active_task_id.is_(None))
        .values(active_task_id=task_id).execution_options(synchronize_session=False)))


async def release_installation(session: AsyncSession, installation_id: uuid.UUID, task_id: uuid.UUID) -> None:
    await session.execute(update(Installation).where(Installation.id == installation_id,
                                                     Installation.active_task_id == task_id)
                          .values(active_task_id=None).execution_options(synchronize_session=False))


async def installed_copies_of(session: AsyncSession, listing_id: uuid.UUID) -> list[tuple[Installation, Instance]]:
    """Live installations of a listing with a version in place, with their instance (update notices)."""
    rows = await session.execute(
        select(Installation, Instance).join(Instance, Instance.id == Installation.instance_id)
        .where(Installation.listing_id == listing_id, Installation.state.in_(("installed", "stopped")),
               Installation.version.is_not(None), Instance.revoked_at.is_(None)))
    return [(row[0], row[1]) for row in rows]


async def listing_slugs(session: AsyncSession, listing_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not listing_ids:
        return {}
    rows = await session.execute(select(Listing.id, Listing.slug).where(Listing.id.in_(set(listing_ids))))
    return {row[0]: row[1] for row in rows}


# --- tasks ------------------------------------------------------------------------------------------

async def task(session: AsyncSession, task_id: uuid.UUID, *, owner_id: uuid.UUID | None = None,
               instance_id: uuid.UUID | None = None) -> InstallTask | None:
    statement = select(InstallTask).where(InstallTask.id == task_id)
    if owner_id is not None:
        statement = statement.where(InstallTask.owner_id == owner_id)
    if instance_id is not None:
        statement = statement.where(InstallTask.instance_id == instance_id)
    return await session.scalar(statement)


async def tasks(session: AsyncSession, *, owner_id: uuid.UUID | None, state: str | None,
                instance_id: uuid.UUID | None, installation_id: uuid.UUID | None,
                after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[InstallTask]:
    statement = select(InstallTask)
    if owner_id is not None:
        statement = statement.where(InstallTask.owner_id == owner_id)
    if state is not None:
        statement = statement.where(InstallTask.state == state)
    if instance_id is not None:
        statement = statement.where(InstallTask.instance_id == instance_id)
    if installation_id is not None:
        statement = statement.where(InstallTask.installation_id == installation_id)
    return list(await session.scalars(after_key(statement, InstallTask.created_at, InstallTask.id, after, limit)))


async def open_tasks_of(session: AsyncSession, installation_id: uuid.UUID) -> list[InstallTask]:
    return list(await session.scalars(select(InstallTask).where(
        InstallTask.installation_id == installation_id, InstallTask.state.in_(OPEN_TASK_STATES))
        .order_by(InstallTask.queued_at, InstallTask.id)))


async def open_tasks_of_instance(session: AsyncSession, instance_id: uuid.UUID) -> list[InstallTask]:
    return list(await session.scalars(select(InstallTask).where(
        InstallTask.instance_id == instance_id, InstallTask.state.in_(OPEN_TASK_STATES))))


async def queued_heads(session: AsyncSession, instance_id: uuid.UUID, *, limit: int) -> list[InstallTask]:
    """The oldest queued task of each idle installation of the instance (one running task
    per installation: the next one waits for the active one to finish)."""
    queued = list(await session.scalars(
        select(InstallTask).join(Installation, Installation.id == InstallTask.installation_id)
        .where(InstallTask.instance_id == instance_id, InstallTask.state == "queued",
               Installation.active_task_id.is_(None))
        .order_by(InstallTask.queued_at, InstallTask.id).limit(limit * 5)))
    heads: dict[uuid.UUID, InstallTask] = {}
    for row in queued:
        heads.setdefault(row.installation_id, row)
    return list(heads.values())[:limit]


async def count_queued(session: AsyncSession, instance_id: uuid.UUID) -> int:
    return int(await session.scalar(select(func.count()).select_from(InstallTask).where(
        InstallTask.instance_id == instance_id, InstallTask.state == "queued")) or 0)


async def in_flight(session: AsyncSession, instance_id: uuid.UUID) -> list[InstallTask]:
    return list(await session.scalars(select(InstallTask).where(
        InstallTask.instance_id == instance_id, InstallTask.state.in_(ACTIVE_TASK_STATES))
        .order_by(InstallTask.queued_at, InstallTask.id)))


async def move_task(session: AsyncSession, task_id: uuid.UUID, *, from_: Sequence[str], to: str, at: datetime,
                    **values: Any) -> bool:
    return _changed(await session.execute(
        update(InstallTask).where(InstallTask.id == task_id, InstallTask.state.in_(from_))
        .values(state=to, updated_at=at, **values).execution_options(synchronize_session=False)))


async def report_progress(session: AsyncSession, task_id: uuid.UUID, *, percent: int, message: str | None,
                          at: datetime, deadline: datetime) -> bool:
    return _changed(await session.execute(
        update(InstallTask).where(InstallTask.id == task_id, InstallTask.state == "running")
        .values(progress=percent, message=message, updated_at=at, deadline_at=deadline)
        .execution_options(synchronize_session=False)))


async def retry(session: AsyncSession, task_id: uuid.UUID, *, at: datetime) -> bool:
    """failed → queued with one more attempt, while attempts are left."""
    return _changed(await session.execute(
        update(InstallTask).where(InstallTask.id == task_id, InstallTask.state == "failed",
                                  InstallTask.attempt < InstallTask.max_attempts)
        .values(state="queued", attempt=InstallTask.attempt + 1, progress=0, message=None, queued_at=at,
                dispatched_at=None, started_at=None, deadline_at=None, finished_at=None, from_state=None,
                updated_at=at)
        .execution_options(synchronize_session=False)))


async def overdue(session: AsyncSession, *, now: datetime, limit: int) -> list[InstallTask]:
    return list(await session.scalars(select(InstallTask).where(
        InstallTask.state.in_(ACTIVE_TASK_STATES), InstallTask.deadline_at < now)
        .order_by(InstallTask.deadline_at).limit(limit)))


# --- the runtime snapshot ----------------------------------------------------------------------

async def counts_by_state(session: AsyncSession, model: type[Installation | InstallTask]) -> dict[str, int]:
    rows = await session.execute(select(model.state, func.count()).group_by(model.state))
    return {state: int(count) for state, count in rows}


async def instance_counts(session: AsyncSession, *, fresh_after: datetime) -> dict[str, int]:
    registered = await session.scalar(select(func.count()).select_from(Instance).where(Instance.revoked_at.is_(None)))
    reporting = await session.scalar(select(func.count()).select_from(Instance).where(
        Instance.revoked_at.is_(None), Instance.reported_at > fresh_after))
    return {"registered": int(registered or 0), "reporting": int(reporting or 0)}


async def count_overdue(session: AsyncSession, *, now: datetime) -> int:
    return int(await session.scalar(select(func.count()).select_from(InstallTask).where(
        InstallTask.state.in_(ACTIVE_TASK_STATES), InstallTask.deadline_at < now)) or 0)
