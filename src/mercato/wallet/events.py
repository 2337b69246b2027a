"""The events the wallet module emits (their ``data``; see ``mercato.bus.events``)."""

from __future__ import annotations

import uuid

from mercato.bus.events import EventData, event_type


class WalletReply(EventData):
    order_id: uuid.UUID
    user_id: uuid.UUID
    total: int
    currency: str


@event_type("wallet.debited", source="wallet")
class WalletDebited(WalletReply):
    """The order's total moved from the buyer's wallet into escrow."""
    transaction_id: uuid.UUID


@event_type("wallet.debit_refused", source="wallet")
class WalletDebitRefused(WalletReply):
    """The wallet held less than the total (nothing was taken)."""
    balance: int
    shortfall: int
