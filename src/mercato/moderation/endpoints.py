"""The review queue: publishers submit versions (and appeal rejections); reviewers claim
submitted versions and decide them."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from mercato.access.dependencies import requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.catalog.errors import ListingNotFound, ListingTransitionRefused
from mercato.catalog.schemas import ListingKey
from mercato.kit.errors import Forbidden
from mercato.kit.pagination import CursorParam, InvalidCursor, Limit, Total, keyset_page
from mercato.models import ReviewTask
from mercato.moderation import service
from mercato.moderation.errors import ClaimedByOther, OwnPublisher, ReviewTaskNotFound, ReviewTransitionRefused
from mercato.moderation.schemas import (
    AppealDecision,
    ApproveBody,
    ReasonBody,
    ReviewTaskDetail,
    ReviewTaskPage,
    ReviewTaskRead,
)
from mercato.moderation.service import task_read
from mercato.platform.routing import ReadSession, RuntimeDep, TransactionalRoute, WriteSession
from mercato.releases import service as publishing
from mercato.releases.errors import NothingToSubmit, VersionNotFound, VersionTransitionRefused
from mercato.releases.schemas import SubmitBody, VersionRead, VersionText, YankBody

router = APIRouter(route_class=TransactionalRoute, tags=["review"])
# A version's way into the queue, listed with the other version routes in the API documentation.
versions_router = APIRouter(route_class=TransactionalRoute, tags=["versions"])

Reviewer = Annotated[Principal, requires(Permission.review_task_decide)]
DECISION_ERRORS = ReviewTaskNotFound.responses(ReviewTransitionRefused, ClaimedByOther, OwnPublisher)


def _encode(task: ReviewTask) -> str:
    raw = json.dumps([task.priority_rank, task.created_at.isoformat(), str(task.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str | None) -> tuple[int, datetime, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        rank, at, task_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None or not isinstance(rank, int):
            raise ValueError("bad cursor")
        return rank, parsed, uuid.UUID(task_id)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise InvalidCursor("Use the next_cursor value from the previous page as it was given.", errors=[
            {"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "invalid_cursor"}]) from exc


@router.get("/review/tasks", response_model=ReviewTaskPage)
async def list_tasks(session: ReadSession, actor: Annotated[Principal, requires(Permission.review_task_read)],
                     status: Annotated[list[Literal["pending", "claimed", "approved", "rejected", "changes_requested"]]
                                       | None, Query(description="Default: pending and claimed.")] = None,
                     appeal: Literal["pending"] | None = None,
                     cursor: CursorParam = None, limit: Limit = 20, total: Total = False) -> ReviewTaskPage:
    """The queue, high priority first, then oldest first. Tasks of your own publishers are
    not shown. `appeal=pending` lists rejections waiting for an appeal decision."""
    statuses = list(status) if status else (["rejected"] if appeal else ["pending", "claimed"])
    rows = await service.queue(session, actor=actor, statuses=statuses, after=_decode(cursor), limit=limit + 1)
    if appeal:
        rows = [row for row in rows if row.appeal_status == "pending"]
    page, next_cursor = keyset_page(rows, limit, _encode)
    return ReviewTaskPage(items=[await task_read(session, t) for t in page], next_cursor=next_cursor,
                          total=await service.count(session, actor=actor, statuses=statuses) if total else None)


@router.get("/review/tasks/{task_id}", response_model=ReviewTaskDetail, responses=ReviewTaskNotFound.responses())
async def get_task(task_id: uuid.UUID, session: ReadSession,
                   actor: Annotated[Principal, requires(Permission.review_task_read)]) -> ReviewTaskRead:
    """A task with the version's manifest, automated checks and file list."""
    return await task_read(session, await service.get_task(session, actor=actor, task_id=task_id), detail=True)


@router.post("/review/tasks/{task_id}/claim", response_model=ReviewTaskDetail, responses=DECISION_ERRORS)
async def claim(task_id: uuid.UUID, session: WriteSession, actor: Reviewer) -> ReviewTaskRead:
    return await task_read(session, await service.claim(session, actor=actor, task_id=task_id), detail=True)


@router.post("/review/tasks/{task_id}/release", response_model=ReviewTaskRead, responses=DECISION_ERRORS)
async def release(task_id: uuid.UUID, session: WriteSession, actor: Reviewer) -> ReviewTaskRead:
    return await task_read(session, await service.release(session, actor=actor, task_id=task_id))


@router.post("/review/tasks/{task_id}/approve", response_model=ReviewTaskRead, responses=DECISION_ERRORS)
async def approve(task_id: uuid.UUID, session: WriteSession, actor: Reviewer, rt: RuntimeDep,
                  body: ApproveBody | None = None) -> ReviewTaskRead:
    """Publish the version: it is signed with the store key and becomes "latest" if it is the
    highest approved version; a listing in review is published with it."""
    task = await service.decide(session, actor=actor, task_id=task_id, outcome="approved",
                                reason=(body.note or None) if body else None, signer=rt.keys)
    return await task_read(session, task)


@router.post("/review/tasks/{task_id}/reject", response_model=ReviewTaskRead, responses=DECISION_ERRORS)
async def reject(task_id: uuid.UUID, body: ReasonBody, session: WriteSession, actor: Reviewer,
                 rt: RuntimeDep) -> ReviewTaskRead:
    task = await service.decide(session, actor=actor, task_id=task_id, outcome="rejected", reason=body.reason,
                                signer=rt.keys)
    return await task_read(session, task)


@router.post("/review/tasks/{task_id}/request-changes", response_model=ReviewTaskRead, responses=DECISION_ERRORS)
async def request_changes(task_id: uuid.UUID, body: ReasonBody, session: WriteSession, actor: Reviewer,
                          rt: RuntimeDep) -> ReviewTaskRead:
    task = await service.decide(session, actor=actor, task_id=task_id, outcome="changes_requested",
                                reason=body.reason, signer=rt.keys)
    return await task_read(session, task)


@router.post("/review/tasks/{task_id}/appeal/uphold", response_model=ReviewTaskRead, responses=DECISION_ERRORS)
async def uphold_appeal(task_id: uuid.UUID, session: WriteSession,
                        actor: Annotated[Principal, requires(Permission.review_appeal_decide)],
                        body: AppealDecision | None = None) -> ReviewTaskRead:
    """The version goes back into the queue as a new high-priority task."""
    task = await service.decide_appeal(session, actor=actor, task_id=task_id, uphold=True,
                                       reason=body.reason if body else "")
    return await task_read(session, task)


@router.post("/review/tasks/{task_id}/appeal/deny", response_model=ReviewTaskRead, responses=DECISION_ERRORS)
async def deny_appeal(task_id: uuid.UUID, body: ReasonBody, session: WriteSession,
                      actor: Annotated[Principal, requires(Permission.review_appeal_decide)]) -> ReviewTaskRead:
    task = await service.decide_appeal(session, actor=actor, task_id=task_id, uphold=False, reason=body.reason)
    return await task_read(session, task)


# --- into the queue: submitting a version, appealing a rejection ----------------------------------

@versions_router.post("/listings/{listing_id}/submit", response_model=VersionRead,
                      responses=ListingNotFound.responses(NothingToSubmit, ListingTransitionRefused, Forbidden))
async def submit_listing(listing_id: ListingKey, session: WriteSession,
                         actor: Annotated[Principal, requires(Permission.listing_submit)],
                         body: SubmitBody | None = None) -> VersionRead:
    """Submit the newest uploaded version; a draft (or rejected) listing goes into review with it."""
    body = body or SubmitBody()
    _, version = await service.submit(session, actor=actor, key=listing_id, version=None,
                                      security_update=body.security_update, note=body.note)
    return VersionRead.model_validate(version)


@versions_router.post("/listings/{listing_id}/versions/{version}/submit", response_model=VersionRead,
                      responses=ListingNotFound.responses(VersionNotFound, VersionTransitionRefused,
                                                          ListingTransitionRefused, Forbidden))
async def submit_version(listing_id: ListingKey, version: VersionText, session: WriteSession,
                         actor: Annotated[Principal, requires(Permission.version_submit)],
                         body: SubmitBody | None = None) -> VersionRead:
    """Put an uploaded version into the review queue (high priority for security updates and
    verified publishers)."""
    body = body or SubmitBody()
    _, found = await service.submit(session, actor=actor, key=listing_id, version=version,
                                    security_update=body.security_update, note=body.note)
    return VersionRead.model_validate(found)


@versions_router.post("/listings/{listing_id}/versions/{version}/appeal", response_model=VersionRead,
                      responses=ListingNotFound.responses(VersionNotFound, VersionTransitionRefused, Forbidden))
async def appeal_rejection(listing_id: ListingKey, version: VersionText, body: YankBody, session: WriteSession,
                           actor: Annotated[Principal, requires(Permission.review_appeal_create)]) -> VersionRead:
    """Appeal a rejection, once; an admin upholds it (back to the queue) or denies it."""
    task = await service.appeal(session, actor=actor, key=listing_id, version=version, reason=body.reason)
    return VersionRead.model_validate(await publishing.by_id(session, task.version_id))
