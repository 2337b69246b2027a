"""Tasks for their owners (I3): look at them, cancel an open one, retry a failed one."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.principal import Principal
from mercato.installs import repository
from mercato.installs.errors import RetryLimitReached, TaskNotFound, TaskTransitionRefused
from mercato.installs.instances import Scope
from mercato.installs.transitions import TERMINAL_TASK, cancel_task, task_event
from mercato.kit.clock import utcnow
from mercato.kit.errors import found_or_raise
from mercato.models import InstallTask


async def get_task(session: AsyncSession, *, scope: Scope, task_id: uuid.UUID) -> InstallTask:
    task = found_or_raise(await repository.task(session, task_id, owner_id=scope.owner_id), TaskNotFound,
                          f"You have no task {task_id}.")
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
    if not await cancel_task(session, task, message="Canceled by the owner."):
        raise TaskTransitionRefused(f"Task {task.id} finished meanwhile.")
    await session.refresh(task)
    return task


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
    await task_event(session, task)
    return task
