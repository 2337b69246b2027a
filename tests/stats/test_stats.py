"""P6: publisher dashboard data per listing and day, for the publisher's members and admins."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from mercato.app.runtime import Runtime
from mercato.bus.events import CloudEvent
from mercato.catalog import repository as catalog_repository
from mercato.catalog import service as catalog
from mercato.kit.clock import utcnow
from mercato.stats import handlers as stats_handlers
from tests.library.support import V1, Store, events
from tests.support.actors import Actor, Actors
from tests.support.orders import Seller, fund, item, place, quiet


@pytest.fixture
async def store(client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> Store:
    return await Store.open(client, actors, runtime)


def stats_url(store: Store) -> str:
    return f"{V1}/publishers/{store.publisher}/stats"


async def record_day(runtime: Runtime, listing: dict[str, Any], day: date, **counters: int) -> None:
    """Activity on a past day: services only ever count today, so earlier days are written
    with the catalog repository's upsert-increment that the services use."""
    async with runtime.db.transaction() as session:
        await catalog_repository.add_daily(session, uuid.UUID(listing["id"]), day, **counters)


async def stats(client: httpx.AsyncClient, store: Store, actor: Actor | None = None,
                **params: str) -> dict[str, Any]:
    response = await client.get(stats_url(store), headers=(actor or store.developer).headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_the_default_period_is_the_last_thirty_days_zero_filled(
        store: Store, client: httpx.AsyncClient, runtime: Runtime) -> None:
    listing = await store.listing()
    body = await stats(client, store)
    today = utcnow().date()
    assert (body["since"], body["until"]) == ((today - timedelta(days=29)).isoformat(), today.isoformat())
    [shown] = body["listings"]
    assert (shown["listing_id"], shown["slug"]) == (listing["id"], listing["slug"])
    assert [d["day"] for d in shown["days"]] == [(today - timedelta(days=n)).isoformat() for n in range(29, -1, -1)]
    assert all((d["downloads"], d["ratings"], d["revenue"]["amount"]) == (0, 0, 0) for d in shown["days"])
    assert shown["totals"] == {"downloads": 0, "installs": 0, "sales": 0,
                               "revenue": {"amount": 0, "currency": "USD"}, "ratings": 0, "rating_average": None}


async def test_activity_is_summed_per_listing_and_day_within_the_period(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, actors: Actors) -> None:
    first, second = await store.listing(), await store.listing(price=500)
    for rating in (5, 2):  # reviews count today's ratings (through the ratings API)
        await store.review(first, await store.owner(first), rating=rating)
    async with runtime.db.transaction() as session:  # two downloads today, as the download endpoint counts them
        for _ in range(2):
            await catalog.count(session, uuid.UUID(first["id"]), day_stat="downloads", download_count=1)
    since = date(2026, 3, 1)
    await record_day(runtime, second, date(2026, 3, 2), sales=2, revenue=1000, installs=3)
    await record_day(runtime, second, date(2026, 3, 4), sales=1, revenue=500)
    await record_day(runtime, second, date(2026, 2, 28), sales=9, revenue=9999)  # before the period
    await record_day(runtime, second, date(2026, 3, 5), sales=9, revenue=9999)  # after it

    body = await stats(client, store, since="2026-03-01", until="2026-03-04")
    by_slug = {item["slug"]: item for item in body["listings"]}
    paid = by_slug[second["slug"]]
    assert [(d["day"], d["sales"], d["revenue"]["amount"], d["installs"]) for d in paid["days"]] == [
        ("2026-03-01", 0, 0, 0), ("2026-03-02", 2, 1000, 3), ("2026-03-03", 0, 0, 0), ("2026-03-04", 1, 500, 0)]
    assert (paid["totals"]["sales"], paid["totals"]["revenue"], paid["totals"]["installs"]) == (
        3, {"amount": 1500, "currency": "USD"}, 3)
    assert (body["since"], len(by_slug[first["slug"]]["days"])) == (since.isoformat(), 4)

    today = utcnow().date().isoformat()
    now = await stats(client, store, since=today, until=today)
    free = {item["slug"]: item for item in now["listings"]}[first["slug"]]
    assert (free["totals"]["downloads"], free["totals"]["ratings"], free["totals"]["rating_average"]) == (2, 2, 3.5)
    assert (free["days"][0]["ratings"], free["days"][0]["rating_average"]) == (2, 3.5)
    assert (now["totals"]["downloads"], now["totals"]["ratings"]) == (2, 2)


async def test_only_the_publishers_own_listings_are_shown(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, actors: Actors) -> None:
    mine = await store.listing()
    other = await Store.open(client, actors, runtime)
    await other.listing()
    assert [item["slug"] for item in (await stats(client, store))["listings"]] == [mine["slug"]]


@pytest.mark.parametrize(("params", "status"), [
    ({"since": "2025-01-01", "until": "2026-01-01"}, 200),   # 366 days
    ({"since": "2025-01-01", "until": "2026-01-02"}, 422),   # 367 days
    ({"since": "2026-02-02", "until": "2026-02-01"}, 422),   # backwards
    ({"since": "1700000000"}, 422),                          # not a date
    ({"until": "2026-13-01"}, 422),
    ({"since": "2026-02-01", "until": "2026-02-01"}, 200),   # one day
])
async def test_the_period_is_checked(store: Store, client: httpx.AsyncClient, params: dict[str, str],
                                     status: int) -> None:
    await store.listing()
    response = await client.get(stats_url(store), headers=store.developer.headers, params=params)
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["code"] in ("invalid_period", "validation_failed")


async def test_members_and_admins_read_stats_and_nobody_else(
        store: Store, client: httpx.AsyncClient, actors: Actors, user: Actor) -> None:
    await store.listing()
    other_developer = await actors.create()
    await actors.publisher(other_developer)
    for actor in (store.developer, store.member, store.admin):
        assert (await client.get(stats_url(store), headers=actor.headers)).status_code == 200
    for actor in (user, other_developer, store.reviewer):
        response = await client.get(stats_url(store), headers=actor.headers)
        assert response.status_code == 403, actor.email
        assert "listings" not in response.json()
    assert (await client.get(stats_url(store))).status_code == 401
    for actor in (store.developer, store.admin):
        response = await client.get(f"{V1}/publishers/no-such-publisher/stats", headers=actor.headers)
        assert (response.status_code, response.json()["code"]) == (404, "publisher_not_found")


# --- revenue: completed sales, after coupons, net of refunds -----------------------------------------------

async def test_revenue_counts_completed_sales_after_discounts_net_of_refunds(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    seller = await Seller.open(client, actors, runtime)
    app, tool = await seller.listing(digital=1000, name="App"), await seller.listing(digital=500, name="Tool")
    first, second, late = await actors.create(), await actors.create(), await actors.create()
    coupon = await client.post(f"{V1}/coupons", headers=seller.developer.headers, json={
        "code": f"TEN-{uuid.uuid4().hex[:6]}", "kind": "percent", "value": 10, "scope": "publisher",
        "publisher": seller.slug})
    assert coupon.status_code == 201, coupon.text
    for buyer in (first, second):
        await fund(runtime, buyer, 2000)
    one = await place(client, first, [item(app)], coupon=coupon.json()["code"], wait=20)
    two = await place(client, second, [item(app), item(tool)], wait=20)
    unpaid = await place(client, late, [item(app), item(tool)], wait=20)  # no money: canceled, counts nothing
    assert [r.json()["status"] for r in (one, two, unpaid)] == ["completed", "completed", "awaiting_payment"], (
        one.text, two.text, unpaid.text)
    assert (await client.post(f"{V1}/orders/{unpaid.json()['id']}/cancel", headers=late.headers)).status_code == 200
    tool_line = next(line for line in two.json()["lines"] if line["listing_id"] == tool["id"])
    refund = await client.post(f"{V1}/orders/{two.json()['id']}/refunds", json={
        "reason": "Did not need it", "lines": [{"line_id": tool_line["id"]}]},
        headers={**second.headers, "Idempotency-Key": uuid.uuid4().hex})
    assert refund.status_code == 201, refund.text
    await quiet(runtime)

    body = (await client.get(f"{V1}/publishers/{seller.slug}/stats", headers=seller.developer.headers)).json()
    today = utcnow().date().isoformat()
    by_slug = {listing["slug"]: listing for listing in body["listings"]}
    app_today = next(d for d in by_slug[app["slug"]]["days"] if d["day"] == today)
    tool_today = next(d for d in by_slug[tool["slug"]]["days"] if d["day"] == today)
    assert (app_today["sales"], app_today["revenue"]["amount"]) == (2, 900 + 1000)  # the coupon's 10 % off
    assert (tool_today["sales"], tool_today["revenue"]["amount"]) == (1, 500 - 500)  # refunded the same day
    assert body["totals"]["revenue"] == {"amount": 1900, "currency": "USD"}
    assert sum(d["revenue"]["amount"] for d in by_slug[app["slug"]]["days"]) == app_today["revenue"]["amount"]


async def happened_on(runtime: Runtime, type_: str, subject: str, time: datetime) -> CloudEvent:
    """The store's own ``type_`` event about ``subject``, as if it had happened at ``time``."""
    [row] = [row for row in await events(runtime, type_) if row.subject == subject]
    return CloudEvent(type=row.type, subject=row.subject, data=row.data, time=time)


async def test_revenue_lands_on_the_day_of_the_sale_and_of_the_refund(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=1000, name="App")
    buyer = await actors.create()
    await fund(runtime, buyer, 1000)
    order = (await place(client, buyer, [item(app)], wait=20)).json()
    assert order["status"] == "completed", order
    await quiet(runtime)
    sold_on, refunded_on = date(2026, 3, 2), date(2026, 3, 4)
    # The same events again, as if they had happened on earlier days: the event's time decides the day.
    async with runtime.db.transaction() as session:
        await stats_handlers.count_revenue(session, [await happened_on(
            runtime, "order.completed", order["id"], datetime(2026, 3, 2, 23, 59, tzinfo=UTC))])
    refund = await client.post(f"{V1}/orders/{order['id']}/refunds", json={"reason": "Changed my mind"},
                               headers={**buyer.headers, "Idempotency-Key": uuid.uuid4().hex})
    assert refund.status_code == 201, refund.text
    await quiet(runtime)
    async with runtime.db.transaction() as session:
        await stats_handlers.count_refunds(session, await happened_on(
            runtime, "refund.completed", refund.json()["id"], datetime(2026, 3, 4, 0, 1, tzinfo=UTC)))
    body = (await client.get(f"{V1}/publishers/{seller.slug}/stats", headers=seller.developer.headers,
                             params={"since": "2026-03-01", "until": "2026-03-05"})).json()
    [shown] = body["listings"]
    assert [(d["day"], d["revenue"]["amount"]) for d in shown["days"]] == [
        ("2026-03-01", 0), (sold_on.isoformat(), 1000), ("2026-03-03", 0), (refunded_on.isoformat(), -1000),
        ("2026-03-05", 0)]
    assert body["totals"]["revenue"]["amount"] == 0
    today = (await client.get(f"{V1}/publishers/{seller.slug}/stats", headers=seller.developer.headers)).json()
    assert today["totals"]["revenue"]["amount"] == 0  # sold and refunded today: net nothing
