"""Reactions and sweeps of installs: update notices (I6) and status correction (I5).

Status correction runs every ``installs_status_sweep_seconds`` (default 120 s). The
scheduler's sweeps have fixed periods, so the sweep ticks every few seconds and runs
the correction only when a lease row of its own (``installs.status_correction``, taken
with the bus's guarded lease update) has expired: once per interval across every
process. That row records the correction's last run and health for ``GET /admin/runtime``.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus import service as bus_service
from mercato.bus.context import HandlerContext, current_bus
from mercato.bus.events import CloudEvent
from mercato.bus.registry import subscribe
from mercato.bus.scheduler import sweep
from mercato.config import Settings
from mercato.installs import correction, updates
from mercato.kit.clock import utcnow
from mercato.kit.db import Database
from mercato.kit.logging import log
from mercato.releases.events import VersionApproved

TICK_SECONDS = 5.0
CORRECTION = "installs.status_correction"
BATCH = 100


@subscribe(VersionApproved, name="installs.update_notices")
async def update_notices(session: AsyncSession, event: CloudEvent[VersionApproved]) -> None:
    """A newer approved version: owners of older compatible copies hear of it; copies with
    ``auto_upgrade`` get their upgrade task."""
    settings = current_bus().settings
    await updates.on_version_approved(session, settings=settings, version_id=event.data.version_id,
                                      event_id=event.id)


async def correct_status(db: Database, *, settings: Settings) -> correction.Corrections:
    """One full pass: fail overdue tasks, then compare each fresh unexamined inventory. Each
    batch (or instance) is its own transaction; running two passes at once is harmless."""
    done = correction.Corrections()
    while True:
        async with db.transaction() as session:
            failed = await correction.fail_overdue(session, limit=BATCH)
        done.tasks_failed += failed
        if failed < BATCH:
            break
    async with db.read_session() as session:
        instances = await correction.instances_to_correct(session, settings=settings, limit=1000)
    for instance in instances:
        async with db.transaction() as session:
            done.installations_fixed += await correction.correct_instance(session, instance)
        done.instances_compared += 1
    if done.tasks_failed or done.installations_fixed:
        log.info("installs: status corrected", tasks_failed=done.tasks_failed,
                 installations_fixed=done.installations_fixed, instances=done.instances_compared)
    return done


@sweep("installs.correct_status", every=TICK_SECONDS)
async def correct_status_when_due(bus: HandlerContext) -> None:
    interval = bus.settings.installs_status_sweep_seconds
    holder = uuid.uuid4().hex
    now = utcnow()
    async with bus.db.transaction() as session:
        if not await bus_service.take_lease(session, CORRECTION, holder, now, now + timedelta(seconds=interval)):
            return
    ok, error = True, None
    try:
        await correct_status(bus.db, settings=bus.settings)
    except Exception as exc:
        ok, error = False, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        finished = utcnow()
        async with bus.db.transaction() as session:
            await bus_service.finish_lease(session, CORRECTION, holder, at=finished,
                                           next_at=finished + timedelta(seconds=interval), ok=ok, error=error)
