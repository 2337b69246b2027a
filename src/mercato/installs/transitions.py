"""The state machines of installations and tasks: guarded transitions and the events they publish.

Installation: ``installing → installed ⇄ stopped``, ``installed → upgrading → installed``,
``installed|stopped → uninstalling → uninstalled``, any → ``failed`` (the last operation
failed; the previous version stays where it was). A failed installation may be
uninstalled, stopped, resumed, and upgraded when a version is in place (a decision:
otherwise neither a retry nor anything else gets a failed copy going or off the machine).

Task: ``queued → dispatched → running → succeeded | failed | canceled``;
``queued|dispatched|running → canceled`` on request; ``failed → queued`` on retry
(attempt + 1, up to ``max_attempts``). One task per installation is dispatched or running
at a time (``installations.active_task_id``, taken with a guarded update); later ones
queue in ``queued_at`` order.

Every transition is a guarded update (``from_`` the states it may leave): one that lost a
race changes nothing and answers False.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.catalog import service as catalog
from mercato.installs import repository
from mercato.installs.errors import InstallationNotFound
from mercato.kit.clock import utcnow
from mercato.kit.metrics import INSTALL_TASKS, count_on_commit
from mercato.models import Installation, InstallTask

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


async def move_task(session: AsyncSession, task: InstallTask, *, from_: Sequence[str], to: str, at: datetime,
                    **values: Any) -> bool:
    """The guarded task transition; an outcome is counted in /metrics once it commits."""
    moved = await repository.move_task(session, task.id, from_=from_, to=to, at=at, **values)
    if moved and to in TERMINAL_TASK:
        count_on_commit(session, INSTALL_TASKS.labels(task.kind, to))
    return moved


async def move_installation(session: AsyncSession, installation: Installation, *, from_: tuple[str, ...], to: str,
                            idle: bool = False, **values: Any) -> bool:
    """The guarded installation transition, announced as ``installation.state_changed``."""
    old = installation.state
    if not await repository.move_installation(session, installation.id, from_=from_, to=to, at=utcnow(), idle=idle,
                                              **values):
        return False
    await session.refresh(installation)
    await publish(session, CloudEvent(type="installation.state_changed", subject=str(installation.id), data={
        **installation_data(installation), "from": old, "to": to, "version": installation.version}))
    return True


async def installation_row(session: AsyncSession, installation_id: uuid.UUID) -> Installation:
    """The installation as it is now (refreshed), whoever owns it."""
    installation = await repository.installation(session, installation_id, owner_id=None)
    if installation is None:
        raise InstallationNotFound(f"There is no installation {installation_id}.")
    await session.refresh(installation)
    return installation


async def cancel_task(session: AsyncSession, task: InstallTask, *, message: str) -> bool:
    """Cancel an open task and put its installation back where it was before the task
    (a first install that never finished is uninstalled). False when it finished meanwhile."""
    was = task.state
    if not await move_task(session, task, from_=repository.OPEN_TASK_STATES, to="canceled",
                           at=utcnow(), finished_at=utcnow(), message=message):
        return False
    await session.refresh(task)
    installation = await installation_row(session, task.installation_id)
    await repository.release_installation(session, installation.id, task.id)
    if task.kind == "install" and installation.version is None:
        await move_installation(session, installation, from_=("installing", "failed"), to="uninstalled")
    elif was in repository.ACTIVE_TASK_STATES and installation.state == WORKING.get(task.kind):
        await move_installation(session, installation, from_=(installation.state,),
                                to=task.from_state or "installed")
    await task_event(session, task)
    return True


async def finish_installation(session: AsyncSession, task: InstallTask, *, succeeded: bool) -> None:
    """The installation takes the outcome of its finished task: the task's outcome state
    (and version) when it succeeded, ``failed`` when not."""
    installation = await installation_row(session, task.installation_id)
    await repository.release_installation(session, installation.id, task.id)
    if installation.state == "uninstalled":
        return
    if not succeeded:
        await move_installation(session, installation, from_=(installation.state,), to="failed")
        return
    values: dict[str, Any] = {}
    if task.kind in ("install", "upgrade"):
        values["version"] = task.version
    elif task.kind == "uninstall":
        values["version"] = None
    await move_installation(session, installation, from_=(installation.state,), to=OUTCOME[task.kind], **values)
    if task.kind == "install":
        await catalog.count(session, installation.listing_id, day_stat="installs", install_count=1)


def installation_data(installation: Installation) -> dict[str, Any]:
    """What every installation event carries."""
    return {"installation_id": str(installation.id), "instance_id": str(installation.instance_id),
            "user_id": str(installation.owner_id), "listing_id": str(installation.listing_id),
            "name": installation.name}


def task_data(task: InstallTask) -> dict[str, Any]:
    """What every task event carries."""
    return {"task_id": str(task.id), "instance_id": str(task.instance_id),
            "installation_id": str(task.installation_id), "user_id": str(task.owner_id), "kind": task.kind,
            "state": task.state, "version": task.version, "attempt": task.attempt}


async def task_event(session: AsyncSession, task: InstallTask) -> None:
    """``task.<state>`` for the state the task is in now (with its message once finished)."""
    data = task_data(task)
    if task.state in TERMINAL_TASK:
        data["message"] = task.message
    await publish(session, CloudEvent(type=f"task.{task.state}", subject=str(task.id), data=data))
