"""Coupons (M8): who may create which, and what a code takes off an order.

The orders module calls :func:`quote` while pricing an order, :func:`redeem` in the
transaction that creates it, and :func:`release` when the order ends without being paid
(expired, or canceled before payment): such a redemption is given back, so a buyer whose
order lapsed can use the code again and a limited coupon is not used up by orders that
never took money. A paid order keeps its redemption, also when it is refunded later.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Condition, Permission
from mercato.access.principal import Principal
from mercato.audit.actions import AuditAction
from mercato.audit.service import record as audit
from mercato.catalog import service as catalog
from mercato.coupons import repository
from mercato.coupons.errors import (
    CouponAlreadyRedeemed,
    CouponCodeTaken,
    CouponExhausted,
    CouponInvalid,
    CouponLimitBelowRedemptions,
    CouponLimitReached,
    CouponNotApplicable,
    CouponNotFound,
    CouponScopeForbidden,
)
from mercato.kit.clock import utcnow
from mercato.kit.errors import ValidationFailed, found_or_raise
from mercato.models import Coupon, CouponRedemption
from mercato.publishers import service as publishers


@dataclass
class QuoteLine:
    listing_id: uuid.UUID
    publisher_id: uuid.UUID
    total: int  # the line's total before the coupon, minor units


@dataclass
class CouponQuote:
    coupon_id: uuid.UUID
    code: str
    line_discounts: list[int]  # one per line given, in order; 0 for lines out of scope


def normalize(code: str) -> str:
    return code.strip().upper()


def _audited(coupon: Coupon) -> dict[str, Any]:
    return {name: getattr(coupon, name) for name in (
        "code", "kind", "value", "currency", "scope", "publisher_id", "listing_id", "starts_at", "ends_at",
        "max_redemptions", "per_user_limit", "active")}


# --- who sees and manages what ------------------------------------------------------------------

async def _scope(session: AsyncSession, actor: Principal) -> tuple[Condition | None, list[uuid.UUID]]:
    condition = actor.condition_for(Permission.coupon_manage)
    member_of = (await publishers.publisher_ids_for(session, actor, Permission.coupon_manage)
                 if condition is Condition.own else [])
    return condition, member_of


async def get_visible(session: AsyncSession, actor: Principal, coupon_id: uuid.UUID) -> Coupon:
    condition, member_of = await _scope(session, actor)
    return found_or_raise(await repository.visible(session, coupon_id, condition=condition, publisher_ids=member_of),
                          CouponNotFound, f"There is no coupon {coupon_id}.")


async def search(session: AsyncSession, *, actor: Principal, publisher: str | None, active: bool | None,
                 after: tuple[datetime, uuid.UUID] | None, limit: int,
                 with_total: bool) -> tuple[list[Coupon], int | None]:
    """Publishers' members see their publishers' coupons, admins every coupon, newest first."""
    condition, member_of = await _scope(session, actor)
    publisher_id = (await publishers.get(session, publisher)).id if publisher else None
    return await repository.search(session, condition=condition, publisher_ids=member_of, publisher_id=publisher_id,
                                   active=active, after=after, limit=limit, with_total=with_total)


async def create(session: AsyncSession, *, actor: Principal, code: str, kind: str, value: int, scope: str,
                 publisher: str | None, listing_id: uuid.UUID | None, starts_at: datetime | None,
                 ends_at: datetime | None, max_redemptions: int | None, per_user_limit: int | None, active: bool,
                 currency: str) -> Coupon:
    condition = actor.condition_for(Permission.coupon_manage)
    publisher_id: uuid.UUID | None = None
    if scope == "store":
        if condition is not Condition.any:
            raise CouponScopeForbidden("Only admins may create store-wide coupons.")
    elif scope == "publisher":
        assert publisher is not None  # the schema requires it
        found = await publishers.get(session, publisher)
        if not await publishers.acts_for(session, actor, Permission.coupon_manage, found):
            raise CouponScopeForbidden(f"Only members of {found.slug!r} or admins may create its coupons.")
        publisher_id = found.id
    else:
        assert listing_id is not None  # the schema requires it
        # 404 for a listing the actor may not see, 403 for another publisher's listing.
        listing = await catalog.get_for_change(session, actor, str(listing_id), Permission.coupon_manage)
        publisher_id = listing.publisher_id
    coupon = Coupon(id=uuid.uuid4(), code=normalize(code), kind=kind, value=value, currency=currency, scope=scope,
                    publisher_id=publisher_id, listing_id=listing_id if scope == "listing" else None,
                    starts_at=starts_at, ends_at=ends_at, max_redemptions=max_redemptions,
                    per_user_limit=per_user_limit, redemptions=0, active=active, created_by=actor.user_id)
    if not await repository.add(session, coupon):
        raise CouponCodeTaken(f"The code {coupon.code!r} is in use; choose another.")
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.coupon_create,
                resource_type="coupon", resource_id=coupon.id, after=_audited(coupon))
    return coupon


async def update(session: AsyncSession, *, actor: Principal, coupon_id: uuid.UUID,
                 changes: dict[str, Any]) -> Coupon:
    """Change what PATCH allows; code, kind and value only while never redeemed (orders hold them)."""
    coupon = await get_visible(session, actor, coupon_id)
    if "code" in changes:
        changes["code"] = normalize(changes["code"])
    kind, value = changes.get("kind", coupon.kind), changes.get("value", coupon.value)
    if kind == "percent" and value > 100:
        raise ValidationFailed("A percent coupon's value is 1..100.", errors=[
            {"loc": ["body", "value"], "msg": "a percent coupon's value is 1..100", "type": "value_error"}])
    ends_at = changes.get("ends_at")
    if ends_at is not None and coupon.starts_at is not None and ends_at <= coupon.starts_at:
        raise ValidationFailed("ends_at must be after starts_at.", errors=[
            {"loc": ["body", "ends_at"], "msg": "must be after starts_at", "type": "value_error"}])
    changes = {name: new for name, new in changes.items() if getattr(coupon, name) != new}
    if not changes:
        return coupon
    before = _audited(coupon)
    identity = any(name in changes for name in ("code", "kind", "value"))
    limit = changes.get("max_redemptions")
    changed = await repository.change(session, coupon.id, values=changes, unredeemed=identity,
                                      max_at_least_redemptions=limit)
    if changed is None:
        raise CouponCodeTaken(f"The code {changes['code']!r} is in use; choose another.")
    if not changed:
        current = await repository.by_id(session, coupon.id)
        assert current is not None
        await session.refresh(current)
        if identity and current.redemptions > 0:
            raise CouponAlreadyRedeemed(f"The coupon was redeemed {current.redemptions} times: its code, kind and "
                                        "value stay as they are (create a new coupon instead).")
        raise CouponLimitBelowRedemptions(f"The coupon was redeemed {current.redemptions} times already: "
                                          f"max_redemptions cannot be {limit}.")
    await audit(session, actor_id=actor.user_id, actor_email=actor.email, action=AuditAction.coupon_update,
                resource_type="coupon", resource_id=coupon.id, before=before, after=_audited(coupon))
    return coupon


# --- what the orders module calls ---------------------------------------------------------------

def _usable(coupon: Coupon | None, code: str, now: datetime) -> Coupon:
    if coupon is None:
        raise CouponInvalid(f"There is no coupon {code!r}.")
    if not coupon.active:
        raise CouponInvalid(f"The coupon {coupon.code!r} is not active.")
    if coupon.starts_at is not None and coupon.starts_at > now:
        raise CouponInvalid(f"The coupon {coupon.code!r} is valid from {coupon.starts_at:%Y-%m-%d %H:%M} UTC.")
    if coupon.ends_at is not None and coupon.ends_at <= now:
        raise CouponInvalid(f"The coupon {coupon.code!r} ended on {coupon.ends_at:%Y-%m-%d %H:%M} UTC.")
    return coupon


def _in_scope(coupon: Coupon, line: QuoteLine) -> bool:
    if coupon.scope == "listing":
        return line.listing_id == coupon.listing_id
    if coupon.scope == "publisher":
        return line.publisher_id == coupon.publisher_id
    return True


def discounts(coupon: Coupon, lines: list[QuoteLine]) -> list[int]:
    """Per-line integer discounts, never more than a line's total. Percent: ⌊total·p/100⌋
    per eligible line. Fixed: the amount (at most the eligible lines' sum) is spread over
    the eligible lines in proportion to their totals, rounding down; the remainder goes on
    the last eligible line, and what does not fit there on the lines before it."""
    eligible = [i for i, line in enumerate(lines) if _in_scope(coupon, line) and line.total > 0]
    out = [0] * len(lines)
    if coupon.kind == "percent":
        for i in eligible:
            out[i] = lines[i].total * coupon.value // 100
        return out
    base = sum(lines[i].total for i in eligible)
    amount = min(coupon.value, base)
    if amount == 0:
        return out
    for i in eligible:
        out[i] = amount * lines[i].total // base
    remainder = amount - sum(out)
    for i in reversed(eligible):
        if remainder == 0:
            break
        extra = min(remainder, lines[i].total - out[i])
        out[i] += extra
        remainder -= extra
    return out


async def quote(session: AsyncSession, *, code: str, user_id: uuid.UUID, lines: list[QuoteLine]) -> CouponQuote:
    """Validate ``code`` for this buyer and these lines and price it (changes nothing).
    422 ``coupon_invalid`` (unknown, inactive, not started, ended), 422
    ``coupon_not_applicable`` (no line in scope), 409 ``coupon_exhausted`` (total limit
    reached), 409 ``coupon_limit_reached`` (this buyer's limit reached)."""
    normalized = normalize(code)
    coupon = _usable(await repository.by_code(session, normalized), normalized, utcnow())
    if not any(_in_scope(coupon, line) and line.total > 0 for line in lines):
        what = {"listing": "one listing", "publisher": "one publisher's listings"}.get(coupon.scope, "paid items")
        raise CouponNotApplicable(f"The coupon {coupon.code!r} applies to {what}, and nothing in this order is "
                                  "one of them.")
    if coupon.max_redemptions is not None and coupon.redemptions >= coupon.max_redemptions:
        raise CouponExhausted(f"The coupon {coupon.code!r} has been used {coupon.redemptions} times, its limit.")
    if coupon.per_user_limit is not None and \
            await repository.redemptions_of(session, coupon.id, user_id) >= coupon.per_user_limit:
        raise CouponLimitReached(f"You have used the coupon {coupon.code!r} {coupon.per_user_limit} times, "
                                 "as often as it allows.")
    return CouponQuote(coupon_id=coupon.id, code=coupon.code, line_discounts=discounts(coupon, lines))


async def redeem(session: AsyncSession, *, coupon_id: uuid.UUID, user_id: uuid.UUID, order_id: uuid.UUID) -> None:
    """Count one use of the coupon by this order (once per order: a repeat is a no-op).
    Raises 409 ``coupon_exhausted`` (total limit reached; under concurrency exactly
    max_redemptions succeed), 409 ``coupon_limit_reached`` (this buyer's limit), or 422
    ``coupon_invalid`` (gone or deactivated meanwhile); nothing changes then."""
    if await repository.redemption_of_order(session, order_id) is not None:
        return
    try:
        async with session.begin_nested():  # a refusal below undoes the count
            await _redeem(session, coupon_id=coupon_id, user_id=user_id, order_id=order_id)
    except _AlreadyRedeemed:
        return


async def _redeem(session: AsyncSession, *, coupon_id: uuid.UUID, user_id: uuid.UUID, order_id: uuid.UUID) -> None:
    if await repository.take_one(session, coupon_id) is None:
        coupon = await repository.by_id(session, coupon_id)
        if coupon is None or not coupon.active:
            raise CouponInvalid("The coupon is no longer active.")
        raise CouponExhausted(f"The coupon {coupon.code!r} has been used up.")
    coupon = await repository.by_id(session, coupon_id)
    assert coupon is not None
    # After take_one the coupon's row is ours until commit, so a concurrent redemption by
    # the same buyer counts after ours is committed (or rolled back).
    if coupon.per_user_limit is not None and await repository.redemptions_of(
            session, coupon_id, user_id, except_order=order_id) >= coupon.per_user_limit:
        raise CouponLimitReached(f"You have used the coupon {coupon.code!r} {coupon.per_user_limit} times, "
                                 "as often as it allows.")
    if not await repository.add_redemption(session, CouponRedemption(
            id=uuid.uuid4(), coupon_id=coupon_id, user_id=user_id, order_id=order_id, created_at=utcnow())):
        raise _AlreadyRedeemed


class _AlreadyRedeemed(Exception):
    """A concurrent call redeemed for this order first."""


async def release(session: AsyncSession, *, order_id: uuid.UUID) -> None:
    """Give back the redemption of an order that ended before payment (expired, or
    canceled unpaid): the coupon counts one use fewer and the buyer may use it again.
    Idempotent; nothing happens for an order without a coupon."""
    await repository.give_back(session, order_id)
