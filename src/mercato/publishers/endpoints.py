"""Publishers and applications to become one."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.dependencies import OptionalPrincipal, idempotent, public, requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.accounts.errors import UserNotFound
from mercato.kit.errors import Forbidden
from mercato.kit.pagination import CursorParam, Limit, Total, decode_cursor, keyset_page, page_of
from mercato.kit.schemas import Page, Slug
from mercato.models import Publisher
from mercato.platform.routing import ReadSession, TransactionalRoute, WriteSession
from mercato.publishers import service
from mercato.publishers.errors import (
    ApplicationDecided,
    ApplicationNotFound,
    ApplicationPending,
    LastOwner,
    MemberNotFound,
    PublisherNotFound,
    SlugTaken,
)
from mercato.publishers.schemas import (
    ApplicationCreate,
    ApplicationRead,
    ApplicationReject,
    MemberAdd,
    MemberRead,
    PublisherCreate,
    PublisherRead,
    PublisherUpdate,
)

router = APIRouter(route_class=TransactionalRoute, tags=["publishers"])


async def publisher_read(session: AsyncSession, publisher: Publisher, viewer: Principal | None) -> PublisherRead:
    out = PublisherRead.model_validate(publisher)
    if viewer is not None and (viewer.has_any(Permission.publisher_read)
                               or await service.member_role(session, publisher.id, viewer.user_id)):
        out.members = [MemberRead(user_id=uuid.UUID(uid), email=email, role=role)  # type: ignore[arg-type]
                       for uid, email, role in await service.members(session, publisher)]
    return out


@router.post("/publisher-applications", status_code=201, response_model=ApplicationRead,
             responses=ApplicationPending.responses(SlugTaken))
async def apply(body: ApplicationCreate, actor: Annotated[Principal, requires(Permission.publisher_application_create)],
                _key: Annotated[str | None, idempotent(required=False)], session: WriteSession) -> ApplicationRead:
    """Apply to become a publisher. An admin approves (the publisher is created with you as
    owner) or rejects with a reason. Accepts an `Idempotency-Key`."""
    application = await service.apply(session, actor=actor, slug=body.slug, name=body.name,
                                      description=body.description,
                                      website=str(body.website) if body.website else None)
    return ApplicationRead.model_validate(application)


@router.get("/me/publisher-applications", response_model=Page[ApplicationRead])
async def my_applications(actor: Annotated[Principal, requires(Permission.publisher_application_create)],
                          session: ReadSession, cursor: CursorParam = None, limit: Limit = 20) -> Page[ApplicationRead]:
    """Your publisher applications, newest first."""
    page, next_cursor = page_of(await service.applications_of(session, actor.user_id),
                                key=lambda a: (a.created_at.isoformat(), str(a.id)), cursor=cursor, limit=limit,
                                descending=True)
    return Page(items=[ApplicationRead.model_validate(a) for a in page], next_cursor=next_cursor)


@router.get("/admin/publisher-applications", response_model=Page[ApplicationRead])
async def list_applications(actor: Annotated[Principal, requires(Permission.publisher_application_review)],
                            session: ReadSession, status: Literal["pending", "approved", "rejected"] | None = None,
                            cursor: CursorParam = None, limit: Limit = 20,
                            total: Total = False) -> Page[ApplicationRead]:
    rows = await service.search_applications(session, status=status, after=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit)
    counted = await service.count_applications(session, status=status) if total else None
    return Page[ApplicationRead](items=[ApplicationRead.model_validate(a) for a in page], next_cursor=next_cursor,
                                 total=counted)


@router.post("/admin/publisher-applications/{application_id}/approve", response_model=ApplicationRead,
             responses=ApplicationNotFound.responses(ApplicationDecided, SlugTaken))
async def approve_application(application_id: uuid.UUID, session: WriteSession, actor: Annotated[
        Principal, requires(Permission.publisher_application_review)]) -> ApplicationRead:
    return ApplicationRead.model_validate(await service.approve(session, actor=actor, application_id=application_id))


@router.post("/admin/publisher-applications/{application_id}/reject", response_model=ApplicationRead,
             responses=ApplicationNotFound.responses(ApplicationDecided))
async def reject_application(application_id: uuid.UUID, body: ApplicationReject, session: WriteSession,
                             actor: Annotated[Principal, requires(Permission.publisher_application_review)]
                             ) -> ApplicationRead:
    return ApplicationRead.model_validate(
        await service.reject(session, actor=actor, application_id=application_id, reason=body.reason))


@router.post("/publishers", status_code=201, response_model=PublisherRead,
             responses=SlugTaken.responses(UserNotFound))
async def create_publisher(body: PublisherCreate, session: WriteSession,
                           actor: Annotated[Principal, requires(Permission.publisher_create)]) -> PublisherRead:
    """Admins create a publisher for an existing account, which becomes its owner."""
    publisher = await service.create(session, actor=actor, slug=body.slug, name=body.name,
                                     description=body.description,
                                     website=str(body.website) if body.website else None,
                                     owner_email=str(body.owner_email))
    return await publisher_read(session, publisher, actor)


@router.get("/publishers/{slug}", response_model=PublisherRead, dependencies=[public()],
            responses=PublisherNotFound.responses())
async def get_publisher(slug: Slug, session: ReadSession,
                        viewer: OptionalPrincipal) -> PublisherRead:
    """A publisher's public profile; members and admins also see the member list."""
    return await publisher_read(session, await service.get(session, slug), viewer)


@router.patch("/publishers/{slug}", response_model=PublisherRead,
              responses=PublisherNotFound.responses(Forbidden))
async def update_publisher(slug: Slug, body: PublisherUpdate, session: WriteSession,
                           actor: Annotated[Principal, requires(Permission.publisher_update)]) -> PublisherRead:
    """Owners edit the profile; only admins set `verified`."""
    changes = body.model_dump(exclude_unset=True)
    if "website" in changes and changes["website"] is not None:
        changes["website"] = str(changes["website"])
    for field in ("name", "description", "verified"):
        if field in changes and changes[field] is None:
            changes.pop(field)
    publisher = await service.update(session, actor=actor, slug=slug, changes=changes)
    return await publisher_read(session, publisher, actor)


@router.post("/publishers/{slug}/members", response_model=PublisherRead,
             responses=PublisherNotFound.responses(UserNotFound, LastOwner, Forbidden))
async def add_member(slug: Slug, body: MemberAdd, session: WriteSession,
                     actor: Annotated[Principal, requires(Permission.publisher_member_manage)]) -> PublisherRead:
    """Add a member (or change a member's role) by email. Owners of the publisher or admins."""
    publisher = await service.add_member(session, actor=actor, slug=slug, email=str(body.email), role=body.role)
    return await publisher_read(session, publisher, actor)


@router.delete("/publishers/{slug}/members", status_code=204,
               responses=PublisherNotFound.responses(MemberNotFound, LastOwner, Forbidden))
async def remove_member(slug: Slug, session: WriteSession,
                        actor: Annotated[Principal, requires(Permission.publisher_member_manage)],
                        email: Annotated[str, Query(min_length=3, max_length=320)]) -> Response:
    await service.remove_member(session, actor=actor, slug=slug, email=email)
    return Response(status_code=204)
