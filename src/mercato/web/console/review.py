"""The review console (U3): the queue by priority and age, claim and release, the task page
with manifest, file list, findings and the manifest's diff, and the decisions.

Every action is the review service's, behind the permission of its API route
(``review_task:read`` to look, ``review_task:decide`` to act, ``review_appeal:decide`` for appeals).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import Form, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.catalog import service as catalog
from mercato.kit.errors import MercatoError, ValidationFailed
from mercato.models import ReviewTask
from mercato.moderation import service
from mercato.moderation.schemas import ApproveBody, ReasonBody
from mercato.moderation.service import task_read
from mercato.platform.routing import ReadSession, RuntimeDep, WriteSession, get_runtime
from mercato.ratings import service as ratings
from mercato.ratings.schemas import HideRequest
from mercato.releases import service as publishing
from mercato.web.console.access import console_actor, discard, refused
from mercato.web.pages import page_router, redirect, render

router = page_router(prefix="/console/review")

Looker = Annotated[Principal, console_actor(Permission.review_task_read)]
Decider = Annotated[Principal, console_actor(Permission.review_task_decide)]
AppealJudge = Annotated[Principal, console_actor(Permission.review_appeal_decide)]
Moderator = Annotated[Principal, console_actor(Permission.rating_hide)]

# The review SLA: a submission waits at most SLA_HOURS; amber from WARN_HOURS on.
WARN_HOURS, SLA_HOURS = 24, 48
QUEUE_SIZE = 100


def sla(age_seconds: int) -> str:
    """The SLA colour of a task of this age: ok, warn or late."""
    hours = age_seconds / 3600
    return "late" if hours >= SLA_HOURS else "warn" if hours >= WARN_HOURS else "ok"


def age_text(seconds: int) -> str:
    if seconds < 3600:
        return f"{max(seconds // 60, 0)} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if value is None:
        return {}
    return {prefix: ", ".join(map(str, value)) if isinstance(value, list) else value}


def manifest_diff(before: dict[str, Any] | None, after: dict[str, Any]) -> list[dict[str, Any]]:
    """Changed keys of the manifest (dotted paths), sorted: added, removed or changed."""
    old, new = _flatten(before or {}), _flatten(after)
    rows = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            rows.append({"key": key, "change": "added", "before": None, "after": new[key]})
        elif key not in new:
            rows.append({"key": key, "change": "removed", "before": old[key], "after": None})
        elif old[key] != new[key]:
            rows.append({"key": key, "change": "changed", "before": old[key], "after": new[key]})
    return rows


async def _previous_approved(session: AsyncSession, task: ReviewTask) -> Any:
    """The approved version before this one (the highest approved version below it)."""
    version = await publishing.by_id(session, task.version_id)
    for candidate in await publishing.approved_versions(session, task.listing_id):
        if candidate.id != version.id and candidate.ordering < version.ordering:
            return candidate
    return None


async def _task_context(session: AsyncSession, actor: Principal, task_id: uuid.UUID) -> dict[str, Any]:
    task = await service.get_task(session, actor=actor, task_id=task_id)
    detail = await task_read(session, task, detail=True)
    previous = await _previous_approved(session, task)
    return {"task": detail, "sla": sla(detail.age_seconds), "age": age_text(detail.age_seconds),
            "previous": previous, "diff": manifest_diff(previous.manifest if previous else None, detail.manifest),
            "files": detail.checks.get("files", []), "findings": detail.checks.get("findings", []),
            "permissions": _flatten(detail.manifest.get("permissions") or {}),
            "mine": detail.claimed_by == actor.user_id, "can_decide": actor.has(Permission.review_task_decide),
            "can_judge_appeals": actor.has(Permission.review_appeal_decide)}


@router.get("", name="console_review_queue")
async def queue(request: Request, session: ReadSession, actor: Looker,
                view: Literal["queue", "appeals"] = "queue") -> Response:
    statuses = ["rejected"] if view == "appeals" else ["pending", "claimed"]
    rows = await service.queue(session, actor=actor, statuses=statuses, after=None, limit=QUEUE_SIZE)
    if view == "appeals":
        rows = [row for row in rows if row.appeal_status == "pending"]
    tasks = [await task_read(session, row) for row in rows]
    oldest = max((t.age_seconds for t in tasks), default=0)
    return await render(request, "console/review/queue.html", {
        "tasks": [{"task": t, "sla": sla(t.age_seconds), "age": age_text(t.age_seconds),
                   "mine": t.claimed_by == actor.user_id} for t in tasks],
        "view": view, "total": await service.count(session, actor=actor, statuses=statuses),
        "oldest": age_text(oldest) if tasks else None, "warn_hours": WARN_HOURS, "sla_hours": SLA_HOURS,
        "can_decide": actor.has(Permission.review_task_decide), "console": "review"})


# --- user reviews (ratings) ----------------------------------------------------------------------
# Before "/{task_id}": "/reviews" is not a task id.

async def _reviews_context(session: AsyncSession, view: str) -> dict[str, Any]:
    rows = await ratings.for_moderation(session, hidden=view == "hidden", limit=QUEUE_SIZE)
    listings = {i: await catalog.get_by_id(session, i) for i in {r.listing_id for r in rows}}
    return {"rows": rows, "listings": listings, "names": await ratings.author_names(session, rows), "view": view,
            "console": "review"}


@router.get("/reviews", name="console_review_reviews")
async def reviews_page(request: Request, session: ReadSession, actor: Moderator,
                       view: Literal["hidden", "visible"] = "hidden") -> Response:
    """Hidden user reviews to restore, or the latest visible ones to hide (``rating:hide``)."""
    return await render(request, "console/review/reviews.html", await _reviews_context(session, view))


@router.post("/reviews/{listing_id}/{review_id}/{action}", name="console_review_moderate")
async def moderate(listing_id: uuid.UUID, review_id: uuid.UUID, action: Literal["hide", "restore"], request: Request,
                   session: WriteSession, actor: Moderator,
                   reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """``POST /listings/{id}/reviews/{review_id}/hide``: hide with a reason (it stops counting in
    the listing's rating) or show it again; audited."""
    view = "visible" if action == "hide" else "hidden"
    try:
        try:
            body = HideRequest.model_validate({"hidden": action == "hide", "reason": reason or None})
        except ValidationError as exc:
            raise ValidationFailed("Give the author a reason (at least 3 characters).", errors=[
                {"loc": ["form", "reason"], "msg": str(e["msg"]), "type": e["type"]} for e in exc.errors()]) from None
        await ratings.hide(session, actor=actor, key=str(listing_id), review_id=review_id, hidden=body.hidden,
                           reason=body.reason)
    except MercatoError as error:
        await discard(session)
        async with get_runtime(request).db.read_session() as reader:
            context = await _reviews_context(reader, view)
        return await refused(request, error, "console/review/reviews.html",
                             {**context, "failed": review_id, "values": {"reason": reason}})
    return redirect(str(request.url_for("console_review_reviews")) + f"?view={view}")


@router.get("/{task_id}", name="console_review_task")
async def task_page(task_id: uuid.UUID, request: Request, session: ReadSession, actor: Looker) -> Response:
    return await render(request, "console/review/task.html",
                        {**await _task_context(session, actor, task_id), "console": "review"})


async def _refused_on_task(request: Request, session: AsyncSession, actor: Principal, task_id: uuid.UUID,
                           error: MercatoError, values: dict[str, str]) -> Response:
    await discard(session)
    async with get_runtime(request).db.read_session() as reader:
        context = await _task_context(reader, actor, task_id)
    return await refused(request, error, "console/review/task.html", {**context, "values": values, "console": "review"})


@router.post("/{task_id}/claim", name="console_review_claim")
async def claim(task_id: uuid.UUID, request: Request, session: WriteSession, actor: Decider) -> Response:
    try:
        await service.claim(session, actor=actor, task_id=task_id)
    except MercatoError as error:
        return await _refused_on_task(request, session, actor, task_id, error, {})
    return redirect(str(request.url_for("console_review_task", task_id=task_id)))


@router.post("/{task_id}/release", name="console_review_release")
async def release(task_id: uuid.UUID, request: Request, session: WriteSession, actor: Decider) -> Response:
    try:
        await service.release(session, actor=actor, task_id=task_id)
    except MercatoError as error:
        return await _refused_on_task(request, session, actor, task_id, error, {})
    return redirect(str(request.url_for("console_review_queue")))


def _problem(exc: ValidationError) -> ValidationFailed:
    return ValidationFailed("Check the form: " + "; ".join(str(e["msg"]) for e in exc.errors()),
                            errors=[{"loc": ["form", *map(str, e["loc"])], "msg": str(e["msg"]), "type": e["type"]}
                                    for e in exc.errors()])


@router.post("/{task_id}/decide", name="console_review_decide")
async def decide(task_id: uuid.UUID, request: Request, session: WriteSession, actor: Decider, rt: RuntimeDep,
                 outcome: Annotated[Literal["approved", "rejected", "changes_requested"], Form()],
                 reason: Annotated[str, Form(max_length=4000)] = "") -> Response:
    """Approve (an optional note), reject or request changes (a reason of at least 3 characters)."""
    values = {"outcome": outcome, "reason": reason}
    try:
        if outcome == "approved":
            text = ApproveBody.model_validate({"note": reason}).note or None
        else:
            text = ReasonBody.model_validate({"reason": reason}).reason
        await service.decide(session, actor=actor, task_id=task_id, outcome=outcome, reason=text, signer=rt.keys)
    except ValidationError as exc:
        return await _refused_on_task(request, session, actor, task_id, _problem(exc), values)
    except MercatoError as error:
        return await _refused_on_task(request, session, actor, task_id, error, values)
    return redirect(str(request.url_for("console_review_task", task_id=task_id)))


@router.post("/{task_id}/appeal", name="console_review_appeal")
async def appeal(task_id: uuid.UUID, request: Request, session: WriteSession, actor: AppealJudge,
                 decision: Annotated[Literal["uphold", "deny"], Form()],
                 reason: Annotated[str, Form(max_length=4000)] = "") -> Response:
    """Uphold an appeal (the version goes back into the queue) or deny it (a reason)."""
    values = {"decision": decision, "appeal_reason": reason}
    try:
        if decision == "deny":
            reason = ReasonBody.model_validate({"reason": reason}).reason
        task = await service.decide_appeal(session, actor=actor, task_id=task_id, uphold=decision == "uphold",
                                           reason=reason)
    except ValidationError as exc:
        return await _refused_on_task(request, session, actor, task_id, _problem(exc), values)
    except MercatoError as error:
        return await _refused_on_task(request, session, actor, task_id, error, values)
    return redirect(str(request.url_for("console_review_task", task_id=task.appeal_task_id or task_id)))
