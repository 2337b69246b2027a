"""Publisher dashboard data (P6): downloads, installs, sales, revenue and ratings per listing and day."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BeforeValidator

from mercato.access.dependencies import requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.clock import utcnow
from mercato.kit.errors import Forbidden
from mercato.kit.schemas import Slug
from mercato.platform.routing import ReadSession, RuntimeDep, TransactionalRoute
from mercato.publishers.errors import PublisherNotFound
from mercato.stats import service
from mercato.stats.schemas import PublisherStats

router = APIRouter(route_class=TransactionalRoute, tags=["publishers"])


def _iso_date_only(value: object) -> object:
    """A day is written YYYY-MM-DD; a bare number (Unix time) is refused, not guessed."""
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("use a date written YYYY-MM-DD")
    return value


Day = Annotated[date, BeforeValidator(_iso_date_only)]


@router.get("/publishers/{slug}/stats", response_model=PublisherStats,
            responses=PublisherNotFound.responses(Forbidden, service.InvalidPeriod))
async def publisher_stats(slug: Slug, actor: Annotated[Principal, requires(Permission.stats_read)],
                          session: ReadSession, runtime: RuntimeDep,
                          since: Annotated[Day | None, Query(description="First day (UTC), YYYY-MM-DD; "
                                                                          "default 29 days before `until`.")] = None,
                          until: Annotated[Day | None, Query(description="Last day (UTC), YYYY-MM-DD; "
                                                                          "default today.")] = None
                          ) -> PublisherStats:
    """Per listing of the publisher: totals over the period and one entry per day (days
    without activity are zeros), plus the publisher's totals. Members of the publisher and
    admins; at most 366 days at a time."""
    first, last = service.period(since, until, today=utcnow().date())
    return await service.publisher_stats(session, actor=actor, slug=slug, since=first, until=last,
                                         currency=runtime.settings.currency)
