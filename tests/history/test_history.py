"""Operation history (O2): recorded from events, filtered, paged and purged."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from mercato.app.runtime import Runtime
from mercato.bus.events import EVENT_TYPES, CloudEvent
from mercato.history import handlers, service
from mercato.kit.clock import utcnow
from tests.library.support import eventually
from tests.support.actors import Actor, Actors
from tests.support.orders import Seller, fund, item, place, quiet, until

V1 = "/api/v1"


async def history(client: httpx.AsyncClient, who: Actor, **params: Any) -> dict[str, Any]:
    response = await client.get(f"{V1}/me/history", headers=who.headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def record(runtime: Runtime, event_type: str, user: Actor, *, days_ago: float = 0, **data: Any) -> CloudEvent:
    event = CloudEvent(type=event_type, subject=str(uuid.uuid4()), data={"user_id": user.id, **data},
                       time=utcnow() - timedelta(days=days_ago))
    async with runtime.db.transaction() as session:
        await service.record(session, event)
    return event


async def test_a_purchase_shows_in_the_buyers_history_and_nobody_elses(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    seller = await Seller.open(client, actors, runtime)
    listing = await seller.listing(digital=500)
    buyer, stranger = await actors.create(), await actors.create()
    await fund(runtime, buyer, 1000)
    placed = await place(client, buyer, [item(listing)])
    assert placed.status_code in (200, 201, 202), placed.text
    await until(runtime, placed.json()["id"], "completed")
    await quiet(runtime)

    mine = await history(client, buyer, type="purchase")
    actions = {entry["action"] for entry in mine["items"]}
    assert {"order.created", "order.completed"} <= actions
    assert {entry["kind"] for entry in mine["items"]} == {"purchase"}
    completed = next(e for e in mine["items"] if e["action"] == "order.completed")
    assert completed["subject"] == placed.json()["id"] and completed["title"] == "Purchase completed"
    library = await history(client, buyer, type="library")
    assert [e["listing_id"] for e in library["items"]] == [listing["id"]]
    assert (await history(client, stranger))["items"] == []


async def test_publishing_actions_reach_the_members_of_the_publisher(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> None:
    seller = await Seller.open(client, actors, runtime)
    listing = await seller.listing(digital=0)

    async def created() -> list[dict[str, Any]]:
        return [e for e in (await history(client, seller.developer, type="publishing"))["items"]
                if e["action"] == "listing.created"]

    entries = await eventually(created, lambda found: len(found) == 1)
    assert entries[0]["listing_id"] == listing["id"] and entries[0]["kind"] == "publishing"


async def test_filters_and_cursor_pages_newest_first(client: httpx.AsyncClient, user: Actor,
                                                      runtime: Runtime) -> None:
    old = await record(runtime, "refund.requested", user, days_ago=3, refund_id="r1")
    middle = await record(runtime, "order.created", user, days_ago=2)
    new = await record(runtime, "rating.created", user, days_ago=1, rating=5)

    first = await history(client, user, limit=2, total="true")
    assert [e["action"] for e in first["items"]] == [new.type, middle.type] and first["total"] == 3
    second = await history(client, user, limit=2, cursor=first["next_cursor"])
    assert [e["action"] for e in second["items"]] == [old.type] and second["next_cursor"] is None

    refunds = await history(client, user, type=["refund", "review"])
    assert [e["action"] for e in refunds["items"]] == [new.type, old.type]
    by_action = await history(client, user, action="order.created")
    assert [e["subject"] for e in by_action["items"]] == [middle.subject]
    window = await history(client, user, since=(middle.time - timedelta(hours=1)).isoformat(),
                           until=(new.time - timedelta(hours=1)).isoformat())
    assert [e["subject"] for e in window["items"]] == [middle.subject]


@pytest.mark.parametrize(("params", "code"), [
    ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "invalid_range"),
    ({"cursor": "not-a-cursor"}, "invalid_cursor"),
    ({"type": "gossip"}, "validation_failed"),
    ({"since": "1700000000"}, "validation_failed"),
], ids=["since-after-until", "bad-cursor", "unknown-type", "unix-time"])
async def test_bad_filters_are_refused(client: httpx.AsyncClient, user: Actor, params: dict[str, str],
                                       code: str) -> None:
    response = await client.get(f"{V1}/me/history", headers=user.headers, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code


async def test_history_needs_a_signed_in_caller(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{V1}/me/history")).status_code == 401


async def test_a_redelivered_event_is_recorded_once(user: Actor, client: httpx.AsyncClient,
                                                    runtime: Runtime) -> None:
    event = await record(runtime, "order.paid", user)
    async with runtime.db.transaction() as session:
        assert await service.record(session, event) == 0
    assert len((await history(client, user))["items"]) == 1


async def test_the_retention_sweep_purges_entries_past_the_period(client: httpx.AsyncClient, user: Actor,
                                                                   runtime: Runtime) -> None:
    await record(runtime, "order.created", user, days_ago=31)
    kept = await record(runtime, "order.completed", user, days_ago=29)
    assert runtime.settings.history_retention_days == 30
    await handlers.purge_history(runtime)
    assert [e["subject"] for e in (await history(client, user))["items"]] == [kept.subject]


def test_every_mapped_type_is_declared_and_install_families_are_covered() -> None:
    assert set(service.RULES) <= set(EVENT_TYPES)
    assert service.rule_for("task.completed") == service.Rule("install", "user", "Task completed")
    assert service.rule_for("installation.upgraded").kind == "install"  # type: ignore[union-attr]
    assert service.rule_for("user.registered") is None
    assert service.rule_for("task.progress") is None  # a step, not an operation
    declared_installs = {t for t in EVENT_TYPES if t.startswith(("task.", "installation."))} - service.SKIPPED
    assert declared_installs <= set(service.recorded_types())
