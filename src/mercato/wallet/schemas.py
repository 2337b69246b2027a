"""Request and response models of the wallet."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from mercato.kit.money import Money, SignedMoney
from mercato.kit.schemas import ReadModel


class WalletRead(ReadModel):
    balance: Money


class WalletMovement(ReadModel):
    """One entry of the wallet's ledger account, with the transaction it belongs to."""

    id: uuid.UUID
    transaction_id: uuid.UUID
    kind: str = Field(description="topup, purchase, refund, welcome_credit, …")
    amount: SignedMoney
    balance_after: Money
    memo: str
    order_id: uuid.UUID | None
    payment_id: uuid.UUID | None
    refund_id: uuid.UUID | None
    created_at: datetime
