"""The admin console (U4): store health, settings, the audit log with CSV export, dead letters,
listings (suspend) and payouts. Each action is the service of its API route, behind the same
permission (``audit:read``, ``settings:read|write``, ``dead_letter:manage``, ``listing:suspend``,
``payout:decide``)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Form, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response, StreamingResponse

from mercato.access import service as access
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.accounts import service as accounts
from mercato.accounts.schemas import AdminUserCreate
from mercato.audit import service as audit_log
from mercato.bus import admin as bus_admin
from mercato.catalog import service as catalog
from mercato.catalog.schemas import Reason
from mercato.earnings import service as earnings
from mercato.earnings.schemas import PayoutReject
from mercato.kit.errors import MercatoError, ValidationFailed
from mercato.ops import health
from mercato.platform.routing import ReadSession, RuntimeDep, WriteSession, get_runtime
from mercato.policies import service as policies
from mercato.policies.schemas import Policies
from mercato.publishers import service as publishers
from mercato.publishers.schemas import ApplicationReject
from mercato.web.console.access import console_actor, discard, refused
from mercato.web.console.review import age_text
from mercato.web.pages import page_router, redirect, render

router = page_router(prefix="/console/admin")

Auditor = Annotated[Principal, console_actor(Permission.audit_read)]
SettingsReader = Annotated[Principal, console_actor(Permission.settings_read)]
SettingsWriter = Annotated[Principal, console_actor(Permission.settings_write)]
DeadLetters = Annotated[Principal, console_actor(Permission.dead_letter_manage)]
Suspender = Annotated[Principal, console_actor(Permission.listing_suspend)]
PayoutDecider = Annotated[Principal, console_actor(Permission.payout_decide)]
PAGE = 50


def _problem(exc: ValidationError, field: str) -> ValidationFailed:
    return ValidationFailed("; ".join(str(e["msg"]) for e in exc.errors()),
                            errors=[{"loc": ["form", field], "msg": str(e["msg"]), "type": e["type"]}
                                    for e in exc.errors()])


# --- health ---------------------------------------------------------------------------------------

@router.get("", name="console_admin_health")
async def health_page(request: Request, session: ReadSession, actor: Auditor) -> Response:
    figures = await health.figures(session, request.app.state.bus.registry)
    return await render(request, "console/admin/health.html", {
        "h": figures, "oldest": age_text(figures.review_oldest_seconds) if figures.review_oldest_seconds is not None
        else None, "console": "admin", "section": "health"})


# --- settings -------------------------------------------------------------------------------------

def _settings_rows(values: dict[str, Any]) -> list[dict[str, Any]]:
    defaults = Policies()
    return [{"name": name, "description": field.description, "value": values.get(name),
             "default": getattr(defaults, name),
             "min": next((m.ge for m in field.metadata if hasattr(m, "ge")), None),
             "max": next((m.le for m in field.metadata if hasattr(m, "le")), None)}
            for name, field in Policies.model_fields.items()]


async def _settings_context(session: AsyncSession, rt: Any) -> dict[str, Any]:
    view = await policies.view(session)
    return {"rows": _settings_rows(view.policies.model_dump()), "updated_at": view.updated_at,
            "currency": rt.settings.currency, "console": "admin", "section": "settings"}


@router.get("/settings", name="console_admin_settings")
async def settings_page(request: Request, session: ReadSession, actor: SettingsReader, rt: RuntimeDep,
                        saved: int = 0) -> Response:
    return await render(request, "console/admin/settings.html", {
        **await _settings_context(session, rt), "saved": bool(saved),
        "can_write": actor.has(Permission.settings_write)})


@router.post("/settings", name="console_admin_settings_save")
async def save_settings(request: Request, session: WriteSession, actor: SettingsWriter, rt: RuntimeDep) -> Response:
    """Every policy field of the form; only those that differ from the values in force change.
    Validation is the API's (bounds and rules across policies): on a refusal nothing changes."""
    form = await request.form()
    typed: dict[str, str] = {name: str(form.get(name, "")).strip() for name in Policies.model_fields}
    errors = [{"loc": ["form", name], "msg": "Enter a whole number", "type": "int_parsing"}
              for name, raw in typed.items() if not raw.lstrip("-").isdigit()]
    try:
        if errors:
            raise ValidationFailed("Some values are not whole numbers; nothing was changed.", errors=errors)
        current = (await policies.view(session)).policies.model_dump()
        changes = {name: int(raw) for name, raw in typed.items() if int(raw) != current[name]}
        await policies.update(session, actor=actor, changes=changes)
    except MercatoError as error:
        await discard(session)
        async with rt.db.read_session() as reader:
            context = await _settings_context(reader, rt)
        for row in context["rows"]:
            row["value"] = typed[row["name"]]
        return await refused(request, error, "console/admin/settings.html", {**context, "can_write": True})
    return redirect(str(request.url_for("console_admin_settings")) + "?saved=1")


# --- audit log ------------------------------------------------------------------------------------

def _audit_filters(action: str, resource: str, since: str, until: str, actor_id: str) -> dict[str, Any]:
    """The API's filters from the form: day fields (YYYY-MM-DD, UTC) for since/until."""
    problems = []
    parsed: dict[str, Any] = {}
    for name, raw in (("since", since), ("until", until)):
        parsed[name] = None
        if raw:
            try:
                parsed[name] = datetime.fromisoformat(raw).replace(tzinfo=UTC)
            except ValueError:
                problems.append({"loc": ["query", name], "msg": "Use a date like 2026-01-31", "type": "value_error"})
    actor_uuid = None
    if actor_id:
        try:
            actor_uuid = uuid.UUID(actor_id)
        except ValueError:
            problems.append({"loc": ["query", "actor"], "msg": "An account id (UUID)", "type": "uuid_parsing"})
    if problems:
        raise ValidationFailed("Check the filters.", errors=problems)
    resource_type, _, resource_id = resource.partition(":")
    return {"actor": actor_uuid, "action": action or None, "resource_type": resource_type or None,
            "resource_id": resource_id or None, "since": parsed["since"], "until": parsed["until"]}


@router.get("/audit", name="console_admin_audit")
async def audit_page(request: Request, session: ReadSession, actor: Auditor, action: str = "", resource: str = "",
                     since: str = "", until: str = "", actor_id: str = "") -> Response:
    values = {"action": action, "resource": resource, "since": since, "until": until, "actor_id": actor_id}
    context = {"values": values, "rows": [], "console": "admin", "section": "audit",
               "query": request.url.query}
    try:
        filters = _audit_filters(action[:64], resource[:200], since, until, actor_id)
    except ValidationFailed as error:
        return await refused(request, error, "console/admin/audit.html", context)
    rows = await audit_log.search(session, **filters, after=None, limit=PAGE)
    return await render(request, "console/admin/audit.html", {**context, "rows": rows})


@router.get("/audit.csv", name="console_admin_audit_csv")
async def audit_csv(request: Request, session: ReadSession, rt: RuntimeDep, actor: Auditor, action: str = "",
                    resource: str = "", since: str = "", until: str = "", actor_id: str = "") -> Response:
    """Every matching row as CSV, streamed: the API's export (``GET /admin/audit?format=csv``)."""
    filters = _audit_filters(action[:64], resource[:200], since, until, actor_id)
    first = await audit_log.search(session, **filters, after=None, limit=audit_log.CSV_BATCH)
    return StreamingResponse(audit_log.csv_rows(rt.db, filters, first), media_type="text/csv",
                             headers={"Content-Disposition": 'attachment; filename="audit.csv"'})


# --- dead letters ---------------------------------------------------------------------------------

@router.get("/dead-letters", name="console_admin_dead_letters")
async def dead_letters_page(request: Request, session: ReadSession, actor: DeadLetters,
                            replayed: str = "") -> Response:
    rows = await bus_admin.dead_letters(session, subscriber=None, after=None, limit=PAGE)
    events = {row.event_id: await bus_admin.event_of(session, row.event_id) for row in rows}
    return await render(request, "console/admin/dead_letters.html", {
        "rows": rows, "events": events, "replayed": replayed,
        "total": await bus_admin.count_dead_letters(session, subscriber=None), "console": "admin",
        "section": "dead-letters"})


@router.post("/dead-letters/{dead_letter_id}/replay", name="console_admin_replay")
async def replay(dead_letter_id: uuid.UUID, request: Request, session: WriteSession, actor: DeadLetters) -> Response:
    try:
        await bus_admin.replay(session, actor=actor, dead_letter_id=dead_letter_id)
    except MercatoError as error:
        await discard(session)
        async with get_runtime(request).db.read_session() as reader:
            rows = await bus_admin.dead_letters(reader, subscriber=None, after=None, limit=PAGE)
            total = await bus_admin.count_dead_letters(reader, subscriber=None)
        return await refused(request, error, "console/admin/dead_letters.html", {
            "rows": rows, "events": {}, "total": total, "console": "admin", "section": "dead-letters"})
    return redirect(str(request.url_for("console_admin_dead_letters")) + f"?replayed={dead_letter_id}")


# --- listings -------------------------------------------------------------------------------------

async def _listings_context(session: AsyncSession, q: str, status: str) -> dict[str, Any]:
    rows = await catalog.for_admin(session, text=q.strip() or None, status=status or None)
    owners = await catalog.publishers_by_id(session, {row.publisher_id for row in rows})
    return {"rows": rows, "owners": owners, "values": {"q": q, "status": status}, "console": "admin",
            "section": "listings"}


@router.get("/listings", name="console_admin_listings")
async def listings_page(request: Request, session: ReadSession, actor: Suspender, q: str = "",
                        status: str = "") -> Response:
    return await render(request, "console/admin/listings.html", await _listings_context(session, q[:100], status[:20]))


@router.post("/listings/{listing_id}/suspend", name="console_admin_suspend")
async def suspend(listing_id: uuid.UUID, request: Request, session: WriteSession, actor: Suspender,
                  reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    try:
        try:
            body = Reason.model_validate({"reason": reason})
        except ValidationError as exc:
            raise _problem(exc, "reason") from None
        await catalog.suspend(session, actor=actor, key=str(listing_id), reason=body.reason)
    except MercatoError as error:
        await discard(session)
        async with get_runtime(request).db.read_session() as reader:
            context = await _listings_context(reader, "", "")
        return await refused(request, error, "console/admin/listings.html", context)
    return redirect(str(request.url_for("console_admin_listings")))


@router.post("/listings/{listing_id}/unsuspend", name="console_admin_unsuspend")
async def unsuspend(listing_id: uuid.UUID, request: Request, session: WriteSession, actor: Suspender) -> Response:
    try:
        await catalog.unsuspend(session, actor=actor, key=str(listing_id))
    except MercatoError as error:
        await discard(session)
        async with get_runtime(request).db.read_session() as reader:
            context = await _listings_context(reader, "", "")
        return await refused(request, error, "console/admin/listings.html", context)
    return redirect(str(request.url_for("console_admin_listings")))


# --- payouts --------------------------------------------------------------------------------------

async def _payouts_context(session: AsyncSession, status: str) -> dict[str, Any]:
    rows, _ = await earnings.search(session, publisher=None, status=status or None, after=None, limit=PAGE,
                                    with_total=False)
    return {"rows": rows, "slugs": await earnings.slugs_of(session, {p.publisher_id for p in rows}),
            "status": status, "console": "admin", "section": "payouts"}


@router.get("/payouts", name="console_admin_payouts")
async def payouts_page(request: Request, session: ReadSession, actor: PayoutDecider,
                       status: Literal["", "requested", "approved", "rejected"] = "requested") -> Response:
    return await render(request, "console/admin/payouts.html", await _payouts_context(session, status))


@router.post("/payouts/{payout_id}/{decision}", name="console_admin_payout_decide")
async def decide_payout(payout_id: uuid.UUID, decision: Literal["approve", "reject"], request: Request,
                        session: WriteSession, actor: PayoutDecider,
                        reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    async def reject(reason: str) -> None:
        await earnings.reject(session, actor=actor, payout_id=payout_id, reason=reason)

    return await _decide(
        request, session, decision, reason, schema=PayoutReject, reject=reject,
        approve=lambda: earnings.approve(session, actor=actor, payout_id=payout_id),
        page="console_admin_payouts", template="console/admin/payouts.html",
        context=lambda reader: _payouts_context(reader, "requested"))


async def _decide(request: Request, session: AsyncSession, decision: str, reason: str, *,
                  approve: Callable[[], Awaitable[Any]], reject: Callable[[str], Awaitable[Any]],
                  schema: type[PayoutReject] | type[ApplicationReject], page: str, template: str,
                  context: Callable[[AsyncSession], Awaitable[dict[str, Any]]]) -> Response:
    """Approve, or reject with a reason (validated by ``schema``); a refusal shows the page again
    with the message beside the form, read in a fresh session after the failed one is discarded."""
    try:
        if decision == "approve":
            await approve()
        else:
            try:
                body = schema.model_validate({"reason": reason})
            except ValidationError as exc:
                raise _problem(exc, "reason") from None
            await reject(body.reason)
    except MercatoError as error:
        await discard(session)
        async with get_runtime(request).db.read_session() as reader:
            shown = await context(reader)
        return await refused(request, error, template, shown)
    return redirect(str(request.url_for(page)))


# --- publisher applications -----------------------------------------------------------------------

ApplicationReviewer = Annotated[Principal, console_actor(Permission.publisher_application_review)]


async def _applications_context(session: AsyncSession, status: str) -> dict[str, Any]:
    rows = await publishers.search_applications(session, status=status or None, after=None, limit=PAGE)
    return {"rows": rows, "status": status, "console": "admin", "section": "applications"}


@router.get("/applications", name="console_admin_applications")
async def applications_page(request: Request, session: ReadSession, actor: ApplicationReviewer,
                            status: Literal["", "pending", "approved", "rejected"] = "pending") -> Response:
    return await render(request, "console/admin/applications.html", await _applications_context(session, status))


@router.post("/applications/{application_id}/{decision}", name="console_admin_application_decide")
async def decide_application(application_id: uuid.UUID, decision: Literal["approve", "reject"], request: Request,
                             session: WriteSession, actor: ApplicationReviewer,
                             reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Approve (the publisher is created, its applicant the owner) or reject with a reason."""
    async def reject(reason: str) -> None:
        await publishers.reject(session, actor=actor, application_id=application_id, reason=reason)

    return await _decide(
        request, session, decision, reason, schema=ApplicationReject, reject=reject,
        approve=lambda: publishers.approve(session, actor=actor, application_id=application_id),
        page="console_admin_applications", template="console/admin/applications.html",
        context=lambda reader: _applications_context(reader, "pending"))


# --- users ----------------------------------------------------------------------------------------

UserReader = Annotated[Principal, console_actor(Permission.user_read)]
UserCreator = Annotated[Principal, console_actor(Permission.user_create)]
UserUpdater = Annotated[Principal, console_actor(Permission.user_update)]
ROLE_CHOICES = ("user", "developer", "reviewer", "marketplace_admin", "super_admin")


async def _users_context(session: AsyncSession, q: str) -> dict[str, Any]:
    rows = await accounts.search_users(session, query=q or None, active=None, after=None, limit=PAGE)
    return {"rows": rows, "roles": await access.roles_of_users(session, [u.id for u in rows]), "q": q,
            "choices": ROLE_CHOICES, "values": {}, "console": "admin", "section": "users"}


@router.get("/users", name="console_admin_users")
async def users_page(request: Request, session: ReadSession, actor: UserReader, q: str = "") -> Response:
    return await render(request, "console/admin/users.html", await _users_context(session, q[:100]))


@router.post("/users", name="console_admin_create_user")
async def create_user(request: Request, session: WriteSession, actor: UserCreator, rt: RuntimeDep) -> Response:
    """``POST /admin/users``: an account with roles; only roles whose permissions you hold."""
    form = await request.form()
    values = {"email": str(form.get("email", "")).strip(), "display_name": str(form.get("display_name", "")).strip()}
    roles = sorted({"user", *(str(r) for r in form.getlist("roles") if str(r) in ROLE_CHOICES)})
    try:
        try:
            body = AdminUserCreate.model_validate({**values, "password": str(form.get("password", "")),
                                                   "roles": roles})
        except ValidationError as exc:
            raise ValidationFailed("Check the highlighted fields.", errors=[
                {"loc": ["form", str(e["loc"][0]) if e["loc"] else "email"], "msg": str(e["msg"]), "type": e["type"]}
                for e in exc.errors()]) from None
        await accounts.admin_create(session, rt, actor=actor, email=str(body.email), password=body.password,
                                    display_name=body.display_name, roles=body.roles)
    except MercatoError as error:
        await discard(session)
        async with rt.db.read_session() as reader:
            context = await _users_context(reader, "")
        return await refused(request, error, "console/admin/users.html",
                             {**context, "values": {**values, "roles": roles}})
    return redirect(str(request.url_for("console_admin_users")) + f"?q={values['email']}")


@router.post("/users/{user_id}", name="console_admin_change_user")
async def change_user(user_id: uuid.UUID, request: Request, session: WriteSession, actor: UserUpdater,
                      rt: RuntimeDep) -> Response:
    """``PATCH /admin/users/{id}``: enable or disable, or set the roles."""
    form = await request.form()
    action = str(form.get("action", ""))
    try:
        if action in ("disable", "enable"):
            await accounts.admin_change(session, actor=actor, user_id=user_id, display_name=None,
                                        is_active=action == "enable", roles=None)
        elif action == "roles":
            roles = sorted({"user", *(str(r) for r in form.getlist("roles") if str(r) in ROLE_CHOICES)})
            await accounts.admin_change(session, actor=actor, user_id=user_id, display_name=None, is_active=None,
                                        roles=roles)
        else:
            raise ValidationFailed("Choose what to change.", errors=[
                {"loc": ["form", "action"], "msg": "disable, enable or roles", "type": "value_error"}])
    except MercatoError as error:
        await discard(session)
        async with rt.db.read_session() as reader:
            context = await _users_context(reader, "")
        return await refused(request, error, "console/admin/users.html", context)
    return redirect(str(request.url_for("console_admin_users")))
