"""The store policies (O4) and the request and response models of ``/admin/settings``.

``Policies`` is the one definition of every policy: its type (integers only), default and
bounds. The PATCH body is derived from it, so a policy added here is editable at once.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from mercato.kit.schemas import WriteModel


class Policies(BaseModel):
    """The money and order policies in force. Money is in minor units of the store currency
    (``settings.currency``); durations in seconds or days, as the name says."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    commission_bps: int = Field(2000, ge=0, le=10_000, description=(
        "Platform commission on each sale, in basis points (2000 = 20 %)."))
    refund_window_days: int = Field(14, ge=0, le=365, description=(
        "Days after purchase during which a buyer may ask for a refund (0: no refunds)."))
    refund_auto_max_downloads: int = Field(3, ge=0, le=1000, description=(
        "Refunds inside the window are approved automatically only if the buyer downloaded the "
        "item at most this many times; otherwise an admin decides."))
    order_timeout_seconds: int = Field(900, ge=60, le=86_400, description=(
        "An unpaid order is cancelled (and its stock released) after this."))
    welcome_credit: int = Field(0, ge=0, le=10_000_000, description=(
        "Wallet credit given to each new account, in minor units (0: none)."))
    payment_poll_after_seconds: int = Field(30, ge=5, le=3600, description=(
        "A pending provider payment is first polled for its status after this (when no webhook came)."))
    payment_expire_seconds: int = Field(1800, ge=60, le=86_400, description=(
        "A provider payment still pending after this expires."))
    max_order_lines: int = Field(20, ge=1, le=100, description="Most lines in one order.")
    max_line_quantity: int = Field(10, ge=1, le=1000, description="Largest quantity of one order line.")
    signups_per_address_per_hour: int = Field(20, ge=1, le=1_000_000, description=(
        "Accounts one client address may register per hour (the address as MERCATO_TRUSTED_PROXIES lets "
        "the store see it)."))

    @model_validator(mode="after")
    def _poll_before_expiry(self) -> Self:
        if self.payment_poll_after_seconds >= self.payment_expire_seconds:
            raise ValueError(
                f"payment_poll_after_seconds ({self.payment_poll_after_seconds}) must be less than "
                f"payment_expire_seconds ({self.payment_expire_seconds}): a payment is polled before it expires")
        return self


POLICY_NAMES: tuple[str, ...] = tuple(Policies.model_fields)


def _without_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # absent means "leave as it is", not null


class _PatchBase(WriteModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# Every policy, optional and never null; same types and bounds as Policies.
PoliciesPatch: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "PoliciesPatch",
    __base__=_PatchBase,
    __doc__=("The policies to change, each with its new value; policies not sent stay as they are. "
             "Unknown names, nulls, non-integers and values out of bounds are refused (422) and "
             "nothing changes."),
    **{name: (Annotated[(int, *field.metadata)],
              Field(default=None, description=field.description, json_schema_extra=_without_default))
       for name, field in Policies.model_fields.items()},
)


class SettingsRead(BaseModel):
    """The policies in force, their defaults, and who changed them last."""

    policies: Policies = Field(description="Every policy with the value in force.")
    defaults: Policies = Field(description="The value each policy has when no admin has changed it.")
    currency: str = Field(description="The store currency: `welcome_credit` is in its minor units.")
    updated_at: datetime | None = Field(description="When a policy was last changed; null: never.")
    updated_by: uuid.UUID | None = Field(description="Who changed a policy last; null: never (or a system change).")
