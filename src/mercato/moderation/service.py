"""The review queue (P3): a submitted version opens a task; reviewers claim it, then approve
it, reject it or ask for changes, with a reason; a claim left too long returns to the queue;
a rejection may be appealed once, and an upheld appeal opens a new task.

Reviewers never see or decide tasks of publishers they belong to. This module drives the
versions' review states through ``releases.service`` (submit, approve, refuse, reopen); the
releases module never imports it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Condition, Permission
from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.bus.events import CloudEvent
from mercato.bus.outbox import publish
from mercato.catalog import service as catalog
from mercato.kit.clock import utcnow
from mercato.kit.errors import found_or_raise
from mercato.kit.metrics import REGISTRY
from mercato.models import Listing, ListingVersion, ReviewTask
from mercato.moderation import repository
from mercato.moderation.errors import ClaimedByOther, OwnPublisher, ReviewTaskNotFound, ReviewTransitionRefused
from mercato.moderation.schemas import ReviewTaskDetail, ReviewTaskRead, TaskListing, TaskPublisher, TaskVersion
from mercato.publishers import service as publishers
from mercato.releases import service as publishing

# Set by the review sweep (handlers) and by every /metrics scrape (ops.gauges), from pending_count.
REVIEW_QUEUE = Gauge("mercato_review_queue_length", "Review tasks pending or claimed.", registry=REGISTRY)

PRIORITY_RANK = {"high": 0, "normal": 1}
OUTCOME_ACTION = {"approved": AuditAction.review_approve, "rejected": AuditAction.review_reject,
                  "changes_requested": AuditAction.review_request_changes}


def _data(task: ReviewTask, **extra: Any) -> dict[str, Any]:
    return {"task_id": str(task.id), "listing_id": str(task.listing_id), "publisher_id": str(task.publisher_id),
            **extra}


async def open_task(session: AsyncSession, *, listing: Listing, version: ListingVersion, priority: str,
                    note: str = "") -> ReviewTask:
    now = utcnow()
    task = ReviewTask(id=uuid.uuid4(), listing_id=listing.id, version_id=version.id, publisher_id=listing.publisher_id,
                      status="pending", priority=priority, priority_rank=PRIORITY_RANK[priority], note=note,
                      appeal_status="none", created_at=now, updated_at=now)
    await repository.add(session, task)
    await publish(session, CloudEvent(type="review.created", subject=str(task.id), data=_data(
        task, version_id=str(version.id), version=version.version, priority=priority)))
    return task


async def submit(session: AsyncSession, *, actor: Principal, key: str, version: str | None,
                 security_update: bool, note: str) -> tuple[Listing, ListingVersion]:
    """Put an uploaded version (the newest when ``version`` is None) into the review queue
    (``releases.service.submit``) and open its task, with the note for the reviewer."""
    listing, found, priority = await publishing.submit(session, actor=actor, key=key, version=version,
                                                       security_update=security_update)
    await open_task(session, listing=listing, version=found, priority=priority, note=note)
    return listing, found


async def _own_publishers(session: AsyncSession, actor: Principal) -> list[uuid.UUID]:
    return await publishers.publisher_ids_of(session, actor.user_id)


async def queue(session: AsyncSession, *, actor: Principal, statuses: list[str] | None,
                after: Any, limit: int) -> list[ReviewTask]:
    return await repository.queue(session, statuses=statuses, exclude_publishers=await _own_publishers(session, actor),
                                  after=after, limit=limit)


async def count(session: AsyncSession, *, actor: Principal, statuses: list[str] | None) -> int:
    return await repository.count(session, statuses=statuses,
                                  exclude_publishers=await _own_publishers(session, actor))


async def pending_count(session: AsyncSession) -> int:
    return await repository.count(session, statuses=["pending", "claimed"])


async def oldest_pending_since(session: AsyncSession) -> datetime | None:
    """When the oldest task still waiting for a decision (pending or claimed) was queued."""
    return await repository.oldest_created(session, statuses=["pending", "claimed"])


async def get_task(session: AsyncSession, *, actor: Principal, task_id: uuid.UUID) -> ReviewTask:
    """A task the reviewer may work on: tasks of their own publishers do not exist for them."""
    task = await repository.get(session, task_id)
    if task is None or task.publisher_id in await _own_publishers(session, actor):
        raise ReviewTaskNotFound(f"There is no review task {task_id}.")
    return task


async def _reviewer_task(session: AsyncSession, actor: Principal, task_id: uuid.UUID) -> ReviewTask:
    task = found_or_raise(await repository.get(session, task_id),
                          ReviewTaskNotFound, f"There is no review task {task_id}.")
    if task.publisher_id in await _own_publishers(session, actor):
        raise OwnPublisher("You are a member of this listing's publisher; another reviewer must decide.")
    return task


async def _record(session: AsyncSession, actor: Principal, action: AuditAction, task: ReviewTask,
                  before: dict[str, Any], after: dict[str, Any]) -> None:
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=action, resource_type="review_task",
                resource_id=task.id, before=before, after=after)


async def claim(session: AsyncSession, *, actor: Principal, task_id: uuid.UUID) -> ReviewTask:
    task = await _reviewer_task(session, actor, task_id)
    now = utcnow()
    if not await repository.move(session, task.id, where={"status": "pending"},
                                 values={"status": "claimed", "claimed_by": actor.user_id, "claimed_at": now,
                                         "updated_at": now}):
        if task.status == "claimed" and task.claimed_by != actor.user_id:
            raise ClaimedByOther("Another reviewer claimed this task first.")
        raise ReviewTransitionRefused(f"Only a pending task can be claimed (this one is {task.status}).")
    await publish(session, CloudEvent(type="review.claimed", subject=str(task.id),
                                      data=_data(task, reviewer_id=str(actor.user_id))))
    await _record(session, actor, AuditAction.review_claim, task, {"status": "pending"}, {"status": "claimed"})
    return task


async def release(session: AsyncSession, *, actor: Principal, task_id: uuid.UUID) -> ReviewTask:
    """The claiming reviewer gives a task back (admins may release anyone's)."""
    task = await _reviewer_task(session, actor, task_id)
    where: dict[str, Any] = {"status": "claimed"}
    if actor.condition_for(Permission.review_appeal_decide) is not Condition.any:
        where["claimed_by"] = actor.user_id
    holder = task.claimed_by
    now = utcnow()
    if not await repository.move(session, task.id, where=where,
                                 values={"status": "pending", "claimed_by": None, "claimed_at": None,
                                         "updated_at": now}):
        if task.status == "claimed":
            raise ClaimedByOther("Only the reviewer holding the task (or an admin) can release it.")
        raise ReviewTransitionRefused(f"Only a claimed task can be released (this one is {task.status}).")
    await publish(session, CloudEvent(type="review.released", subject=str(task.id), data=_data(
        task, reviewer_id=str(holder) if holder else None, timed_out=False)))
    await _record(session, actor, AuditAction.review_release, task, {"status": "claimed"}, {"status": "pending"})
    return task


async def decide(session: AsyncSession, *, actor: Principal, task_id: uuid.UUID, outcome: str, reason: str | None,
                 signer: Any) -> ReviewTask:
    """Approve, reject or request changes on a task the caller has claimed."""
    task = await _reviewer_task(session, actor, task_id)
    now = utcnow()
    if not await repository.move(session, task.id, where={"status": "claimed", "claimed_by": actor.user_id},
                                 values={"status": outcome, "decided_by": actor.user_id, "decided_at": now,
                                         "reason": reason, "updated_at": now}):
        if task.status == "claimed":
            raise ClaimedByOther("Claim the task before deciding it; another reviewer holds it.")
        if task.status == "pending":
            raise ReviewTransitionRefused("Claim the task before deciding it.")
        raise ReviewTransitionRefused(f"This task was already decided ({task.status}).")
    version = await publishing.by_id(session, task.version_id)
    if outcome == "approved":
        await publishing.approve(session, version=version, reviewer_id=actor.user_id, signer=signer)
    else:
        await publishing.refuse(session, version=version, reviewer_id=actor.user_id, outcome=outcome,
                                reason=reason or "")
    await publish(session, CloudEvent(type=f"review.{outcome}", subject=str(task.id), data=_data(
        task, version_id=str(version.id), version=version.version, reviewer_id=str(actor.user_id),
        **({"reason": reason} if outcome != "approved" else {}))))
    await _record(session, actor, OUTCOME_ACTION[outcome], task, {"status": "claimed"},
                  {"status": outcome, "reason": reason, "version": version.version})
    return task


async def appeal(session: AsyncSession, *, actor: Principal, key: str, version: str, reason: str) -> ReviewTask:
    """A publisher member appeals the rejection of a version, once per rejection."""
    listing = await catalog.get_for_change(session, actor, key, Permission.review_appeal_create)
    found = await publishing.get_version(session, actor, listing, version)
    task = await repository.latest_for_version(session, found.id)
    if task is None or task.status != "rejected":
        raise ReviewTransitionRefused(f"Only a rejection can be appealed ({listing.slug} {found.version} is "
                                      f"{found.status}).")
    now = utcnow()
    if not await repository.move(session, task.id, where={"status": "rejected", "appeal_status": "none"},
                                 values={"appeal_status": "pending", "appeal_reason": reason, "appealed_at": now,
                                         "updated_at": now}):
        raise ReviewTransitionRefused("A rejection can be appealed once; this one already was.")
    await publish(session, CloudEvent(type="review.appealed", subject=str(task.id), data=_data(
        task, version_id=str(found.id), version=found.version, reason=reason)))
    await _record(session, actor, AuditAction.review_appeal, task, {"appeal_status": "none"},
                  {"appeal_status": "pending", "reason": reason})
    return task


async def decide_appeal(session: AsyncSession, *, actor: Principal, task_id: uuid.UUID, uphold: bool,
                        reason: str) -> ReviewTask:
    """Admins decide appeals. Upheld: the version goes back into review as a new, high-priority
    task (for another reviewer); denied: the rejection stands for good."""
    task = await _reviewer_task(session, actor, task_id)
    outcome = "upheld" if uphold else "denied"
    if not await repository.move(session, task.id, where={"appeal_status": "pending"},
                                 values={"appeal_status": outcome, "appeal_decided_by": actor.user_id,
                                         "updated_at": utcnow()}):
        raise ReviewTransitionRefused(f"There is no pending appeal on this task (appeal: {task.appeal_status}).")
    version = await publishing.by_id(session, task.version_id)
    extra: dict[str, Any] = {"version_id": str(version.id), "version": version.version}
    if uphold:
        await publishing.reopen(session, version=version)
        listing = await catalog.get_by_id(session, task.listing_id)
        new_task = await open_task(session, listing=listing, version=version, priority="high",
                                   note=f"Appeal upheld: {task.appeal_reason or ''}".strip())
        await repository.move(session, task.id, where={}, values={"appeal_task_id": new_task.id})
        extra["new_task_id"] = str(new_task.id)
    else:
        extra["reason"] = reason
    await publish(session, CloudEvent(type=f"review.appeal_{outcome}", subject=str(task.id), data=_data(task, **extra)))
    await _record(session, actor, AuditAction.review_appeal_uphold if uphold else AuditAction.review_appeal_deny,
                  task, {"appeal_status": "pending"}, {"appeal_status": outcome, "reason": reason})
    return task


async def release_stale(session: AsyncSession, *, timeout_seconds: int) -> int:
    """Claims older than the timeout go back to the queue (idempotent: guarded per task)."""
    now = utcnow()
    released = 0
    for task in await repository.stale_claims(session, claimed_before=now - timedelta(seconds=timeout_seconds)):
        holder, claimed_at = task.claimed_by, task.claimed_at
        if await repository.move(session, task.id, where={"status": "claimed", "claimed_at": claimed_at},
                                 values={"status": "pending", "claimed_by": None, "claimed_at": None,
                                         "updated_at": now}):
            released += 1
            await publish(session, CloudEvent(type="review.released", subject=str(task.id), data=_data(
                task, reviewer_id=str(holder) if holder else None, timed_out=True)))
    return released



async def oldest_waiting(session: AsyncSession) -> Any:
    """When the longest-waiting pending or claimed task was submitted, or None."""
    return await repository.oldest_waiting(session)


async def latest_of_version(session: AsyncSession, version_id: uuid.UUID) -> ReviewTask | None:
    """The newest review task of a version (its decision and appeal state), for its publisher."""
    return await repository.latest_for_version(session, version_id)


# --- presenting a task (the API and the review console) ---------------------------------------------

async def task_read(session: AsyncSession, task: ReviewTask, *, detail: bool = False) -> ReviewTaskRead:
    """A task as the API and the review console show it: with its listing, publisher and version
    (and, with ``detail``, the version's manifest, checks and changelog)."""
    listing = await catalog.get_by_id(session, task.listing_id)
    publisher = await publishers.get_by_id(session, task.publisher_id)
    version = await publishing.by_id(session, task.version_id)
    fields = dict(
        id=task.id, status=task.status, priority=task.priority,
        listing=TaskListing.model_validate(listing), publisher=TaskPublisher.model_validate(publisher),
        version=TaskVersion.model_validate(version), note=task.note, claimed_by=task.claimed_by,
        claimed_at=task.claimed_at, decided_at=task.decided_at, reason=task.reason,
        appeal_status=task.appeal_status, appeal_reason=task.appeal_reason, created_at=task.created_at,
        age_seconds=int(((task.decided_at or utcnow()) - task.created_at).total_seconds()))
    if detail:
        return ReviewTaskDetail(**fields, manifest=version.manifest, checks=version.checks,
                                changelog=version.changelog)
    return ReviewTaskRead(**fields)
