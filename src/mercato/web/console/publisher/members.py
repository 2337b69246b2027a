"""The publisher console's members (U2): owners (and admins) add a member, change a role or remove
someone (``publisher:member_manage``), through the publishers service."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Form, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.errors import MercatoError
from mercato.platform.routing import ReadSession, RuntimeDep, WriteSession
from mercato.publishers import service as publishers
from mercato.publishers.schemas import MemberAdd
from mercato.web.console.access import console_actor, discard, refused
from mercato.web.console.publisher.common import PREFIX, form_invalid, publisher_for
from mercato.web.pages import page_router, redirect, render

router = page_router(prefix=PREFIX)

MemberManager = Annotated[Principal, console_actor(Permission.publisher_member_manage)]


async def _members_context(session: AsyncSession, actor: Principal, slug: str) -> dict[str, Any]:
    publisher = await publisher_for(session, actor, slug, Permission.publisher_member_manage)
    return {"publisher": publisher, "members": await publishers.members(session, publisher), "values": {},
            "console": "publisher", "section": "members"}


@router.get("/members", name="console_publisher_members")
async def members_page(slug: str, request: Request, session: ReadSession, actor: MemberManager) -> Response:
    return await render(request, "console/publisher/members.html", await _members_context(session, actor, slug))


@router.post("/members", name="console_publisher_members_change")
async def change_members(slug: str, request: Request, session: WriteSession, actor: MemberManager, rt: RuntimeDep,
                         email: Annotated[str, Form(max_length=320)] = "",
                         role: Annotated[Literal["owner", "member", "remove"], Form()] = "member") -> Response:
    """Owners (and admins) add a member, change a role or remove someone (the API's member routes)."""
    try:
        if role == "remove":
            await publishers.remove_member(session, actor=actor, slug=slug, email=email.strip())
        else:
            try:
                body = MemberAdd.model_validate({"email": email.strip(), "role": role})
            except ValidationError as exc:
                raise form_invalid(exc) from None
            await publishers.add_member(session, actor=actor, slug=slug, email=str(body.email), role=body.role)
    except MercatoError as error:
        await discard(session)
        async with rt.db.read_session() as reader:
            context = await _members_context(reader, actor, slug)
        return await refused(request, error, "console/publisher/members.html",
                             {**context, "values": {"email": email, "role": role}})
    return redirect(str(request.url_for("console_publisher_members", slug=slug)))
