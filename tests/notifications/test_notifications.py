"""O5 (in-app) and P5: events become notifications for the right people, once; the inbox."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from mercato.app.runtime import Runtime
from mercato.bus.events import CloudEvent
from mercato.models import Notification, OutboxEvent
from mercato.notifications import handlers
from mercato.notifications import service as notifications
from tests.library.support import V1, Store, eventually
from tests.support.actors import Actor, Actors


@pytest.fixture
async def store(client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> Store:
    return await Store.open(client, actors, runtime)


async def publisher_id(client: httpx.AsyncClient, store: Store) -> str:
    return str((await client.get(f"{V1}/publishers/{store.publisher}")).json()["id"])


async def inbox_of(runtime: Runtime, user: Actor, kind: str | None = None) -> list[Notification]:
    async with runtime.db.read_session() as session:
        query = select(Notification).where(Notification.user_id == uuid.UUID(user.id))
        if kind:
            query = query.where(Notification.kind == kind)
        return list(await session.scalars(query.order_by(Notification.created_at)))


async def announced(runtime: Runtime, notification_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    async with runtime.db.read_session() as session:
        rows = await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "notification.created"))
        return [row.data for row in rows if uuid.UUID(row.data["notification_id"]) in notification_ids]


async def run(runtime: Runtime, handler: Any, event: CloudEvent) -> None:
    """What the bus does for a subscriber: the handler in a transaction of its own."""
    async with runtime.db.transaction() as session:
        await handler(session, event)


# --- handlers --------------------------------------------------------------------------------------

async def test_a_publishing_change_notifies_every_member_of_the_publisher_once(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    listing = await store.listing(name="Hello Notes")
    event = CloudEvent(type="listing.suspended", subject=listing["id"], data={
        "listing_id": listing["id"], "publisher_id": await publisher_id(client, store), "slug": listing["slug"],
        "reason": "Malware report"})
    await run(runtime, handlers.notify_publisher_members, event)
    await run(runtime, handlers.notify_publisher_members, event)  # redelivered

    for member in (store.developer, store.member):
        [notification] = await inbox_of(runtime, member, "listing.suspended")
        assert (notification.title, notification.body) == ("Hello Notes was suspended", "Reason: Malware report")
        link = f"/console/publisher/{store.publisher}/listings/{listing['id']}"  # a page, not /api/v1
        assert (notification.event_id, notification.link) == (event.id, link)
    assert await inbox_of(runtime, user) == []
    assert await inbox_of(runtime, store.admin) == []
    ids = [n.id for m in (store.developer, store.member) for n in await inbox_of(runtime, m, "listing.suspended")]
    live = await announced(runtime, ids)
    assert sorted(d["user_id"] for d in live) == sorted([store.developer.id, store.member.id])


@pytest.mark.parametrize(("event_type", "extra", "title"), [
    ("review.approved", {"version": "1.2.0"}, "Hello Notes 1.2.0 was approved"),
    ("review.rejected", {"version": "1.2.0", "reason": "Crashes"}, "Hello Notes 1.2.0 was rejected"),
    ("review.changes_requested", {"version": "1.2.0", "reason": "Icon"}, "Changes requested for Hello Notes 1.2.0"),
    ("review.appeal_upheld", {"version": "1.2.0"}, "Your appeal for Hello Notes 1.2.0 was upheld"),
    ("review.appeal_denied", {"version": "1.2.0", "reason": "No"}, "Your appeal for Hello Notes 1.2.0 was denied"),
    ("version.approved", {"version": "1.2.0", "latest": True}, "Hello Notes 1.2.0 is available"),
    ("version.yanked", {"version": "1.2.0", "reason": "Bug"}, "Hello Notes 1.2.0 was yanked"),
    ("listing.published", {}, "Hello Notes is published"),
    ("listing.unsuspended", {"status": "published"}, "Hello Notes is no longer suspended"),
    ("rating.created", {"rating": 4, "review_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4())},
     "New 4-star review of Hello Notes"),
])
async def test_each_decision_and_change_reaches_the_publisher(
        store: Store, client: httpx.AsyncClient, runtime: Runtime, event_type: str, extra: dict[str, Any],
        title: str) -> None:
    listing = await store.listing(name="Hello Notes")
    event = CloudEvent(type=event_type, subject=listing["id"], data={
        "listing_id": listing["id"], "publisher_id": await publisher_id(client, store), "slug": listing["slug"],
        **extra})
    await run(runtime, handlers.notify_publisher_members, event)
    for member in (store.developer, store.member):
        assert [n.title for n in await inbox_of(runtime, member, event_type)] == [title]
        # nobody else's identity travels in the notification
        assert all("user_id" not in n.data for n in await inbox_of(runtime, member, event_type))


async def test_a_reply_notifies_the_reviews_author(store: Store, client: httpx.AsyncClient,
                                                   runtime: Runtime) -> None:
    listing = await store.listing(name="Hello Notes")
    author = await store.owner(listing)
    review = await store.review(listing, author, rating=2)
    response = await client.post(f"{V1}/listings/{listing['slug']}/reviews/{review['id']}/reply",
                                 headers=store.developer.headers, json={"body": "Thanks, fixed."})
    assert response.status_code == 200
    # the embedded bus delivers rating.replied to the handler in the background
    [notification] = await eventually(lambda: inbox_of(runtime, author, "rating.replied"), lambda rows: len(rows) == 1)
    assert notification.title == "The publisher of Hello Notes replied to your review"
    assert notification.link == f"/listings/{listing['id']}#reviews"
    new_review = await eventually(lambda: inbox_of(runtime, store.developer, "rating.created"),
                                  lambda rows: len(rows) == 1)
    assert new_review[0].title == "New 2-star review of Hello Notes"
    assert await inbox_of(runtime, author, "rating.created") == []


async def test_a_review_decision_through_the_queue_notifies_the_publisher(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    from tests.catalog.support import Shop

    shop = await Shop.open(client, actors)
    listing = await shop.published(name="Queue Notes")
    approved = await eventually(lambda: inbox_of(runtime, shop.developer, "review.approved"), lambda r: len(r) == 1)
    assert approved[0].title == "Queue Notes 1.0.0 was approved"
    await eventually(lambda: inbox_of(runtime, shop.developer, "listing.published"), lambda r: len(r) == 1)
    assert listing["status"] == "published"


async def test_notify_makes_one_notification_per_user_and_event(runtime: Runtime, user: Actor) -> None:
    event_id = uuid.uuid4()
    for _ in range(3):
        async with runtime.db.transaction() as session:
            await notifications.notify(session, event_id=event_id, user_ids=[uuid.UUID(user.id)] * 2,
                                       kind="listing.published", title="Hi")
    async with runtime.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(Notification)) == 1


# --- the inbox -------------------------------------------------------------------------------------

async def notify(runtime: Runtime, user: Actor, title: str) -> None:
    async with runtime.db.transaction() as session:
        await notifications.notify(session, event_id=uuid.uuid4(), user_ids=[uuid.UUID(user.id)],
                                   kind="listing.published", title=title)


async def test_the_inbox_lists_newest_first_with_unread_count_and_pages(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, user: Actor) -> None:
    for n in range(5):
        await notify(runtime, user, f"n{n}")
    someone = await actors.create()
    await notify(runtime, someone, "not yours")

    seen: list[str] = []
    cursor = None
    while True:
        response = await client.get(f"{V1}/notifications", headers=user.headers,
                                    params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["unread_count"] == 5
        seen += [item["title"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["n4", "n3", "n2", "n1", "n0"]
    assert "not yours" not in (await client.get(f"{V1}/notifications", headers=user.headers)).text


async def test_reading_marks_one_or_all_and_the_unread_filter_follows(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    for n in range(3):
        await notify(runtime, user, f"n{n}")
    items = (await client.get(f"{V1}/notifications", headers=user.headers)).json()["items"]
    read = await client.post(f"{V1}/notifications/{items[0]['id']}/read", headers=user.headers)
    assert read.status_code == 200
    assert (read.json()["read"], read.json()["read_at"] is not None) == (True, True)
    again = await client.post(f"{V1}/notifications/{items[0]['id']}/read", headers=user.headers)
    assert again.status_code == 200 and again.json()["read_at"] == read.json()["read_at"]
    unread = (await client.get(f"{V1}/notifications", headers=user.headers, params={"unread": "true"})).json()
    assert ([i["title"] for i in unread["items"]], unread["unread_count"]) == (["n1", "n0"], 2)
    marked = await client.post(f"{V1}/notifications/read-all", headers=user.headers)
    assert marked.json() == {"marked": 2}
    assert (await client.post(f"{V1}/notifications/read-all", headers=user.headers)).json() == {"marked": 0}
    after = (await client.get(f"{V1}/notifications", headers=user.headers)).json()
    assert (after["unread_count"], len(after["items"])) == (0, 3)


async def test_someone_elses_notification_is_not_found(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, user: Actor) -> None:
    someone = await actors.create()
    await notify(runtime, someone, "private")
    [theirs] = await inbox_of(runtime, someone)
    for target in (theirs.id, uuid.uuid4()):
        response = await client.post(f"{V1}/notifications/{target}/read", headers=user.headers)
        assert (response.status_code, response.json()["code"]) == (404, "notification_not_found")
    assert (await client.post(f"{V1}/notifications/read-all", headers=user.headers)).json() == {"marked": 0}
    [still] = await inbox_of(runtime, someone)
    assert still.read_at is None


async def test_the_inbox_needs_a_signed_in_caller(client: httpx.AsyncClient) -> None:
    for method, url in (("GET", f"{V1}/notifications"), ("POST", f"{V1}/notifications/read-all"),
                        ("POST", f"{V1}/notifications/{uuid.uuid4()}/read")):
        assert (await client.request(method, url)).status_code == 401
