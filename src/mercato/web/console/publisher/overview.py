"""The publisher console's overview (U2): charts over time of sales, revenue, downloads, installs
and ratings per listing (``stats:read``: members of the publisher and admins)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import Request
from starlette.responses import Response

from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.kit.clock import utcnow
from mercato.platform.routing import ReadSession, RuntimeDep
from mercato.stats import service as stats
from mercato.web.console.access import console_actor
from mercato.web.console.charts import line_chart
from mercato.web.console.publisher.common import PREFIX, publisher_for
from mercato.web.pages import page_router, render

router = page_router(prefix=PREFIX)

Member = Annotated[Principal, console_actor(Permission.stats_read)]

PERIODS = {"7": 7, "30": 30, "90": 90, "365": 365}


@router.get("", name="console_publisher")
async def overview(slug: str, request: Request, session: ReadSession, actor: Member, rt: RuntimeDep,
                   period: Literal["7", "30", "90", "365"] = "30") -> Response:
    publisher = await publisher_for(session, actor, slug, Permission.stats_read)
    until = utcnow().date()
    since = until - timedelta(days=PERIODS[period] - 1)
    data = await stats.publisher_stats(session, actor=actor, slug=slug, since=since, until=until,
                                       currency=rt.settings.currency)
    days = [since + timedelta(days=n) for n in range(PERIODS[period])]

    def per_listing(metric: str, scale: float = 1) -> list[tuple[str, list[float]]]:
        rows = []
        for item in data.listings:
            values = [(getattr(d, metric).amount if metric == "revenue" else getattr(d, metric)) / scale
                      for d in item.days]
            rows.append((item.slug, values))
        if len(rows) > 1:
            rows.insert(0, ("all listings", [sum(v[i] for _, v in rows) for i in range(len(days))]))
        return rows

    charts = [
        ("Sales", line_chart(f"Sales per day, last {period} days", days, per_listing("sales"))),
        (f"Revenue ({rt.settings.currency})", line_chart(f"Revenue per day in {rt.settings.currency}", days,
                                                         per_listing("revenue", 100))),
        ("Downloads", line_chart("Downloads per day", days, per_listing("downloads"))),
        ("Installs", line_chart("Installs per day", days, per_listing("installs"))),
        ("Ratings", line_chart("Ratings given per day", days, per_listing("ratings"))),
        ("Average rating", line_chart("Average rating given per day (0 on days without ratings)", days,
                                      [(item.slug, [d.rating_average or 0 for d in item.days])
                                       for item in data.listings],
                                      summaries=[f"{item.totals.rating_average or 0:g} over the period"
                                                 for item in data.listings])),
    ]
    return await render(request, "console/publisher/overview.html", {
        "publisher": publisher, "stats": data, "charts": charts, "period": period, "console": "publisher",
        "section": "overview"})
