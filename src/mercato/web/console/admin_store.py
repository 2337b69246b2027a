"""More of the admin console (U4): publishers (verified badge), categories, refunds, the event
log, market sources and roles. Each action is the service of its API route, behind the same
permission (``publisher:verify``, ``category:manage``, ``refund:decide``, ``event:read``,
``market_source:manage``, ``role:read|update``); a refusal re-renders the page with the reason
and nothing changed."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import Form, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from mercato.access import service as access
from mercato.access.permissions import Condition, Permission
from mercato.access.principal import Principal
from mercato.access.schemas import RolePut
from mercato.accounts import service as accounts
from mercato.bus import service as bus_events
from mercato.catalog import service as catalog
from mercato.catalog.schemas import CategoryCreate, CategoryUpdate
from mercato.kit.errors import MercatoError, ValidationFailed
from mercato.market import service as market
from mercato.market import sweep as market_sweep
from mercato.market.schemas import MarketSourceCreate
from mercato.platform.routing import ReadSession, RuntimeDep, WriteSession, get_runtime
from mercato.publishers import service as publishers
from mercato.refunds import service as refunds
from mercato.refunds.schemas import RefundRejection
from mercato.web.console.access import console_actor, discard, refused
from mercato.web.pages import page_router, redirect, render

router = page_router(prefix="/console/admin")

Verifier = Annotated[Principal, console_actor(Permission.publisher_verify)]
CategoryManager = Annotated[Principal, console_actor(Permission.category_manage)]
RefundDecider = Annotated[Principal, console_actor(Permission.refund_decide)]
EventReader = Annotated[Principal, console_actor(Permission.event_read)]
SourceManager = Annotated[Principal, console_actor(Permission.market_source_manage)]
RoleReader = Annotated[Principal, console_actor(Permission.role_read)]
RoleUpdater = Annotated[Principal, console_actor(Permission.role_update)]
PAGE = 50


def _problem(exc: ValidationError, message: str = "Check the highlighted fields.") -> ValidationFailed:
    """The schema's complaints as a problem whose ``loc`` ends with the form field's name."""
    return ValidationFailed(message, errors=[
        {"loc": ["form", str(e["loc"][-1]) if e["loc"] else "form"], "msg": str(e["msg"]), "type": e["type"]}
        for e in exc.errors()])


# --- publishers (verified badge) ------------------------------------------------------------------

async def _publishers_context(session: AsyncSession, q: str) -> dict[str, Any]:
    return {"rows": await publishers.search(session, text=q.strip() or None, limit=PAGE * 2), "q": q,
            "console": "admin", "section": "publishers"}


@router.get("/publishers", name="console_admin_publishers")
async def publishers_page(request: Request, session: ReadSession, actor: Verifier, q: str = "") -> Response:
    return await render(request, "console/admin/publishers.html", await _publishers_context(session, q[:100]))


@router.post("/publishers/{slug}/verified", name="console_admin_publisher_verified")
async def set_verified(slug: str, request: Request, session: WriteSession, actor: Verifier,
                       verified: Annotated[Literal["on", "off"], Form()]) -> Response:
    """``PATCH /publishers/{slug}`` with ``verified`` (audited as ``publisher:verify``)."""
    try:
        await publishers.update(session, actor=actor, slug=slug[:64], changes={"verified": verified == "on"})
    except MercatoError as error:
        await discard(session)
        async with get_runtime(request).db.read_session() as reader:
            context = await _publishers_context(reader, "")
        return await refused(request, error, "console/admin/publishers.html", context)
    return redirect(str(request.url_for("console_admin_publishers")) + f"?q={slug[:64]}")


# --- categories -----------------------------------------------------------------------------------

async def _categories_context(session: AsyncSession) -> dict[str, Any]:
    return {"rows": await catalog.categories(session), "values": {}, "errors": {}, "editing": None,
            "console": "admin", "section": "categories"}


@router.get("/categories", name="console_admin_categories")
async def categories_page(request: Request, session: ReadSession, actor: CategoryManager) -> Response:
    return await render(request, "console/admin/categories.html", await _categories_context(session))


def _category_form(form: Any) -> dict[str, str]:
    return {name: str(form.get(name, "")).strip() for name in ("slug", "name", "description", "position")}


def _position(raw: str) -> int | str:
    return int(raw) if raw.lstrip("-").isdigit() else raw


@router.post("/categories", name="console_admin_category_create")
async def create_category(request: Request, session: WriteSession, actor: CategoryManager) -> Response:
    """``POST /admin/categories``."""
    values = _category_form(await request.form())
    try:
        try:
            body = CategoryCreate.model_validate({**values, "position": _position(values["position"] or "0")})
        except ValidationError as exc:
            raise _problem(exc) from None
        await catalog.create_category(session, actor=actor, fields=body.model_dump())
    except MercatoError as error:
        await discard(session)
        async with get_runtime(request).db.read_session() as reader:
            context = await _categories_context(reader)
        return await refused(request, error, "console/admin/categories.html", {**context, "values": values})
    return redirect(str(request.url_for("console_admin_categories")))


@router.post("/categories/{slug}", name="console_admin_category_update")
async def update_category(slug: str, request: Request, session: WriteSession, actor: CategoryManager) -> Response:
    """``PATCH /admin/categories/{slug}``: name, description and position."""
    values = _category_form(await request.form())
    try:
        try:
            body = CategoryUpdate.model_validate({"name": values["name"], "description": values["description"],
                                                  "position": _position(values["position"] or "0")})
        except ValidationError as exc:
            raise _problem(exc) from None
        await catalog.update_category(session, actor=actor, slug=slug[:64],
                                      changes=body.model_dump(exclude_unset=True))
    except MercatoError as error:
        await discard(session)
        async with get_runtime(request).db.read_session() as reader:
            context = await _categories_context(reader)
        return await refused(request, error, "console/admin/categories.html",
                             {**context, "editing": slug, "edit_values": values})
    return redirect(str(request.url_for("console_admin_categories")))


@router.post("/categories/{slug}/delete", name="console_admin_category_delete")
async def delete_category(slug: str, request: Request, session: WriteSession, actor: CategoryManager) -> Response:
    """``DELETE /admin/categories/{slug}`` (refused while listings use it)."""
    try:
        await catalog.delete_category(session, actor=actor, slug=slug[:64])
    except MercatoError as error:
        await discard(session)
        async with get_runtime(request).db.read_session() as reader:
            context = await _categories_context(reader)
        return await refused(request, error, "console/admin/categories.html", context)
    return redirect(str(request.url_for("console_admin_categories")))


# --- refunds --------------------------------------------------------------------------------------

async def _refunds_context(session: AsyncSession, actor: Principal, status: str) -> dict[str, Any]:
    rows = await refunds.visible(session, actor=actor, status=status or None, order_id=None, after=None, limit=PAGE)
    buyers = {user_id: (await accounts.get_user(session, user_id)).email for user_id in {r.user_id for r in rows}}
    return {"rows": rows, "lines": {r.id: await refunds.lines_of(session, r.id) for r in rows}, "buyers": buyers,
            "status": status, "console": "admin", "section": "refunds"}


@router.get("/refunds", name="console_admin_refunds")
async def refunds_page(request: Request, session: ReadSession, actor: RefundDecider,
                       status: Literal["", "requested", "approved", "completed", "rejected"] = "requested") -> Response:
    return await render(request, "console/admin/refunds.html", await _refunds_context(session, actor, status))


@router.post("/refunds/{refund_id}/{decision}", name="console_admin_refund_decide")
async def decide_refund(refund_id: uuid.UUID, decision: Literal["approve", "reject"], request: Request,
                        session: WriteSession, actor: RefundDecider,
                        reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """``POST /refunds/{id}/approve|reject``: approving returns the money to the buyer's wallet."""
    try:
        if decision == "approve":
            await refunds.decide(session, actor=actor, refund_id=refund_id, approve=True, reason=None)
        else:
            try:
                body = RefundRejection.model_validate({"reason": reason})
            except ValidationError as exc:
                raise _problem(exc, "Give the buyer a reason (at least 3 characters).") from None
            await refunds.decide(session, actor=actor, refund_id=refund_id, approve=False, reason=body.reason)
    except MercatoError as error:
        await discard(session)
        async with get_runtime(request).db.read_session() as reader:
            context = await _refunds_context(reader, actor, "requested")
        return await refused(request, error, "console/admin/refunds.html",
                             {**context, "failed": refund_id, "values": {"reason": reason}})
    return redirect(str(request.url_for("console_admin_refunds")))


# --- events ---------------------------------------------------------------------------------------

@router.get("/events", name="console_admin_events")
async def events_page(request: Request, session: ReadSession, actor: EventReader, type: str = "",
                      subject: str = "", before: str = "") -> Response:
    """``GET /admin/events``: newest first, filtered by type and subject; *Older* continues."""
    values = {"type": type[:100], "subject": subject[:128]}
    context: dict[str, Any] = {"values": values, "rows": [], "next": None, "console": "admin", "section": "events"}
    before_sequence = None
    if before:
        if not before.isdigit() or not 0 < int(before) < 2**63:
            error = ValidationFailed("That page link is not valid; start from the newest.", errors=[
                {"loc": ["query", "before"], "msg": "a sequence number", "type": "value_error"}])
            return await refused(request, error, "console/admin/events.html", context)
        before_sequence = int(before)
    rows = await bus_events.search_events(session, event_type=values["type"] or None,
                                          subject=values["subject"] or None, since=None, until=None,
                                          before_sequence=before_sequence, limit=PAGE + 1)
    page = rows[:PAGE]
    return await render(request, "console/admin/events.html", {
        **context, "rows": page, "next": page[-1].sequence if len(rows) > PAGE else None})


# --- market sources -------------------------------------------------------------------------------

async def _sources_context(session: AsyncSession) -> dict[str, Any]:
    rows, counts = await market.sources(session)
    return {"rows": rows, "counts": counts, "values": {}, "console": "admin", "section": "market-sources"}


@router.get("/market-sources", name="console_admin_sources")
async def sources_page(request: Request, session: ReadSession, actor: SourceManager, synced: str = "") -> Response:
    return await render(request, "console/admin/market_sources.html",
                        {**await _sources_context(session), "synced": synced[:40]})


@router.post("/market-sources", name="console_admin_source_create")
async def create_source(request: Request, session: WriteSession, actor: SourceManager, rt: RuntimeDep) -> Response:
    """``POST /admin/sources``: the URL passes the SSRF guard or is refused (``url_not_allowed``)."""
    form = await request.form()
    values = {"name": str(form.get("name", "")).strip(), "url": str(form.get("url", "")).strip()}
    try:
        try:
            body = MarketSourceCreate.model_validate(values)
        except ValidationError as exc:
            raise _problem(exc) from None
        await market.create(session, actor=actor, settings=rt.settings, name=body.name, url=body.url)
    except MercatoError as error:
        await discard(session)
        async with rt.db.read_session() as reader:
            context = await _sources_context(reader)
        if error.errors:
            error.errors = [{**e, "loc": ["form", "url" if "url" in map(str, e.get("loc") or []) else
                                          str((e.get("loc") or ["url"])[-1])]} for e in error.errors]
        else:
            error.errors = [{"loc": ["form", "url"], "msg": error.detail or error.title, "type": error.code}]
        return await refused(request, error, "console/admin/market_sources.html", {**context, "values": values})
    return redirect(str(request.url_for("console_admin_sources")))


@router.post("/market-sources/{source_id}/sync", name="console_admin_source_sync")
async def sync_source(source_id: uuid.UUID, request: Request, actor: SourceManager, rt: RuntimeDep) -> Response:
    """``POST /admin/sources/{id}/sync``: fetched outside any transaction, each page applied in
    its own (a failing source is shown failing with its error)."""
    async with rt.db.read_session() as reader:
        await market.get(reader, source_id)  # unknown → the 404 page
    await market_sweep.sync_source(rt.db, rt.settings, source_id)
    return redirect(str(request.url_for("console_admin_sources")) + f"?synced={source_id}")


@router.post("/market-sources/{source_id}/delete", name="console_admin_source_delete")
async def delete_source(source_id: uuid.UUID, request: Request, session: WriteSession, actor: SourceManager,
                        rt: RuntimeDep) -> Response:
    """``DELETE /admin/sources/{id}``: its mirrored listings go with it."""
    try:
        await market.delete(session, actor=actor, source_id=source_id)
    except MercatoError as error:
        await discard(session)
        async with rt.db.read_session() as reader:
            context = await _sources_context(reader)
        return await refused(request, error, "console/admin/market_sources.html", context)
    return redirect(str(request.url_for("console_admin_sources")))


# --- roles ----------------------------------------------------------------------------------------

CONDITIONS = [c.value for c in Condition]


async def _roles_context(session: AsyncSession, actor: Principal) -> dict[str, Any]:
    roles = [(role, {g.permission: g.condition for g in grants}) for role, grants in await access.list_roles(session)]
    return {"roles": roles, "permissions": [p.value for p in Permission], "conditions": CONDITIONS,
            "can_update": actor.has(Permission.role_update), "values": {}, "console": "admin", "section": "roles"}


@router.get("/roles", name="console_admin_roles")
async def roles_page(request: Request, session: ReadSession, actor: RoleReader) -> Response:
    return await render(request, "console/admin/roles.html", await _roles_context(session, actor))


@router.post("/roles", name="console_admin_role_put")
async def put_role(request: Request, session: WriteSession, actor: RoleUpdater) -> Response:
    """``PUT /admin/roles/{name}`` (super admins): create a role or replace its permissions. The
    form has one condition select per permission (empty: not granted); access.service.edit_role
    validates, changes and audits, as for the API."""
    form = await request.form()
    name = str(form.get("name", "")).strip()[:64]
    description = str(form.get("description", "")).strip()
    grants = {p.value: str(form.get(f"perm:{p.value}", "")) for p in Permission}
    grants = {permission: condition for permission, condition in grants.items() if condition}
    try:
        try:
            body = RolePut.model_validate({"description": description or None, "permissions": grants})
        except ValidationError as exc:
            raise _problem(exc) from None
        await access.edit_role(session, actor=actor, name=name, description=body.description,
                                grants=body.permissions)
    except MercatoError as error:
        await discard(session)
        async with get_runtime(request).db.read_session() as reader:
            context = await _roles_context(reader, actor)
        if error.errors:
            error.errors = [{**e, "loc": ["form", "name" if "name" in map(str, e.get("loc") or []) else "permissions"]}
                            for e in error.errors]
        return await refused(request, error, "console/admin/roles.html",
                             {**context, "failed": name, "values": {"name": name, "description": description,
                                                                    "grants": grants}})
    return redirect(str(request.url_for("console_admin_roles")) + f"#role-{name}")

