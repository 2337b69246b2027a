"""Coupons (M8): publishers' members manage their publishers' coupons, admins every coupon."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from mercato.access.dependencies import idempotent, requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.catalog.errors import ListingNotFound
from mercato.coupons import service
from mercato.coupons.errors import (
    CouponAlreadyRedeemed,
    CouponCodeTaken,
    CouponLimitBelowRedemptions,
    CouponNotFound,
    CouponScopeForbidden,
)
from mercato.coupons.schemas import CouponCreate, CouponRead, CouponUpdate
from mercato.kit.pagination import (
    CursorParam,
    Limit,
    Total,
    decode_cursor,
    keyset_page,
)
from mercato.kit.schemas import Page, Slug
from mercato.platform.routing import (
    ReadSession,
    RuntimeDep,
    TransactionalRoute,
    WriteSession,
)
from mercato.publishers.errors import PublisherNotFound

router = APIRouter(route_class=TransactionalRoute, tags=["money"])

CouponManager = Annotated[Principal, requires(Permission.coupon_manage)]


@router.get("/coupons", response_model=Page[CouponRead], responses=PublisherNotFound.responses())
async def list_coupons(actor: CouponManager, session: ReadSession,
                       publisher: Annotated[Slug | None, Query(description="Only this publisher's coupons.")] = None,
                       active: Annotated[bool | None, Query(description="Only active (true) or inactive (false).")]
                       = None, cursor: CursorParam = None, limit: Limit = 20, total: Total = False
                       ) -> Page[CouponRead]:
    """Your publishers' coupons (admins: every coupon), newest first."""
    rows, count = await service.search(session, actor=actor, publisher=publisher, active=active,
                                       after=decode_cursor(cursor), limit=limit + 1, with_total=total)
    page, next_cursor = keyset_page(rows, limit)
    return Page[CouponRead](items=[CouponRead.from_model(c) for c in page], total=count, next_cursor=next_cursor)


@router.post("/coupons", status_code=201, response_model=CouponRead,
             responses=CouponCodeTaken.responses(CouponScopeForbidden, PublisherNotFound, ListingNotFound))
async def create_coupon(body: CouponCreate, actor: CouponManager,
                        _key: Annotated[str | None, idempotent(required=False)], session: WriteSession,
                        rt: RuntimeDep) -> CouponRead:
    """Create a coupon, audited. Scope `store`: admins only; `publisher`: members of that
    publisher and admins; `listing`: members of the listing's publisher and admins. Fixed
    amounts are in the store currency. A code in use answers 409 `coupon_code_taken`."""
    coupon = await service.create(session, actor=actor, code=body.code, kind=body.kind, value=body.value,
                                  scope=body.scope, publisher=body.publisher, listing_id=body.listing_id,
                                  starts_at=body.starts_at, ends_at=body.ends_at,
                                  max_redemptions=body.max_redemptions, per_user_limit=body.per_user_limit,
                                  active=body.active, currency=rt.settings.currency)
    return CouponRead.from_model(coupon)


@router.patch("/coupons/{coupon_id}", response_model=CouponRead,
              responses=CouponNotFound.responses(CouponAlreadyRedeemed, CouponLimitBelowRedemptions, CouponCodeTaken))
async def update_coupon(coupon_id: uuid.UUID, body: CouponUpdate, actor: CouponManager,
                        session: WriteSession) -> CouponRead:
    """Change active, ends_at, max_redemptions (not below the redemptions so far: 409
    `coupon_limit_below_redemptions`) or per_user_limit, audited. code, kind and value change
    only while the coupon was never redeemed (else 409 `coupon_redeemed`)."""
    changes = body.model_dump(include=body.model_fields_set)
    return CouponRead.from_model(await service.update(session, actor=actor, coupon_id=coupon_id, changes=changes))
