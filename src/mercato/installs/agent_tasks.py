"""Tasks on the agent's side (I4): handing them out, their progress and result, their artifact.

The installation takes its ``…ing`` state when the task is dispatched and its outcome
when the agent reports the result. A dispatched or running task must report within its
deadline (each report extends it); status correction fails it otherwise.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.config import Settings
from mercato.installs import repository
from mercato.installs.checks import listing_for
from mercato.installs.errors import TaskCanceled, TaskNotFound, TaskTransitionRefused
from mercato.installs.transitions import (
    STARTS_FROM,
    TERMINAL_TASK,
    WORKING,
    finish_installation,
    installation_row,
    move_installation,
    move_task,
    task_data,
    task_event,
)
from mercato.kit.clock import utcnow
from mercato.kit.errors import found_or_raise
from mercato.library import service as library
from mercato.models import InstallTask, ListingVersion
from mercato.releases import service as versions


async def dispatch(session: AsyncSession, *, settings: Settings, instance_id: uuid.UUID,
                   limit: int) -> list[InstallTask]:
    """Hand out the instance's next queued tasks (one per idle installation), marking them
    dispatched with a deadline; a task that no longer fits its installation fails here."""
    handed: list[InstallTask] = []
    for task in await repository.queued_heads(session, instance_id, limit=limit):
        installation = await installation_row(session, task.installation_id)
        now = utcnow()
        if installation.state not in STARTS_FROM[task.kind] or (task.kind == "upgrade"
                                                                 and installation.version is None):
            if await move_task(session, task, from_=("queued",), to="failed", at=now, finished_at=now,
                               message=f"The installation is {installation.state}: it cannot {task.kind}."):
                await session.refresh(task)
                await task_event(session, task)
            continue
        if not await repository.take_installation(session, installation.id, task.id):
            continue
        if not await move_task(session, task, from_=("queued",), to="dispatched", at=now,
                               dispatched_at=now, from_state=installation.state,
                               deadline_at=now + timedelta(seconds=settings.installs_task_deadline_seconds)):
            await repository.release_installation(session, installation.id, task.id)
            continue
        if task.kind in WORKING and installation.state != WORKING[task.kind]:
            await move_installation(session, installation, from_=(installation.state,), to=WORKING[task.kind])
        await session.refresh(task)
        await task_event(session, task)
        handed.append(task)
    return handed


async def agent_task(session: AsyncSession, *, instance_id: uuid.UUID, task_id: uuid.UUID) -> InstallTask:
    task = found_or_raise(await repository.task(session, task_id, instance_id=instance_id), TaskNotFound,
                          f"This instance has no task {task_id}.")
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
        await move_task(session, task, from_=("dispatched",), to="running", at=now, started_at=now)
    if not await repository.report_progress(session, task.id, percent=percent, message=message, at=now,
                                            deadline=deadline):
        await session.refresh(task)
        _refuse_finished(task)
    await session.refresh(task)
    await publish(session, CloudEvent(type="task.progress", subject=str(task.id), data={
        **task_data(task), "progress": task.progress, "message": task.message}))
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
    if not await move_task(session, task, from_=repository.ACTIVE_TASK_STATES, to=outcome, at=now, **values):
        await session.refresh(task)
        if task.state == outcome:
            return task
        _refuse_finished(task)
    await session.refresh(task)
    await finish_installation(session, task, succeeded=outcome == "succeeded")
    await task_event(session, task)
    return task


async def artifact_of(session: AsyncSession, *, instance_id: uuid.UUID, task_id: uuid.UUID) -> ListingVersion:
    """The version an active install or upgrade task downloads."""
    task = await agent_task(session, instance_id=instance_id, task_id=task_id)
    if task.version_id is None or task.state not in repository.ACTIVE_TASK_STATES:
        raise TaskNotFound(f"Task {task.id} has no artifact to download now (it is {task.state}).")
    found = found_or_raise(await versions.find_by_id(session, task.version_id), TaskNotFound,
                           f"The version of task {task.id} is gone.")
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
    await listing_for(session, task.owner_id, found.listing_id)
    await library.count_download(session, user_id=task.owner_id, listing_id=found.listing_id)
    return found
