"""Posting to the double-entry ledger (DOMAIN.md "Ledger").

:func:`post` is the only way money moves. A posting is balanced (entries sum to zero),
atomic (a savepoint: a refused leg undoes the whole posting and leaves the caller's
transaction usable, so a saga handler can record the refusal instead) and idempotent by
its ``reference``: the same business fact posted twice is posted once, which is what lets
every money handler run again safely after a redelivery or a crash.

Balances are locked in one order (account id) so concurrent postings on PostgreSQL never
deadlock each other; on SQLite the single writer serializes them.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.kit.clock import utcnow
from mercato.kit.db import refresh_if_held
from mercato.ledger import repository
from mercato.ledger.accounts import AccountRef
from mercato.ledger.errors import InsufficientFunds, UnbalancedTransaction
from mercato.models import LedgerAccount, LedgerEntry, LedgerTransaction


@dataclass(frozen=True)
class Leg:
    account: AccountRef
    amount: int  # signed minor units: positive raises the account's balance


@dataclass(frozen=True)
class Posted:
    transaction: LedgerTransaction
    created: bool  # False: this reference was posted before, nothing moved now


class _AlreadyPosted(Exception):
    """A concurrent transaction posted this reference first."""


class _Refused(Exception):
    def __init__(self, ref: AccountRef) -> None:
        self.ref = ref


def transfer(source: AccountRef, target: AccountRef, amount: int) -> list[Leg]:
    """The two legs moving ``amount`` from ``source`` to ``target``."""
    return [Leg(source, -amount), Leg(target, amount)]


async def post(session: AsyncSession, *, kind: str, reference: str, legs: Sequence[Leg], currency: str,
               memo: str = "", user_id: uuid.UUID | None = None, order_id: uuid.UUID | None = None,
               payment_id: uuid.UUID | None = None, refund_id: uuid.UUID | None = None,
               payout_id: uuid.UUID | None = None) -> Posted:
    """Post one balanced transaction. Raises :class:`InsufficientFunds` (nothing posted) when
    a leg would take an account that may not go negative below zero."""
    for leg in legs:
        if not isinstance(leg.amount, int) or isinstance(leg.amount, bool):
            raise UnbalancedTransaction(f"{reference}: amounts are integers in minor units, not {leg.amount!r}")
    if len(legs) < 2 or sum(leg.amount for leg in legs) != 0 or any(leg.amount == 0 for leg in legs):
        raise UnbalancedTransaction(f"{reference}: a transaction needs two or more non-zero legs summing to zero")
    earlier = await repository.transaction_by_reference(session, reference)
    if earlier is not None:
        return Posted(earlier, created=False)
    now = utcnow()
    row = LedgerTransaction(id=uuid.uuid4(), kind=kind, reference=reference, memo=memo, user_id=user_id,
                            order_id=order_id, payment_id=payment_id, refund_id=refund_id, payout_id=payout_id,
                            created_at=now)
    try:
        async with session.begin_nested():
            if not await repository.insert_transaction(session, row):
                raise _AlreadyPosted
            per_account: dict[uuid.UUID, int] = defaultdict(int)
            refs: dict[uuid.UUID, AccountRef] = {}
            for leg in legs:
                account_id = await repository.account_id(session, leg.account, currency=currency)
                per_account[account_id] += leg.amount
                refs[account_id] = leg.account
            for account_id in sorted(per_account):
                amount = per_account[account_id]
                if amount == 0:
                    continue
                balance = await repository.move_balance(session, account_id, amount)
                if balance is None:
                    raise _Refused(refs[account_id])
                repository.add_entry(session, LedgerEntry(id=uuid.uuid4(), transaction_id=row.id,
                                                          account_id=account_id, amount=amount,
                                                          balance_after=balance, created_at=now))
                await refresh_if_held(session, LedgerAccount, account_id)
    except _AlreadyPosted:
        existing = await repository.transaction_by_reference(session, reference)
        assert existing is not None
        return Posted(existing, created=False)
    except _Refused as refused:
        raise InsufficientFunds(f"The {refused.ref.kind.value.replace('_', ' ')} does not hold enough money "
                                f"for this ({reference.split(':')[0]}).") from None
    return Posted(row, created=True)


async def posted(session: AsyncSession, reference: str) -> bool:
    """Whether a transaction with this business reference was posted."""
    return await repository.transaction_by_reference(session, reference) is not None


async def balance(session: AsyncSession, ref: AccountRef) -> int:
    account = await repository.account(session, ref)
    return 0 if account is None else account.balance


async def account(session: AsyncSession, ref: AccountRef) -> LedgerAccount | None:
    return await repository.account(session, ref)


async def entries_of(session: AsyncSession, account_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None,
                     limit: int) -> list[tuple[LedgerEntry, LedgerTransaction]]:
    """An account's entries with their transactions, newest first (keyset cursor: created_at, id)."""
    return await repository.entries_of(session, account_id, after=after, limit=limit)


async def entries_of_transaction(session: AsyncSession, transaction_id: uuid.UUID) -> list[LedgerEntry]:
    """The legs of one posted transaction."""
    return await repository.entries_of_transaction(session, transaction_id)


async def sums_by_kind(session: AsyncSession, account_id: uuid.UUID) -> dict[str, int]:
    """The sum of an account's entries per kind of transaction (``settlement``, ``refund``, …)."""
    return await repository.sums_by_kind(session, account_id)
