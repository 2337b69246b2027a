"""``/instances`` and ``/instances/{id}`` (WEB.md; PRODUCT U1, I1–I3): register an instance
(its token shown once, with the ``mercato agent`` command to paste), its installations,
install / upgrade / stop / resume / clone / uninstall, and each task's live progress.

A running task's box polls ``/instances/{id}/tasks/{task_id}`` (htmx, every second) until
the task ends; the agent reports progress to the store, the page reads it from there.
"""

from __future__ import annotations

import re
import shlex
import uuid
from typing import Annotated, Any

from fastapi import Request
from starlette.responses import Response

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.catalog import service as catalog
from mercato.catalog.errors import ListingNotFound
from mercato.installs import service as installs
from mercato.installs.errors import InstallationNotFound, TaskNotFound
from mercato.installs.service import Scope
from mercato.kit.errors import MercatoError
from mercato.models import InstallTask
from mercato.platform.routing import ReadSession, RuntimeDep, WriteSession
from mercato.web import present  # noqa: F401 (the minor filter)
from mercato.web.pages import page_router, redirect, render
from mercato.web.permits import permitted

router = page_router()

InstanceReader = Annotated[Principal, permitted(Permission.instance_read)]
InstanceManager = Annotated[Principal, permitted(Permission.instance_manage)]
Installer = Annotated[Principal, permitted(Permission.installation_manage)]

OPERATIONS = ("upgrade", "stop", "resume", "uninstall")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,63}$")
# Which operations an installation in each state offers (the service refuses the others with 409).
OFFERED = {"installed": ("upgrade", "stop", "clone", "uninstall"), "stopped": ("resume", "uninstall"),
           "failed": ("uninstall",)}


def _scope(actor: Principal) -> Scope:
    return Scope(actor.user_id)


def agent_command(server: str, token: str) -> str:
    """What to paste on the instance (mercato/cli/agent.py: --server, --token and --root are required)."""
    return (f"mercato agent --server {shlex.quote(server.rstrip('/'))} --token {shlex.quote(token)} "
            "--root ~/mercato-apps")


def _server(request: Request) -> str:
    """The store as this browser reached it (the agent connects to the same place)."""
    return str(request.base_url).rstrip("/")


@router.get("/instances", name="instances_page")
async def instances_page(request: Request, actor: InstanceReader, session: ReadSession) -> Response:
    mine = await installs.instances(session, scope=_scope(actor), after=None, limit=100)
    return await render(request, "buyer/instances.html", {"instances": mine, "created": None, "values": {},
                                                          "errors": {}})


@router.post("/instances", name="instance_register")
async def instance_register(request: Request, actor: InstanceManager, session: WriteSession,
                            rt: RuntimeDep) -> Response:
    """Register an instance and show its token this once (the page is not stored anywhere:
    a reload asks before sending the form again, and the token is never shown again)."""
    form = await request.form()
    raw = form.get("name")
    name = raw.strip() if isinstance(raw, str) else ""
    if not 1 <= len(name) <= 100:
        async with rt.db.read_session() as reader:
            mine = await installs.instances(reader, scope=_scope(actor), after=None, limit=100)
        return await render(request, "buyer/instances.html", {
            "instances": mine, "created": None, "values": {"name": name},
            "errors": {"name": "Name it in 1 to 100 characters, e.g. “Living-room PC”."}}, status_code=422)
    instance, token = await installs.register_instance(session, actor=actor, name=name)
    await session.flush()
    mine = await installs.instances(session, scope=_scope(actor), after=None, limit=100)
    return await render(request, "buyer/instances.html", {
        "instances": mine, "created": instance, "token": token, "command": agent_command(_server(request), token),
        "values": {}, "errors": {}}, headers={"Cache-Control": "no-store"})


async def _detail(session: Any, actor: Principal, instance_id: uuid.UUID, **extra: Any) -> dict[str, Any]:
    instance = await installs.get_instance(session, scope=_scope(actor), instance_id=instance_id)  # 404 if not theirs
    installations = await installs.installations_of(session, scope=_scope(actor), instance_id=instance.id,
                                                    after=None, limit=100, include_uninstalled=False)
    recent = await installs.tasks(session, scope=_scope(actor), state=None, instance_id=instance.id,
                                  installation_id=None, after=None, limit=10)
    names: dict[uuid.UUID, str] = {}
    for installation in installations:
        try:
            names[installation.listing_id] = (await catalog.get_by_id(session, installation.listing_id)).name
        except ListingNotFound:
            names[installation.listing_id] = installation.name
    by_installation = {i.id: i for i in installations}
    return {"instance": instance, "installations": installations, "tasks": recent, "names": names,
            "offered": OFFERED, "by_installation": by_installation, "errors": {}, "error": None, **extra}


@router.get("/instances/{instance_id}", name="instance_page")
async def instance_page(request: Request, instance_id: uuid.UUID, actor: InstanceReader,
                        session: ReadSession) -> Response:
    return await render(request, "buyer/instance.html", await _detail(session, actor, instance_id))


@router.get("/instances/{instance_id}/tasks/{task_id}", name="instance_task")
async def instance_task(request: Request, instance_id: uuid.UUID, task_id: uuid.UUID, actor: InstanceReader,
                        session: ReadSession) -> Response:
    """One task's progress box (what the page polls while the task runs). When the task has
    just ended, htmx reloads the whole page (``HX-Refresh``): the installation's state and
    the operations it offers now change with it."""
    task = await installs.get_task(session, scope=_scope(actor), task_id=task_id)
    if task.instance_id != instance_id:
        raise TaskNotFound(f"You have no task {task_id} on this instance.")
    headers = {"Cache-Control": "no-store"}
    if task.state in installs.TERMINAL_TASK and request.headers.get("hx-request") == "true":
        headers["HX-Refresh"] = "true"
    return await render(request, "buyer/task.html", {"task": task}, headers=headers)


@router.post("/instances/{instance_id}/delete", name="instance_delete")
async def instance_delete(instance_id: uuid.UUID, actor: InstanceManager, session: WriteSession) -> Response:
    await installs.delete_instance(session, actor=actor, instance_id=instance_id)
    return redirect("/instances")


@router.post("/installations/{installation_id}/{operation}", name="installation_operate")
async def installation_operate(request: Request, installation_id: uuid.UUID, operation: str, actor: Installer,
                               session: WriteSession, rt: RuntimeDep) -> Response:
    """upgrade, stop, resume, uninstall or clone (with ``name``), as the API's
    ``POST /api/v1/installations/{id}/…``; back on the instance's page with the task's progress."""
    installation = await installs.get_installation(session, scope=_scope(actor), installation_id=installation_id)
    instance_id = installation.instance_id  # read now: a rollback below expires the row
    form = await request.form()
    task: InstallTask | None = None
    errors: dict[str, str] = {}
    try:
        if operation == "clone":
            raw = form.get("name")
            name = raw.strip() if isinstance(raw, str) else ""
            if not SLUG.match(name):
                errors[f"clone-{installation_id}"] = "Use 2–64 lower-case letters, digits and dashes."
            else:
                task = await installs.clone(session, actor=actor, settings=rt.settings,
                                            installation_id=installation.id, name=name, config=None)
        elif operation == "upgrade":
            task = await installs.upgrade(session, actor=actor, settings=rt.settings,
                                          installation_id=installation.id, version=None)
        elif operation in OPERATIONS:
            task = await installs.operate(session, actor=actor, settings=rt.settings,
                                          installation_id=installation.id, kind=operation)
        else:
            raise InstallationNotFound(f"There is no operation {operation!r}.")
    except MercatoError as exc:
        if isinstance(exc, InstallationNotFound):
            raise
        if session.in_transaction():
            await session.rollback()
        async with rt.db.read_session() as reader:
            context = await _detail(reader, actor, instance_id, error=exc.detail)
        return await render(request, "buyer/instance.html", context, status_code=exc.status)
    if task is None:
        if session.in_transaction():
            await session.rollback()
        async with rt.db.read_session() as reader:
            context = await _detail(reader, actor, instance_id, errors=errors)
        return await render(request, "buyer/instance.html", context, status_code=422)
    return redirect(f"/instances/{instance_id}?task={task.id}#task-{task.id}")
