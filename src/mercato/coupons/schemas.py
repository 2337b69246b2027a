"""Request and response models of coupons."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from mercato.kit.money import MAX_AMOUNT
from mercato.kit.schemas import ReadModel, Slug, WriteModel
from mercato.models import Coupon

# Stored upper-case; any case is accepted and matched.
CouponCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{3,64}$")]
Limit = Annotated[int, Field(ge=1, le=10_000_000)]


def _value_fits(kind: str | None, value: int | None) -> None:
    if kind == "percent" and value is not None and value > 100:
        raise ValueError("a percent coupon's value is 1..100")


class CouponCreate(WriteModel):
    code: CouponCode = Field(description="3–64 characters A–Z, 0–9 and '-'; stored upper-case, "
                                         "matched case-insensitively.")
    kind: Literal["percent", "fixed"]
    value: int = Field(ge=1, le=MAX_AMOUNT, description="Percent 1–100, or minor units of the store currency.")
    scope: Literal["store", "publisher", "listing"] = Field(
        description="store (admins only), publisher (needs `publisher`) or listing (needs `listing_id`).")
    publisher: Slug | None = Field(default=None, description="Slug of the publisher (scope publisher).")
    listing_id: uuid.UUID | None = Field(default=None, description="The listing (scope listing).")
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    max_redemptions: Limit | None = Field(default=None, description="Total redemptions allowed (none: unlimited).")
    per_user_limit: Limit | None = Field(default=None, description="Redemptions per buyer (none: unlimited).")
    active: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _value_fits(self.kind, self.value)
        if self.scope == "publisher" and (self.publisher is None or self.listing_id is not None):
            raise ValueError("a publisher coupon names `publisher` and no `listing_id`")
        if self.scope == "listing" and (self.listing_id is None or self.publisher is not None):
            raise ValueError("a listing coupon names `listing_id` and no `publisher`")
        if self.scope == "store" and (self.publisher is not None or self.listing_id is not None):
            raise ValueError("a store-wide coupon names neither `publisher` nor `listing_id`")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class CouponUpdate(WriteModel):
    """Send only what changes; `null` clears ends_at, max_redemptions and per_user_limit.
    code, kind and value may change only while the coupon was never redeemed."""

    active: bool | None = None
    ends_at: AwareDatetime | None = None
    max_redemptions: Limit | None = None
    per_user_limit: Limit | None = None
    code: CouponCode | None = None
    kind: Literal["percent", "fixed"] | None = None
    value: int | None = Field(default=None, ge=1, le=MAX_AMOUNT)

    @model_validator(mode="after")
    def _no_null_for_required(self) -> Self:
        for name in ("active", "code", "kind", "value"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class CouponRead(ReadModel):
    id: uuid.UUID
    code: str
    kind: str
    value: int
    currency: str
    scope: str
    publisher_id: uuid.UUID | None
    listing_id: uuid.UUID | None
    starts_at: datetime | None
    ends_at: datetime | None
    max_redemptions: int | None
    per_user_limit: int | None
    redemptions: int
    active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, coupon: Coupon) -> CouponRead:
        return cls.model_validate(coupon)
