"""Instances, installations and tasks (I1–I3, I5) for their owners, and the admin runtime snapshot.

Operations answer with the task at once (202); ``?wait=N`` (≤ 30 s) waits for it to
finish first (200 when it did, 202 with its current state when not). The task is
committed before the wait, so the agent can fetch it meanwhile.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.dependencies import idempotent, requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.installs import correction, installations, instances, tasks
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
    TaskNotFound,
    TaskTransitionRefused,
    VersionNotAvailable,
)
from mercato.installs.instances import Scope
from mercato.installs.schemas import (
    CloneRequest,
    InstallationCreate,
    InstallationRead,
    InstallationUpdate,
    InstanceCreate,
    InstanceCreated,
    InstanceRead,
    OpenRead,
    RuntimeSnapshot,
    TaskRead,
    TaskState,
    UpgradeRequest,
)
from mercato.installs.transitions import TERMINAL_TASK
from mercato.kit.pagination import CursorParam, Limit, decode_cursor, keyset_page
from mercato.kit.schemas import Page
from mercato.live.waiting import wait_until
from mercato.models import Installation, InstallTask
from mercato.models import Instance as InstanceRow
from mercato.platform.routing import ReadSession, RuntimeDep, TransactionalRoute, WriteSession
from mercato.platform.runtime import Runtime
from mercato.releases.errors import NotEntitled

router = APIRouter(route_class=TransactionalRoute, tags=["installs"])

InstanceReader = Annotated[Principal, requires(Permission.instance_read)]
InstanceManager = Annotated[Principal, requires(Permission.instance_manage)]
Installer = Annotated[Principal, requires(Permission.installation_manage)]
TaskReader = Annotated[Principal, requires(Permission.task_read)]
TaskManager = Annotated[Principal, requires(Permission.task_manage)]
OptionalKey = Annotated[str | None, idempotent(required=False)]
Wait = Annotated[float, Query(ge=0, le=30, description=(
    "Seconds (≤ 30) to wait for the task to finish (succeeded, failed or canceled) before answering: "
    "200 when it did, 202 with its current state when not."))]
TERMINAL = frozenset(TERMINAL_TASK)
CREATE_ERRORS = InstallListingNotFound.responses(NotEntitled, VersionNotAvailable, RequirementsNotMet, InvalidConfig,
                                                 InstallationNameTaken)


def _reader_scope(actor: Principal, permission: Permission) -> Scope:
    return Scope.of(actor, everything=actor.has_any(permission))


def _task(task: InstallTask) -> TaskRead:
    return TaskRead.model_validate(task)


async def _answer(session: AsyncSession, rt: Runtime, task: InstallTask, response: Response, wait: float) -> TaskRead:
    """The task as it is now, or after waiting up to ``wait`` seconds for it to finish."""
    if wait <= 0:
        response.status_code = 200 if task.state in TERMINAL else 202
        return _task(task)
    await session.commit()  # the agent can fetch it from now on

    async def finished() -> bool:
        async with rt.db.read_session() as reader:
            return await tasks.state_of(reader, task.id) in TERMINAL

    await wait_until(rt.live, user_id=task.owner_id, subject=str(task.id), done=finished, seconds=wait)
    async with rt.db.read_session() as reader:
        current = await tasks.get_task(reader, scope=Scope(task.owner_id), task_id=task.id)
        response.status_code = 200 if current.state in TERMINAL else 202
        return _task(current)


# --- instances ------------------------------------------------------------------------------------

@router.post("/instances", status_code=201, response_model=InstanceCreated)
async def register_instance(body: InstanceCreate, actor: InstanceManager, _key: OptionalKey,
                            session: WriteSession) -> InstanceCreated:
    """Register a device or server you install on. The answer holds its instance token,
    shown this once: run `mercato agent --server URL --token TOKEN` there (docs/installs.md)."""
    instance, token = await instances.register_instance(session, actor=actor, name=body.name)
    return InstanceCreated(**InstanceRead.model_validate(instance).model_dump(), token=token)


@router.get("/instances", response_model=Page[InstanceRead])
async def list_instances(actor: InstanceReader, session: ReadSession, cursor: CursorParam = None,
                         limit: Limit = 20) -> Page[InstanceRead]:
    """Your instances (admins: everyone's), newest first, with what their agents reported last."""
    rows = await instances.instances(session, scope=_reader_scope(actor, Permission.instance_read),
                                     after=decode_cursor(cursor), limit=limit + 1)
    return _paged(rows, limit, InstanceRead)


@router.get("/instances/{instance_id}", response_model=InstanceRead, responses=InstanceNotFound.responses())
async def get_instance(instance_id: uuid.UUID, actor: InstanceReader, session: ReadSession) -> InstanceRead:
    return InstanceRead.model_validate(await instances.get_instance(
        session, scope=_reader_scope(actor, Permission.instance_read), instance_id=instance_id))


@router.delete("/instances/{instance_id}", status_code=204, responses=InstanceNotFound.responses())
async def delete_instance(instance_id: uuid.UUID, actor: InstanceManager, session: WriteSession) -> Response:
    """Remove the instance: its token stops working at once and its open tasks are canceled.
    Nothing is removed from the machine."""
    await instances.delete_instance(session, actor=actor, instance_id=instance_id)
    return Response(status_code=204)


# --- installations --------------------------------------------------------------------------------

@router.get("/instances/{instance_id}/installations", response_model=Page[InstallationRead],
            responses=InstanceNotFound.responses())
async def list_installations(instance_id: uuid.UUID, actor: InstanceReader, session: ReadSession,
                             include_uninstalled: bool = False, cursor: CursorParam = None,
                             limit: Limit = 20) -> Page[InstallationRead]:
    rows = await installations.installations_of(session, scope=_reader_scope(actor, Permission.instance_read),
                                                instance_id=instance_id, after=decode_cursor(cursor), limit=limit + 1,
                                                include_uninstalled=include_uninstalled)
    return _paged(rows, limit, InstallationRead)


@router.post("/instances/{instance_id}/installations", status_code=202, response_model=TaskRead,
             responses={200: {"model": TaskRead, "description": "The task finished within `wait`"},
                        **InstanceNotFound.responses(), **CREATE_ERRORS})
async def install(instance_id: uuid.UUID, body: InstallationCreate, actor: Installer, _key: OptionalKey,
                  session: WriteSession, rt: RuntimeDep, response: Response, wait: Wait = 0) -> TaskRead:
    """Install a listing you own (free listings: anyone) on your instance: the latest
    approved version or the one named. Refused with 422 before anything is queued when the
    instance's last report does not meet the package's platform, host version, memory or
    disk needs (`requirements_not_met`) or the settings do not fit its `[config]` schema
    (`invalid_config`); `errors` names each missing piece."""
    task = await installations.install(session, actor=actor, settings=rt.settings, instance_id=instance_id,
                                       listing_id=body.listing_id, version=body.version, name=body.name,
                                       config=body.config, auto_upgrade=body.auto_upgrade)
    return await _answer(session, rt, task, response, wait)


@router.get("/installations/{installation_id}", response_model=InstallationRead,
            responses=InstallationNotFound.responses())
async def get_installation(installation_id: uuid.UUID, actor: InstanceReader,
                           session: ReadSession) -> InstallationRead:
    return InstallationRead.model_validate(await installations.get_installation(
        session, scope=_reader_scope(actor, Permission.instance_read), installation_id=installation_id))


@router.patch("/installations/{installation_id}", response_model=InstallationRead,
              responses=InstallationNotFound.responses())
async def update_installation(installation_id: uuid.UUID, body: InstallationUpdate, actor: Installer,
                              session: WriteSession) -> InstallationRead:
    """Turn automatic upgrades on or off: on, a newer compatible approved version queues the upgrade."""
    return InstallationRead.model_validate(await installations.set_auto_upgrade(
        session, actor=actor, installation_id=installation_id, auto_upgrade=body.auto_upgrade))


OPERATION_RESPONSES = {200: {"model": TaskRead, "description": "The task finished within `wait`"},
                       **InstallationNotFound.responses(InstallationTransitionRefused)}


@router.post("/installations/{installation_id}/upgrade", status_code=202, response_model=TaskRead,
             responses={**OPERATION_RESPONSES, **AlreadyLatest.responses(NotEntitled, VersionNotAvailable,
                                                                         RequirementsNotMet, InvalidConfig)})
async def upgrade(installation_id: uuid.UUID, actor: Installer, _key: OptionalKey, session: WriteSession,
                  rt: RuntimeDep, response: Response, body: UpgradeRequest | None = None,
                  wait: Wait = 0) -> TaskRead:
    """Upgrade to the latest approved version, or to the one named (also an older one).
    The agent installs it beside the current one and switches; on failure the old one stays."""
    task = await installations.upgrade(session, actor=actor, settings=rt.settings, installation_id=installation_id,
                                       version=body.version if body else None)
    return await _answer(session, rt, task, response, wait)


@router.post("/installations/{installation_id}/clone", status_code=202, response_model=TaskRead,
             responses={**OPERATION_RESPONSES, **InstallationNameTaken.responses(RequirementsNotMet, InvalidConfig)})
async def clone(installation_id: uuid.UUID, body: CloneRequest, actor: Installer, _key: OptionalKey,
                session: WriteSession, rt: RuntimeDep, response: Response, wait: Wait = 0) -> TaskRead:
    """Install a second copy of the same version on the same instance under another name
    (with the same settings unless `config` is given). The answer is the new copy's install task."""
    task = await installations.clone(session, actor=actor, settings=rt.settings, installation_id=installation_id,
                                     name=body.name, config=body.config)
    return await _answer(session, rt, task, response, wait)


def _operation(kind: str, summary: str) -> None:
    async def operate(installation_id: uuid.UUID, actor: Installer, _key: OptionalKey, session: WriteSession,
                      rt: RuntimeDep, response: Response, wait: Wait = 0) -> TaskRead:
        task = await installations.operate(session, actor=actor, settings=rt.settings, installation_id=installation_id,
                                           kind=kind)
        return await _answer(session, rt, task, response, wait)

    operate.__name__ = f"{kind}_installation"
    operate.__doc__ = summary
    router.post(f"/installations/{{installation_id}}/{kind}", status_code=202, response_model=TaskRead,
                responses=OPERATION_RESPONSES)(operate)


_operation("uninstall", "Remove the installation from the instance (installed, stopped or failed ones).")
_operation("stop", "Stop an installed installation (it stays on disk).")
_operation("resume", "Start a stopped installation again.")


@router.get("/installations/{installation_id}/open", response_model=OpenRead,
            responses=InstallationNotFound.responses(NothingToOpen))
async def open_installation(installation_id: uuid.UUID, actor: InstanceReader, session: ReadSession) -> OpenRead:
    """How to launch an installed installation: its entry (a path inside the installation
    directory) or its URL (the package's template, filled with the instance's host and settings)."""
    return OpenRead(**await installations.launch(session, scope=_reader_scope(actor, Permission.instance_read),
                                                 installation_id=installation_id))


# --- tasks ------------------------------------------------------------------------------------------

@router.get("/tasks", response_model=Page[TaskRead])
async def list_tasks(actor: TaskReader, session: ReadSession, state: TaskState | None = None,
                     instance_id: uuid.UUID | None = None, installation_id: uuid.UUID | None = None,
                     cursor: CursorParam = None, limit: Limit = 20) -> Page[TaskRead]:
    """Your tasks (admins: everyone's), newest first."""
    rows = await tasks.tasks(session, scope=_reader_scope(actor, Permission.task_read), state=state,
                             instance_id=instance_id, installation_id=installation_id,
                             after=decode_cursor(cursor), limit=limit + 1)
    return _paged(rows, limit, TaskRead)


@router.get("/tasks/{task_id}", response_model=TaskRead, status_code=200,
            responses={202: {"model": TaskRead, "description": "Not finished within `wait`"},
                       **TaskNotFound.responses()})
async def get_task(task_id: uuid.UUID, actor: TaskReader, session: ReadSession, rt: RuntimeDep, response: Response,
                   wait: Wait = 0) -> TaskRead:
    task = await tasks.get_task(session, scope=_reader_scope(actor, Permission.task_read), task_id=task_id)
    if wait <= 0 or task.state in TERMINAL:
        return _task(task)
    return await _answer(session, rt, task, response, wait)


@router.post("/tasks/{task_id}/cancel", response_model=TaskRead,
             responses=TaskNotFound.responses(TaskTransitionRefused))
async def cancel_task(task_id: uuid.UUID, actor: TaskManager, session: WriteSession) -> TaskRead:
    """Cancel a queued, dispatched or running task. The agent learns it on its next report
    (409 `task_canceled`), aborts and rolls back; the installation goes back to where it was."""
    return _task(await tasks.cancel(session, actor=actor, task_id=task_id))


@router.post("/tasks/{task_id}/retry", response_model=TaskRead,
             responses=TaskNotFound.responses(TaskTransitionRefused, RetryLimitReached))
async def retry_task(task_id: uuid.UUID, actor: TaskManager, session: WriteSession) -> TaskRead:
    """Queue a failed task again (its attempt count goes up by one, up to `max_attempts`:
    409 `retry_limit_reached` after that)."""
    return _task(await tasks.retry(session, actor=actor, task_id=task_id))


# --- operations -------------------------------------------------------------------------------------

@router.get("/admin/runtime", response_model=RuntimeSnapshot)
async def runtime_snapshot(actor: Annotated[Principal, requires(Permission.runtime_read)], session: ReadSession,
                           rt: RuntimeDep) -> RuntimeSnapshot:
    """Installations and tasks by state, instances reporting, overdue tasks, and every
    sweep's last run and health (status correction is `installs.correct_status`)."""
    return RuntimeSnapshot(**await correction.snapshot(session, settings=rt.settings))


def _paged(rows: list[InstanceRow] | list[Installation] | list[InstallTask], limit: int, model: type) -> Page:  # type: ignore[type-arg]
    page, next_cursor = keyset_page(rows, limit)
    return Page(items=[model.model_validate(row) for row in page], next_cursor=next_cursor)
