"""The caller's wallet (M1): balance and movements."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from mercato.access.dependencies import requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.money import Money, SignedMoney
from mercato.kit.pagination import CursorParam, Limit, created_cursor, decode_cursor, keyset_page
from mercato.kit.schemas import Page
from mercato.platform.routing import ReadSession, RuntimeDep, TransactionalRoute
from mercato.wallet import service
from mercato.wallet.schemas import WalletMovement, WalletRead

router = APIRouter(route_class=TransactionalRoute, tags=["money"])

WalletReader = Annotated[Principal, requires(Permission.wallet_read)]


@router.get("/wallet", response_model=WalletRead)
async def my_wallet(actor: WalletReader, session: ReadSession, rt: RuntimeDep) -> WalletRead:
    """Your balance in the store's currency (0 before the first movement)."""
    currency = rt.settings.currency
    return WalletRead(balance=Money(amount=await service.balance(session, actor.user_id), currency=currency))


@router.get("/wallet/transactions", response_model=Page[WalletMovement])
async def my_wallet_transactions(actor: WalletReader, session: ReadSession, rt: RuntimeDep, cursor: CursorParam = None,
                                 limit: Limit = 20) -> Page[WalletMovement]:
    """Every movement of your wallet, newest first, with the balance after it."""
    currency = rt.settings.currency
    rows = await service.history(session, actor.user_id, after=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit, lambda row: created_cursor(row[0]))
    return Page[WalletMovement](
        items=[WalletMovement(id=entry.id, transaction_id=entry.transaction_id, kind=transaction.kind,
                              amount=SignedMoney(amount=entry.amount, currency=currency),
                              balance_after=Money(amount=entry.balance_after, currency=currency),
                              memo=transaction.memo, order_id=transaction.order_id,
                              payment_id=transaction.payment_id, refund_id=transaction.refund_id,
                              created_at=entry.created_at)
               for entry, transaction in page],
        next_cursor=next_cursor)
