"""Response models of the publisher dashboard data (P6)."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import Field

from mercato.kit.money import SignedMoney
from mercato.kit.schemas import ReadModel


class DayStats(ReadModel):
    day: date
    downloads: int
    installs: int
    sales: int
    revenue: SignedMoney = Field(description="What buyers paid that day for completed sales (after coupons), "
                                             "less what was refunded that day: negative on a day of more "
                                             "refunds than sales.")
    ratings: int = Field(description="Ratings given that day.")
    rating_average: float | None = Field(description="Average of the ratings given that day; null without any.")


class Totals(ReadModel):
    downloads: int
    installs: int
    sales: int
    revenue: SignedMoney = Field(description="Completed sales after coupons, net of refunds, over the period.")
    ratings: int
    rating_average: float | None = Field(description="Average of the ratings given in the period.")


class ListingStats(ReadModel):
    listing_id: uuid.UUID
    slug: str
    totals: Totals
    days: list[DayStats] = Field(description="One entry per day of the period, oldest first (zero-filled).")


class PublisherStats(ReadModel):
    publisher: str
    since: date
    until: date
    currency: str
    totals: Totals = Field(description="Every listing of the publisher together.")
    listings: list[ListingStats]
