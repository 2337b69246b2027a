"""Every query on coupons and their redemptions. "Visible to" scoping lives here: an
``own`` grant sees the coupons of the publishers the caller is a member of (publisher and
listing coupons carry their publisher); ``any`` sees every coupon."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Condition
from mercato.kit.db import insert_unless_conflict, refresh_if_held
from mercato.kit.pagination import after_key, count_matching
from mercato.models import Coupon, CouponRedemption


def _visible(condition: Condition | None, publisher_ids: list[uuid.UUID]) -> Select[tuple[Coupon]]:
    statement = select(Coupon)
    if condition is Condition.any:
        return statement
    if condition is Condition.own and publisher_ids:
        return statement.where(Coupon.publisher_id.in_(publisher_ids))
    return statement.where(Coupon.id.is_(None))  # nothing


async def visible(session: AsyncSession, coupon_id: uuid.UUID, *, condition: Condition | None,
                  publisher_ids: list[uuid.UUID]) -> Coupon | None:
    return await session.scalar(_visible(condition, publisher_ids).where(Coupon.id == coupon_id))


async def search(session: AsyncSession, *, condition: Condition | None, publisher_ids: list[uuid.UUID],
                 publisher_id: uuid.UUID | None, active: bool | None, after: tuple[datetime, uuid.UUID] | None,
                 limit: int, with_total: bool) -> tuple[list[Coupon], int | None]:
    statement = _visible(condition, publisher_ids)
    if publisher_id is not None:
        statement = statement.where(Coupon.publisher_id == publisher_id)
    if active is not None:
        statement = statement.where(Coupon.active.is_(active))
    total = await count_matching(session, statement) if with_total else None
    return list(await session.scalars(after_key(statement, Coupon.created_at, Coupon.id, after, limit))), total


async def by_code(session: AsyncSession, code: str) -> Coupon | None:
    return await session.scalar(select(Coupon).where(Coupon.code == code))


async def by_id(session: AsyncSession, coupon_id: uuid.UUID) -> Coupon | None:
    return await session.scalar(select(Coupon).where(Coupon.id == coupon_id))


async def add(session: AsyncSession, coupon: Coupon) -> bool:
    """False when the code is taken (the unique index decides, also under a race)."""
    return await insert_unless_conflict(session, coupon)


async def change(session: AsyncSession, coupon_id: uuid.UUID, *, values: dict[str, Any], unredeemed: bool,
                 max_at_least_redemptions: int | None) -> bool | None:
    """Guarded update: only while the coupon is unredeemed (``unredeemed``) and its
    redemptions do not exceed a new limit. True when changed, False when a guard refused,
    None when the new code is taken."""
    statement = update(Coupon).where(Coupon.id == coupon_id)
    if unredeemed:
        statement = statement.where(Coupon.redemptions == 0)
    if max_at_least_redemptions is not None:
        statement = statement.where(Coupon.redemptions <= max_at_least_redemptions)
    try:
        async with session.begin_nested():
            changed = await session.scalar(statement.values(**values).returning(Coupon.id)
                                           .execution_options(synchronize_session=False))
    except IntegrityError:
        return None
    if changed is None:
        return False
    await refresh_if_held(session, Coupon, coupon_id)
    return True


async def redemptions_of(session: AsyncSession, coupon_id: uuid.UUID, user_id: uuid.UUID, *,
                         except_order: uuid.UUID | None = None) -> int:
    statement = select(func.count()).select_from(CouponRedemption).where(
        CouponRedemption.coupon_id == coupon_id, CouponRedemption.user_id == user_id)
    if except_order is not None:
        statement = statement.where(CouponRedemption.order_id != except_order)
    return int(await session.scalar(statement) or 0)


async def redemption_of_order(session: AsyncSession, order_id: uuid.UUID) -> CouponRedemption | None:
    return await session.scalar(select(CouponRedemption).where(CouponRedemption.order_id == order_id))


async def take_one(session: AsyncSession, coupon_id: uuid.UUID) -> int | None:
    """Count one redemption, guarded by the total limit and the coupon being active: the
    redemptions after it, or None when the coupon is used up or inactive (nothing changed).
    On PostgreSQL the row lock it takes serializes concurrent redemptions of this coupon
    until commit; on SQLite the single writer does."""
    taken = await session.scalar(
        update(Coupon)
        .where(Coupon.id == coupon_id, Coupon.active.is_(True),
               or_(Coupon.max_redemptions.is_(None), Coupon.redemptions < Coupon.max_redemptions))
        .values(redemptions=Coupon.redemptions + 1)
        .returning(Coupon.redemptions)
        .execution_options(synchronize_session=False))
    if taken is not None:
        await refresh_if_held(session, Coupon, coupon_id)
    return None if taken is None else int(taken)


async def add_redemption(session: AsyncSession, redemption: CouponRedemption) -> bool:
    """False when this order redeemed a coupon already (unique order_id)."""
    return await insert_unless_conflict(session, redemption)


async def give_back(session: AsyncSession, order_id: uuid.UUID) -> uuid.UUID | None:
    """Delete the order's redemption and un-count it; the coupon's id, or None when the
    order had none (or it was given back before)."""
    coupon_id = await session.scalar(delete(CouponRedemption).where(CouponRedemption.order_id == order_id)
                                     .returning(CouponRedemption.coupon_id)
                                     .execution_options(synchronize_session=False))
    if coupon_id is None:
        return None
    await session.execute(update(Coupon).where(Coupon.id == coupon_id, Coupon.redemptions > 0)
                          .values(redemptions=Coupon.redemptions - 1)
                          .execution_options(synchronize_session=False))
    await refresh_if_held(session, Coupon, coupon_id)
    return coupon_id  # type: ignore[no-any-return]
