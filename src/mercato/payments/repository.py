"""Every query on payments, and on the sandbox provider's own books.

State changes are guarded statements (``UPDATE … WHERE status IN (allowed) RETURNING``):
a duplicate or out-of-order report finds the row already moved and changes nothing
(ARCHITECTURE: never read-then-write).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.db import refresh_if_held
from mercato.kit.pagination import after_key
from mercato.models import Payment, SandboxPayment

# --- the store's payments ---------------------------------------------------------------------


def add(session: AsyncSession, payment: Payment) -> None:
    session.add(payment)


async def get(session: AsyncSession, payment_id: uuid.UUID) -> Payment | None:
    return await session.get(Payment, payment_id)


async def visible_to(session: AsyncSession, payment_id: uuid.UUID, *, user_id: uuid.UUID,
                     any_user: bool) -> Payment | None:
    """The payment if the caller may see it: their own, or any for admins."""
    statement = select(Payment).where(Payment.id == payment_id)
    if not any_user:
        statement = statement.where(Payment.user_id == user_id)
    return await session.scalar(statement)


async def of_user(session: AsyncSession, user_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None,
                  limit: int) -> Sequence[Payment]:
    statement = select(Payment).where(Payment.user_id == user_id)
    return (await session.scalars(after_key(statement, Payment.created_at, Payment.id, after, limit))).all()


async def by_provider_ref(session: AsyncSession, provider: str, provider_ref: str) -> Payment | None:
    return await session.scalar(select(Payment).where(Payment.provider == provider,
                                                      Payment.provider_ref == provider_ref))


async def move(session: AsyncSession, payment_id: uuid.UUID, *, allowed: Collection[str], to: str,
               **values: Any) -> Payment | None:
    """Move the payment to ``to`` only from one of ``allowed``; the moved row, or None when
    it was in another state (nothing changed)."""
    moved = await session.scalar(
        update(Payment).where(Payment.id == payment_id, Payment.status.in_(list(allowed)))
        .values(status=to, **values).returning(Payment.id).execution_options(synchronize_session=False))
    if moved is None:
        return None
    await refresh_if_held(session, Payment, payment_id)
    return await session.get(Payment, payment_id)


async def add_refund(session: AsyncSession, payment_id: uuid.UUID, *, amount: int, before: int,
                     refundable: Collection[str], now: datetime) -> Payment | None:
    """Count ``amount`` as refunded if nothing was refunded since the caller read ``before``
    (two concurrent refunds cannot both pass) and it fits in the payment."""
    total = Payment.refunded_amount + amount
    moved = await session.scalar(
        update(Payment)
        .where(Payment.id == payment_id, Payment.status.in_(list(refundable)), Payment.refunded_amount == before,
               total <= Payment.amount)
        .values(refunded_amount=total,
                status=case((total >= Payment.amount, "refunded"), else_="partially_refunded"), updated_at=now)
        .returning(Payment.id).execution_options(synchronize_session=False))
    if moved is None:
        return None
    await refresh_if_held(session, Payment, payment_id)
    return await session.get(Payment, payment_id)


async def due_for_poll(session: AsyncSession, *, now: datetime, limit: int) -> Sequence[Payment]:
    """Pending payments whose next question to the provider is due, or whose time ran out."""
    return (await session.scalars(
        select(Payment).where(Payment.status.in_(["created", "pending"]),
                              or_(Payment.next_poll_at <= now, Payment.expires_at <= now))
        .order_by(Payment.next_poll_at).limit(limit))).all()


async def schedule_poll(session: AsyncSession, payment_id: uuid.UUID, *, attempts_before: int,
                        next_poll_at: datetime, now: datetime) -> bool:
    """Book the next question; a no-op when another poller already did (attempts moved)."""
    moved = await session.scalar(
        update(Payment).where(Payment.id == payment_id, Payment.status.in_(["created", "pending"]),
                              Payment.poll_attempts == attempts_before)
        .values(poll_attempts=attempts_before + 1, next_poll_at=next_poll_at, updated_at=now)
        .returning(Payment.id).execution_options(synchronize_session=False))
    if moved is not None:
        await refresh_if_held(session, Payment, payment_id)
    return moved is not None


# --- the sandbox provider's books --------------------------------------------------------------

async def sandbox_open(session: AsyncSession, row: SandboxPayment) -> None:
    session.add(row)
    await session.flush()


async def sandbox_by_ref(session: AsyncSession, ref: str) -> SandboxPayment | None:
    return await session.scalar(select(SandboxPayment).where(SandboxPayment.ref == ref)
                                .execution_options(populate_existing=True))


async def sandbox_by_payment(session: AsyncSession, payment_id: uuid.UUID) -> SandboxPayment | None:
    return await session.scalar(select(SandboxPayment).where(SandboxPayment.merchant_payment_id == payment_id)
                                .execution_options(populate_existing=True))


async def sandbox_move(session: AsyncSession, ref: str, *, from_status: str, now: datetime, **values: Any) -> bool:
    moved = await session.scalar(
        update(SandboxPayment).where(SandboxPayment.ref == ref, SandboxPayment.status == from_status)
        .values(updated_at=now, **values).returning(SandboxPayment.ref).execution_options(synchronize_session=False))
    return moved is not None


async def sandbox_confirm_due(session: AsyncSession, ref: str, *, now: datetime) -> bool:
    """A delayed card's confirmation: processing → succeeded once its time has come."""
    moved = await session.scalar(
        update(SandboxPayment).where(SandboxPayment.ref == ref, SandboxPayment.status == "processing",
                                     SandboxPayment.confirm_at.is_not(None), SandboxPayment.confirm_at <= now)
        .values(status="succeeded", updated_at=now).returning(SandboxPayment.ref)
        .execution_options(synchronize_session=False))
    return moved is not None


async def sandbox_close_unpaid(session: AsyncSession, ref: str, *, to: str, now: datetime) -> bool:
    """Close a checkout that was not paid (open, or processing without a confirmation due):
    after this it can never succeed. False when it was paid or closed already."""
    moved = await session.scalar(
        update(SandboxPayment)
        .where(SandboxPayment.ref == ref,
               or_(SandboxPayment.status == "open",
                   and_(SandboxPayment.status == "processing",
                        or_(SandboxPayment.confirm_at.is_(None), SandboxPayment.confirm_at > now))))
        .values(status=to, reason="expired before it was paid", updated_at=now)
        .returning(SandboxPayment.ref).execution_options(synchronize_session=False))
    return moved is not None


async def sandbox_refund(session: AsyncSession, ref: str, amount: int, *, now: datetime) -> bool:
    total = SandboxPayment.refunded_amount + amount
    moved = await session.scalar(
        update(SandboxPayment)
        .where(SandboxPayment.ref == ref, SandboxPayment.status == "succeeded", total <= SandboxPayment.amount)
        .values(refunded_amount=total, updated_at=now).returning(SandboxPayment.ref)
        .execution_options(synchronize_session=False))
    return moved is not None


async def counts_since(session: AsyncSession, since: datetime) -> dict[str, int]:
    """Payments started since ``since``, by their status now (the admin health page)."""
    rows = await session.execute(select(Payment.status, func.count()).where(Payment.created_at >= since)
                                 .group_by(Payment.status))
    return {status: int(count) for status, count in rows}
