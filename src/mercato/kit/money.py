"""Money on the wire (API.md): ``{"amount": 1999, "currency": "USD"}``, integer minor
units, never floats."""

from __future__ import annotations

from pydantic import Field

from mercato.kit.schemas import ReadModel

MAX_AMOUNT = 10**12


class Money(ReadModel):
    amount: int = Field(ge=0, le=MAX_AMOUNT, description="Integer minor units (cents).")
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class SignedMoney(ReadModel):
    """A movement: negative amounts leave the account."""

    amount: int = Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT, description="Integer minor units; negative = out.")
    currency: str = Field(pattern=r"^[A-Z]{3}$")


# ISO 4217 minor-unit exponents that are not 2 (the store's currency is usually one of the 2s).
EXPONENTS = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "BHD": 3, "KWD": 3, "OMR": 3, "TND": 3, "JOD": 3}


def format_money(amount: int, currency: str) -> str:
    """``1999, "USD"`` → ``"19.99 USD"``: for receipts and messages, never for arithmetic."""
    exponent = EXPONENTS.get(currency, 2)
    sign = "-" if amount < 0 else ""
    whole, part = divmod(abs(amount), 10 ** exponent)
    return f"{sign}{whole:,}.{part:0{exponent}d} {currency}" if exponent else f"{sign}{whole:,} {currency}"

