"""Status correction (I5): tasks whose agent went quiet fail, records follow the reported
inventory, and the runtime snapshot shows how it all stands.

The sweep that runs it once per interval across every process is in ``handlers.py``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus import service as bus_service
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.config import Settings
from mercato.installs import repository
from mercato.installs.transitions import finish_installation, move_installation, move_task, task_event
from mercato.kit.clock import utcnow
from mercato.models import Installation, InstallTask, Instance


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
        if not await move_task(session, task, from_=(old,), to="failed", at=now, finished_at=now,
                               deadline_at=None, message="No report from the agent within the task's deadline."):
            continue
        await session.refresh(task)
        await finish_installation(session, task, succeeded=False)
        await task_event(session, task)
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
        if not await move_installation(session, installation, from_=(installation.state,), to=new_state,
                                       version=new_version, idle=True):
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
