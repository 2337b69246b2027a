"""The double-entry ledger (DOMAIN.md "Ledger", QUALITY INV-1..3, INV-6): balanced,
append-only, idempotent by reference, and never below zero under concurrency."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from mercato.app.runtime import Runtime
from mercato.ledger import accounts
from mercato.ledger import service as ledger
from mercato.ledger.errors import InsufficientFunds, UnbalancedTransaction
from mercato.ledger.service import Leg, transfer
from mercato.models import LedgerEntry, LedgerTransaction
from tests.support.invariants import assert_money_invariants

CLEARING = accounts.provider_clearing("sandbox")


async def top_up(runtime: Runtime, user_id: uuid.UUID, amount: int, reference: str | None = None) -> ledger.Posted:
    async with runtime.db.transaction() as session:
        return await ledger.post(session, kind="topup", reference=reference or f"test-topup:{uuid.uuid4()}",
                                 currency="USD", legs=transfer(CLEARING, accounts.user_wallet(user_id), amount))


async def balance(runtime: Runtime, ref: accounts.AccountRef) -> int:
    async with runtime.db.read_session() as session:
        return await ledger.balance(session, ref)


async def test_a_posting_moves_both_balances_and_keeps_each_balance_after(runtime: Runtime) -> None:
    user = uuid.uuid4()
    await top_up(runtime, user, 1500)
    await top_up(runtime, user, 500)
    assert await balance(runtime, accounts.user_wallet(user)) == 2000
    assert await balance(runtime, CLEARING) == -2000
    async with runtime.db.read_session() as session:
        account = await ledger.account(session, accounts.user_wallet(user))
        assert account is not None
        after = list(await session.scalars(select(LedgerEntry.balance_after).where(
            LedgerEntry.account_id == account.id).order_by(LedgerEntry.balance_after)))
    assert after == [1500, 2000]
    await assert_money_invariants(runtime.db)


async def test_the_same_reference_posts_once(runtime: Runtime) -> None:
    user = uuid.uuid4()
    first = await top_up(runtime, user, 700, reference="payment:once")
    again = await top_up(runtime, user, 700, reference="payment:once")
    assert first.created and not again.created
    assert again.transaction.id == first.transaction.id
    assert await balance(runtime, accounts.user_wallet(user)) == 700


@pytest.mark.parametrize("legs", [
    [Leg(CLEARING, -100), Leg(accounts.ORDERS_ESCROW, 99)],
    [Leg(CLEARING, -100)],
    [Leg(CLEARING, 0), Leg(accounts.ORDERS_ESCROW, 0)],
], ids=["not-summing-to-zero", "one-leg", "zero-legs"])
async def test_an_unbalanced_posting_is_refused_and_nothing_is_written(runtime: Runtime, legs: list[Leg]) -> None:
    async with runtime.db.transaction() as session:
        with pytest.raises(UnbalancedTransaction):
            await ledger.post(session, kind="test", reference="bad", currency="USD", legs=legs)
    async with runtime.db.read_session() as session:
        assert await session.scalar(select(LedgerTransaction).where(LedgerTransaction.reference == "bad")) is None


async def test_a_debit_beyond_the_wallet_is_refused_and_leaves_the_callers_transaction_usable(
        runtime: Runtime) -> None:
    user = uuid.uuid4()
    await top_up(runtime, user, 300)
    async with runtime.db.transaction() as session:
        with pytest.raises(InsufficientFunds):
            await ledger.post(session, kind="purchase", reference="order-debit:too-much", currency="USD",
                              legs=transfer(accounts.user_wallet(user), accounts.ORDERS_ESCROW, 301))
        # the refusal is recorded in the same transaction (what a saga handler does)
        await ledger.post(session, kind="purchase", reference="order-debit:fits", currency="USD",
                          legs=transfer(accounts.user_wallet(user), accounts.ORDERS_ESCROW, 300))
    assert await balance(runtime, accounts.user_wallet(user)) == 0
    assert await balance(runtime, accounts.ORDERS_ESCROW) == 300
    async with runtime.db.read_session() as session:
        refused = await session.scalar(select(LedgerTransaction).where(
            LedgerTransaction.reference == "order-debit:too-much"))
    assert refused is None
    await assert_money_invariants(runtime.db)


async def test_concurrent_debits_never_take_a_wallet_below_zero(runtime: Runtime) -> None:
    """50 wallets of 1,000 and 200 debits of 300 racing: exactly 3 fit in each wallet."""
    users = [uuid.uuid4() for _ in range(50)]
    for user in users:
        await top_up(runtime, user, 1000)

    async def debit(user: uuid.UUID, n: int) -> bool:
        try:
            async with runtime.db.transaction() as session:
                await ledger.post(session, kind="purchase", reference=f"order-debit:{user}:{n}", currency="USD",
                                  legs=transfer(accounts.user_wallet(user), accounts.ORDERS_ESCROW, 300))
            return True
        except InsufficientFunds:
            return False

    results = await asyncio.gather(*(debit(user, n) for user in users for n in range(4)))
    assert sum(results) == 150
    for user in users:
        assert await balance(runtime, accounts.user_wallet(user)) == 100
    assert await balance(runtime, accounts.ORDERS_ESCROW) == 150 * 300
    await assert_money_invariants(runtime.db)


@pytest.mark.parametrize("change", ["update-entry", "delete-entry", "update-transaction", "delete-transaction"])
async def test_ledger_rows_can_never_be_changed_or_removed(runtime: Runtime, change: str) -> None:
    posted = await top_up(runtime, uuid.uuid4(), 100)
    statements = {
        "update-entry": update(LedgerEntry).where(LedgerEntry.transaction_id == posted.transaction.id)
        .values(amount=LedgerEntry.amount * 2),
        "delete-entry": delete(LedgerEntry).where(LedgerEntry.transaction_id == posted.transaction.id),
        "update-transaction": update(LedgerTransaction).where(LedgerTransaction.id == posted.transaction.id)
        .values(memo="rewritten"),
        "delete-transaction": delete(LedgerTransaction).where(LedgerTransaction.id == posted.transaction.id),
    }
    with pytest.raises(DBAPIError, match="append-only"):
        async with runtime.db.transaction() as session:
            await session.execute(statements[change].execution_options(synchronize_session=False))
    await assert_money_invariants(runtime.db)


@pytest.mark.postgres
async def test_postgres_refuses_to_commit_entries_that_do_not_balance(runtime: Runtime) -> None:
    """The deferred trigger is PostgreSQL's; on SQLite only ledger.post writes entries."""
    posted = await top_up(runtime, uuid.uuid4(), 100)
    account_id = (await _any_account(runtime))
    with pytest.raises(DBAPIError, match="does not balance"):
        async with runtime.db.transaction() as session:
            session.add(LedgerEntry(id=uuid.uuid4(), transaction_id=posted.transaction.id, account_id=account_id,
                                    amount=5, balance_after=0))
    await assert_money_invariants(runtime.db)


async def _any_account(runtime: Runtime) -> uuid.UUID:
    async with runtime.db.read_session() as session:
        return (await session.execute(text("SELECT id FROM ledger_accounts LIMIT 1"))).scalar_one()
