"""The ledger's accounts, named as DOMAIN.md names them (``kind:owner``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum


class AccountKind(StrEnum):
    user_wallet = "user_wallet"
    orders_escrow = "orders_escrow"
    publisher_earnings = "publisher_earnings"
    platform_revenue = "platform_revenue"
    provider_clearing = "provider_clearing"
    payouts_pending = "payouts_pending"


# Who may owe money. The provider's clearing account mirrors what the provider owes the
# store (negative after every top-up); a publisher's earnings go negative when a refund
# reverses a sale that was already paid out; the platform pays welcome credits from its
# revenue. Wallets, escrow and pending payouts never go below zero (INV-2).
MAY_GO_NEGATIVE = frozenset({AccountKind.provider_clearing, AccountKind.publisher_earnings,
                             AccountKind.platform_revenue})


@dataclass(frozen=True)
class AccountRef:
    kind: AccountKind
    owner: str | None = None  # a user or publisher id, or a provider name

    @property
    def key(self) -> str:
        return f"{self.kind.value}:{self.owner}" if self.owner else self.kind.value

    @property
    def owner_id(self) -> uuid.UUID | None:
        if self.owner is None:
            return None
        try:
            return uuid.UUID(self.owner)
        except ValueError:
            return None  # a provider name


def user_wallet(user_id: uuid.UUID) -> AccountRef:
    return AccountRef(AccountKind.user_wallet, str(user_id))


def publisher_earnings(publisher_id: uuid.UUID) -> AccountRef:
    return AccountRef(AccountKind.publisher_earnings, str(publisher_id))


def payouts_pending(publisher_id: uuid.UUID) -> AccountRef:
    return AccountRef(AccountKind.payouts_pending, str(publisher_id))


def provider_clearing(provider: str) -> AccountRef:
    return AccountRef(AccountKind.provider_clearing, provider)


ORDERS_ESCROW = AccountRef(AccountKind.orders_escrow)
PLATFORM_REVENUE = AccountRef(AccountKind.platform_revenue)
