"""Publisher dashboard data (P6): per listing and day, from the catalog's daily stats."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.catalog import service as catalog
from mercato.kit.errors import Forbidden, ValidationFailed
from mercato.kit.money import SignedMoney
from mercato.publishers import service as publishers
from mercato.stats.schemas import DayStats, ListingStats, PublisherStats, Totals

DEFAULT_DAYS = 30
MAX_DAYS = 366
COUNTERS = ("downloads", "installs", "sales", "revenue", "ratings", "rating_sum")


class InvalidPeriod(ValidationFailed):
    code, title = "invalid_period", "The period is not valid"


def period(since: date | None, until: date | None, *, today: date) -> tuple[date, date]:
    """The inclusive period asked for: by default the 30 days up to today; at most 366 days."""
    until = until or today
    since = since or until - timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        raise InvalidPeriod("`since` must not be after `until`.", errors=[
            {"loc": ["query", "since"], "msg": "after until", "type": "value_error"}])
    if (until - since).days + 1 > MAX_DAYS:
        raise InvalidPeriod(f"Ask for at most {MAX_DAYS} days at a time.", errors=[
            {"loc": ["query", "since"], "msg": f"period longer than {MAX_DAYS} days", "type": "value_error"}])
    return since, until


def _average(total: int, count: int) -> float | None:
    return round(total / count, 2) if count else None


def _totals(values: dict[str, int], currency: str) -> Totals:
    return Totals(downloads=values["downloads"], installs=values["installs"], sales=values["sales"],
                  revenue=SignedMoney(amount=values["revenue"], currency=currency), ratings=values["ratings"],
                  rating_average=_average(values["rating_sum"], values["ratings"]))


async def publisher_stats(session: AsyncSession, *, actor: Principal, slug: str, since: date, until: date,
                          currency: str) -> PublisherStats:
    """Members of the publisher (``stats:read`` own) or ``any`` holders; others 403."""
    publisher = await publishers.get(session, slug)
    if not await publishers.acts_for(session, actor, Permission.stats_read, publisher):
        raise Forbidden(f"Only members of {publisher.slug!r} and admins see its statistics.")
    listings = await catalog.listings_of_publisher(session, publisher.id)
    rows: dict[tuple[uuid.UUID, date], Any] = {
        (row.listing_id, row.day): row
        for row in await catalog.daily_stats(session, [listing_id for listing_id, _ in listings],
                                             since=since, until=until)}
    days = [since + timedelta(days=n) for n in range((until - since).days + 1)]
    overall: dict[str, int] = dict.fromkeys(COUNTERS, 0)
    out = []
    for listing_id, listing_slug in listings:
        sums: dict[str, int] = defaultdict(int)
        series = []
        for day in days:
            row = rows.get((listing_id, day))
            values = {name: int(getattr(row, name) or 0) if row is not None else 0 for name in COUNTERS}
            for name, value in values.items():
                sums[name] += value
                overall[name] += value
            series.append(DayStats(day=day, downloads=values["downloads"], installs=values["installs"],
                                   sales=values["sales"],
                                   revenue=SignedMoney(amount=values["revenue"], currency=currency),
                                   ratings=values["ratings"],
                                   rating_average=_average(values["rating_sum"], values["ratings"])))
        out.append(ListingStats(listing_id=listing_id, slug=listing_slug,
                                totals=_totals({n: sums[n] for n in COUNTERS}, currency), days=series))
    return PublisherStats(publisher=publisher.slug, since=since, until=until, currency=currency,
                          totals=_totals(overall, currency), listings=out)
