"""The agent protocol (I4, I5): the routes ``mercato agent`` calls with its instance token.

Every route acts for the instance of the token; another instance's task is a 404.
The request and response shapes are documented in docs/installs.md.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.dependencies import requires_instance
from mercato.access.principal import Principal
from mercato.installs import agent_tasks, installations, instances, repository
from mercato.installs.auth import instance_id_of
from mercato.installs.errors import TaskCanceled, TaskNotFound, TaskTransitionRefused
from mercato.installs.schemas import (
    AgentInstallation,
    AgentTask,
    AgentTaskList,
    Artifact,
    Heartbeat,
    HeartbeatRead,
    ProgressReport,
    ResultReport,
    TaskRead,
)
from mercato.kit.clock import utcnow
from mercato.kit.errors import RangeNotSatisfiable
from mercato.kit.ranges import byte_range
from mercato.kit.storage import ArtifactMissing
from mercato.kit.waiting import poll_until
from mercato.library import service as library
from mercato.licences.errors import LicenceNotFound
from mercato.models import InstallTask
from mercato.platform.routing import RuntimeDep, TransactionalRoute, WriteSession
from mercato.platform.runtime import Runtime
from mercato.releases.errors import NotEntitled

router = APIRouter(route_class=TransactionalRoute, tags=["agent"])

Agent = Annotated[Principal, requires_instance()]
LONG_POLL_MAX = 30.0
FETCH_LIMIT = 10


@router.post("/agent/heartbeat", response_model=HeartbeatRead)
async def heartbeat(body: Heartbeat, agent: Agent, session: WriteSession) -> HeartbeatRead:
    """Report the instance: its inventory (every installation directory the agent manages,
    with the version current on disk and its state), free resources, platform and host
    version. Send it on start and then every 30 s or so; status correction compares the
    inventory with the records, and installs check requirements against the rest."""
    instance_id = instance_id_of(agent)
    queued = await instances.heartbeat(session, instance_id=instance_id,
                                       inventory=[item.model_dump(mode="json") for item in body.inventory],
                                       resources=body.resources.model_dump(exclude_none=True),
                                       platform=body.platform, host_version=body.host_version)
    return HeartbeatRead(instance_id=instance_id, received_at=utcnow(), queued_tasks=queued)


@router.get("/agent/tasks", response_model=AgentTaskList)
async def fetch_tasks(agent: Agent, request: Request, rt: RuntimeDep,
                      wait: Annotated[float, Query(ge=0, le=LONG_POLL_MAX, description=(
                          "Long poll: wait up to this many seconds (≤ 30) for a task to arrive."))] = 0,
                      in_flight: Annotated[bool, Query(description=(
                          "Instead of new tasks, the instance's dispatched and running ones (an agent "
                          "that restarted picks up where it was)."))] = False) -> AgentTaskList:
    """The next tasks for this instance, marked dispatched: at most one per installation
    (the next waits until the agent reports the result of the current one). An empty list
    after `wait` seconds means nothing is queued."""
    instance_id = instance_id_of(agent)
    if in_flight:
        async with rt.db.read_session() as session:
            tasks = await agent_tasks.in_flight(session, instance_id=instance_id)
    else:
        tasks = await _long_poll(rt, request, instance_id, wait)
    async with rt.db.read_session() as session:
        return AgentTaskList(items=[await _present(session, rt, request, task) for task in tasks])


async def _long_poll(rt: Runtime, request: Request, instance_id: uuid.UUID, wait: float) -> list[InstallTask]:
    """Poll cheaply (a read) and claim in a short write transaction when something is queued.
    A poll whose agent has hung up claims nothing: a task handed to nobody would sit
    dispatched until its deadline. A server that is stopping answers open polls at once
    (empty): the agent asks again, of the next server."""
    stopping: asyncio.Event = getattr(request.app.state, "stopping", None) or asyncio.Event()

    async def handed_out() -> list[InstallTask] | None:
        if stopping.is_set():
            return []  # the answer now: nothing
        async with rt.db.read_session() as session:
            waiting = await repository.count_queued(session, instance_id)
        if waiting and not await request.is_disconnected():
            async with rt.db.transaction() as session:
                handed = await agent_tasks.dispatch(session, settings=rt.settings, instance_id=instance_id,
                                                    limit=FETCH_LIMIT)
            if handed:
                return handed
        return None

    deadline = asyncio.get_running_loop().time() + wait
    return await poll_until(handed_out, deadline=deadline, interval=0.05, max_interval=0.5, wake=stopping) or []


async def _present(session: AsyncSession, rt: Runtime, request: Request, task: InstallTask) -> AgentTask:
    installation = await installations.get_installation(session, scope=instances.Scope(None),
                                                        installation_id=task.installation_id)
    slug = (await repository.listing_slugs(session, [installation.listing_id]))[installation.listing_id]
    artifact = licence = None
    if task.version_id is not None:
        version = await agent_tasks.artifact_of(session, instance_id=task.instance_id, task_id=task.id)
        artifact = Artifact(url=str(request.url_for("download_artifact", task_id=str(task.id))),
                            sha256=version.sha256, size=version.size,
                            format="tar.gz" if version.archive_format == "tar.gz" else "zip",  # a VSIX is a zip
                            signature=version.signature, signature_key_id=version.signature_key_id)
        try:
            licence = await library.licence_document(session, keys=rt.keys, user_id=task.owner_id,
                                                     listing_id=installation.listing_id)
        except LicenceNotFound:
            licence = None
    return AgentTask(id=task.id, kind=task.kind, state=task.state, attempt=task.attempt,  # type: ignore[arg-type]
                     version=task.version, from_version=task.from_version, deadline_at=task.deadline_at,
                     installation=AgentInstallation(id=installation.id, name=installation.name,
                                                    listing_id=installation.listing_id, listing_slug=slug,
                                                    state=installation.state,  # type: ignore[arg-type]
                                                    version=installation.version, config=installation.config),
                     artifact=artifact, licence=licence)


@router.get("/agent/tasks/{task_id}", response_model=AgentTask, responses=TaskNotFound.responses())
async def get_agent_task(task_id: uuid.UUID, agent: Agent, request: Request, rt: RuntimeDep) -> AgentTask:
    """One of this instance's tasks, as the task fetch hands it out (to check it is still wanted)."""
    async with rt.db.read_session() as session:
        task = await agent_tasks.agent_task(session, instance_id=instance_id_of(agent), task_id=task_id)
        return await _present(session, rt, request, task)


# A .tar.gz or a .zip package (kit/storage serves each with its own type).
ARCHIVE_TYPES = {"application/gzip": {"schema": {"type": "string", "format": "binary"}},
                 "application/zip": {"schema": {"type": "string", "format": "binary"}}}


@router.get("/agent/tasks/{task_id}/artifact", name="download_artifact",
            responses={**TaskNotFound.responses(RangeNotSatisfiable, ArtifactMissing, NotEntitled),
                       200: {"content": ARCHIVE_TYPES, "description": "The package archive"},
                       206: {"content": ARCHIVE_TYPES, "description": "Part of the archive (Range)"}})
async def download_artifact(task_id: uuid.UUID, agent: Agent, request: Request, rt: RuntimeDep,
                            session: WriteSession) -> Response:
    """The archive of a dispatched or running install or upgrade task, resumable with `Range`.
    Check its SHA-256 and signature (the task's `artifact`) before unpacking it. 403
    `not_entitled` when the task's owner no longer owns the listing (refunded since it was
    queued); each fetch counts as one of the owner's downloads."""
    version = await agent_tasks.artifact_for_download(session, instance_id=instance_id_of(agent), task_id=task_id)
    if await rt.artifacts.size(version.sha256) is None:
        raise ArtifactMissing(f"The archive of version {version.version} is missing from storage.")
    etag = f'"{version.sha256}"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "X-Checksum-SHA256": version.sha256,
               "Digest": "sha-256=" + base64.b64encode(bytes.fromhex(version.sha256)).decode(),
               "Cache-Control": "private, no-store"}
    if version.signature:
        headers["X-Signature-Ed25519"] = version.signature
        headers["X-Signature-Key-Id"] = version.signature_key_id or ""
    if_range = request.headers.get("if-range")
    selected = (byte_range(request.headers.get("range", "").replace(" ", ""), version.size)
                if not if_range or if_range.strip() == etag else None)
    start, end = selected if selected else (0, version.size)
    headers["Content-Length"] = str(end - start)
    if selected is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{version.size}"
    media = "application/gzip" if version.archive_format == "tar.gz" else "application/zip"
    return StreamingResponse(rt.artifacts.open(version.sha256, start=start, end=end),
                             status_code=206 if selected else 200, headers=headers, media_type=media)


@router.post("/agent/tasks/{task_id}/progress", response_model=TaskRead,
             responses=TaskNotFound.responses(TaskCanceled, TaskTransitionRefused))
async def report_progress(task_id: uuid.UUID, body: ProgressReport, agent: Agent, session: WriteSession,
                          rt: RuntimeDep) -> Any:
    """Progress (0–100) and a message; the first report marks the task running, each one
    extends its deadline. 409 `task_canceled`: the owner canceled it; abort and roll back."""
    return TaskRead.model_validate(await agent_tasks.progress(
        session, settings=rt.settings, instance_id=instance_id_of(agent), task_id=task_id, percent=body.percent,
        message=body.message))


@router.post("/agent/tasks/{task_id}/result", response_model=TaskRead,
             responses=TaskNotFound.responses(TaskCanceled, TaskTransitionRefused))
async def report_result(task_id: uuid.UUID, body: ResultReport, agent: Agent, session: WriteSession) -> Any:
    """The outcome. `succeeded` moves the installation to its new state (and version);
    `failed` marks it failed (the previous version still in place). Sending the same
    outcome again is harmless; 409 `task_canceled` when the owner canceled it meanwhile."""
    return TaskRead.model_validate(await agent_tasks.result(
        session, instance_id=instance_id_of(agent), task_id=task_id, outcome=body.outcome, message=body.message))
