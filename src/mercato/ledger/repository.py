"""Every query on the ledger. Balances move only through :func:`move_balance`, a guarded
``UPDATE`` that refuses to take an account that may not go negative below zero."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.db import insert_unless_conflict
from mercato.kit.pagination import after_key
from mercato.ledger.accounts import MAY_GO_NEGATIVE, AccountRef
from mercato.models import LedgerAccount, LedgerEntry, LedgerTransaction


async def account(session: AsyncSession, ref: AccountRef) -> LedgerAccount | None:
    return await session.scalar(select(LedgerAccount).where(LedgerAccount.key == ref.key))


async def account_id(session: AsyncSession, ref: AccountRef, *, currency: str) -> uuid.UUID:
    """The account's id, opening it on first use (a concurrent opener may win: then theirs)."""
    found = await session.scalar(select(LedgerAccount.id).where(LedgerAccount.key == ref.key))
    if found is not None:
        return found
    opened = LedgerAccount(id=uuid.uuid4(), key=ref.key, kind=ref.kind.value, owner_id=ref.owner_id,
                           currency=currency, balance=0, may_go_negative=ref.kind in MAY_GO_NEGATIVE)
    if await insert_unless_conflict(session, opened):
        return opened.id
    found = await session.scalar(select(LedgerAccount.id).where(LedgerAccount.key == ref.key))
    assert found is not None
    return found


async def move_balance(session: AsyncSession, account_id: uuid.UUID, amount: int) -> int | None:
    """Add ``amount`` to the balance; the new balance, or None when that would take an
    account that may not go negative below zero (nothing changed then)."""
    new_balance = await session.scalar(
        update(LedgerAccount)
        .where(LedgerAccount.id == account_id,
               or_(LedgerAccount.may_go_negative, LedgerAccount.balance + amount >= 0))
        .values(balance=LedgerAccount.balance + amount)
        .returning(LedgerAccount.balance)
        .execution_options(synchronize_session=False))
    return None if new_balance is None else int(new_balance)


async def transaction_by_reference(session: AsyncSession, reference: str) -> LedgerTransaction | None:
    return await session.scalar(select(LedgerTransaction).where(LedgerTransaction.reference == reference))


async def insert_transaction(session: AsyncSession, row: LedgerTransaction) -> bool:
    """False when a transaction with this reference exists already (posted before)."""
    return await insert_unless_conflict(session, row)


def add_entry(session: AsyncSession, entry: LedgerEntry) -> None:
    session.add(entry)


async def entries_of(session: AsyncSession, account_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None,
                     limit: int) -> list[tuple[LedgerEntry, LedgerTransaction]]:
    """An account's entries with their transactions, newest first (cursor: created_at, id)."""
    statement = (select(LedgerEntry, LedgerTransaction)
                 .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
                 .where(LedgerEntry.account_id == account_id))
    rows = await session.execute(after_key(statement, LedgerEntry.created_at, LedgerEntry.id, after, limit))
    return [(entry, transaction) for entry, transaction in rows]


async def entries_of_transaction(session: AsyncSession, transaction_id: uuid.UUID) -> list[LedgerEntry]:
    return list(await session.scalars(select(LedgerEntry).where(LedgerEntry.transaction_id == transaction_id)))


async def sum_of_account(session: AsyncSession, account_id: uuid.UUID) -> int:
    return int(await session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                                    .where(LedgerEntry.account_id == account_id)) or 0)


async def sums_by_kind(session: AsyncSession, account_id: uuid.UUID) -> dict[str, int]:
    """The sum of an account's entries per kind of transaction (``settlement``, ``refund``, …)."""
    rows = await session.execute(select(LedgerTransaction.kind, func.sum(LedgerEntry.amount))
                                 .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
                                 .where(LedgerEntry.account_id == account_id)
                                 .group_by(LedgerTransaction.kind))
    return {kind: int(total or 0) for kind, total in rows}
