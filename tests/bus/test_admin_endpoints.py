"""E1 / E3: admins read the event history and inspect and replay dead letters.

``GET /admin/events`` lists outbox events newest first, filtered by type, subject and
time, with cursor paging; ``GET /admin/dead-letters`` lists deliveries that failed every
attempt; ``POST /admin/dead-letters/{id}/replay`` gives one a fresh attempt budget.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from mercato.app.runtime import Runtime
from mercato.bus import repository
from mercato.bus.registry import REGISTRY
from mercato.bus.service import wait_idle
from mercato.models import EventDelivery
from tests.support.actors import DEFAULT_PASSWORD, Actor
from tests.support.dead_letters import (  # noqa: F401  (fixtures)
    POISON_SUBSCRIBER,
    Poison,
    dead_letters,
    delivery_of,
    one_attempt_settings,
    poison_subscriber,
    publish_events,
    wait_for_state,
)

V1 = "/api/v1"
EVENTS = f"{V1}/admin/events"
DEAD_LETTERS = f"{V1}/admin/dead-letters"


async def all_pages(client: httpx.AsyncClient, actor: Actor, url: str, **params: Any) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        response = await client.get(url, headers=actor.headers,
                                    params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "paging does not end"


# --- event history (E3) ---------------------------------------------------------------------------

CONTEXT_ATTRIBUTES = {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema"}


def assert_cloudevent(item: dict[str, Any]) -> None:
    """A valid CloudEvents 1.0 JSON event (spec: required attributes, types, extension names)."""
    for required in ("specversion", "id", "source", "type"):
        assert isinstance(item.get(required), str) and item[required], required
    assert item["specversion"] == "1.0"
    datetime.fromisoformat(item["time"])  # RFC 3339
    for name, value in item.items():
        if name in CONTEXT_ATTRIBUTES or name == "data":
            continue
        # An extension attribute: lowercase letters and digits, a string, integer or boolean
        # value; the sequence extension is a string.
        assert re.fullmatch(r"[a-z0-9]{1,20}", name), f"not a CloudEvents attribute name: {name}"
        assert isinstance(value, (str, int, bool)) and value is not None, (name, value)
    assert isinstance(item["sequence"], str)

async def test_events_are_listed_newest_first_as_cloudevents(
        client: httpx.AsyncClient, runtime: Runtime, admin: Actor) -> None:
    subject = f"subject-{uuid.uuid4().hex[:8]}"
    published = await publish_events(runtime, subject, 3)
    response = await client.get(EVENTS, headers=admin.headers, params={"subject": subject})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["id"] for item in items] == [str(event.id) for event in reversed(published)]
    sequences = [int(item["sequence"]) for item in items]
    assert sequences == sorted(sequences, reverse=True) and len(set(sequences)) == 3
    for item in items:
        assert_cloudevent(item)
    first = items[-1]
    assert first["specversion"] == "1.0" and first["datacontenttype"] == "application/json"
    assert first["type"] == "test.admin" and first["source"] == "mercato/tests" and first["subject"] == subject
    assert first["data"] == {"n": 0}
    assert datetime.fromisoformat(first["time"]) == published[0].time


async def test_a_registration_through_the_api_is_in_the_history(
        client: httpx.AsyncClient, admin: Actor) -> None:
    email = f"new-{uuid.uuid4().hex[:8]}@example.org"
    registered = await client.post(f"{V1}/auth/register", json={"email": email, "password": DEFAULT_PASSWORD})
    assert registered.status_code == 201, registered.text
    user_id = registered.json()["id"]
    response = await client.get(EVENTS, headers=admin.headers, params={"type": "user.registered", "subject": user_id})
    assert response.status_code == 200, response.text
    [item] = response.json()["items"]
    assert item["type"] == "user.registered" and item["source"] == "mercato/accounts"
    assert item["data"] == {"user_id": user_id, "email": email}


async def test_events_filter_by_type_and_subject(client: httpx.AsyncClient, runtime: Runtime, admin: Actor) -> None:
    mine, other = f"subject-{uuid.uuid4().hex[:8]}", f"subject-{uuid.uuid4().hex[:8]}"
    plain = await publish_events(runtime, mine, 2)
    poison = await publish_events(runtime, mine, 1, event_type="test.admin_poison")
    await publish_events(runtime, other, 2)

    async def ids(**params: str) -> list[str]:
        response = await client.get(EVENTS, headers=admin.headers, params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids(subject=mine) == [str(e.id) for e in reversed(plain + poison)]
    assert await ids(subject=mine, type="test.admin") == [str(e.id) for e in reversed(plain)]
    assert await ids(subject=mine, type="test.admin_poison") == [str(poison[0].id)]
    assert await ids(subject=mine, type="user.registered") == []
    by_type = await ids(type="test.admin_poison", limit="100")
    assert str(poison[0].id) in by_type
    async with runtime.db.read_session() as session:
        types = {row.type for row in await repository.search_events(
            session, event_type="test.admin_poison", subject=None, since=None, until=None, before_sequence=None,
            limit=1000)}
    assert types == {"test.admin_poison"}


async def test_events_filter_by_time_range(client: httpx.AsyncClient, runtime: Runtime, admin: Actor) -> None:
    subject = f"subject-{uuid.uuid4().hex[:8]}"
    start = datetime(2031, 5, 1, 12, 0, tzinfo=UTC)
    events = await publish_events(runtime, subject, 5, start=start, step=timedelta(hours=1))  # 12:00 … 16:00

    async def ns(**params: str) -> list[int]:
        response = await client.get(EVENTS, headers=admin.headers, params={"subject": subject, **params})
        assert response.status_code == 200, response.text
        return [item["data"]["n"] for item in response.json()["items"]]

    assert await ns(since="2031-05-01T13:00:00Z") == [4, 3, 2, 1]                      # since is inclusive
    assert await ns(until="2031-05-01T14:00:00Z") == [1, 0]                            # until is exclusive
    assert await ns(since="2031-05-01T13:00:00Z", until="2031-05-01T15:00:00Z") == [2, 1]
    assert await ns(since="2031-05-01T15:30:00+02:00") == [4, 3, 2]                   # 13:30 UTC
    assert await ns(since="2031-05-02T00:00:00Z") == []
    assert len(events) == 5


async def test_a_time_without_a_timezone_is_refused(client: httpx.AsyncClient, admin: Actor) -> None:
    for name in ("since", "until"):
        response = await client.get(EVENTS, headers=admin.headers, params={name: "2031-05-01T13:00:00"})
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_failed"


async def test_event_pages_have_no_gaps_or_duplicates(client: httpx.AsyncClient, runtime: Runtime,
                                                      admin: Actor) -> None:
    subject = f"subject-{uuid.uuid4().hex[:8]}"
    published = await publish_events(runtime, subject, 7)
    first = await client.get(EVENTS, headers=admin.headers, params={"subject": subject, "limit": 3})
    assert first.status_code == 200, first.text
    body = first.json()
    assert len(body["items"]) == 3 and body["next_cursor"]
    # Events published while paging are newer than the first page: later pages go on where it stopped.
    newer = await publish_events(runtime, subject, 2)
    seen = [item["id"] for item in body["items"]]
    cursor = body["next_cursor"]
    sizes = [3]
    while cursor:
        response = await client.get(EVENTS, headers=admin.headers, params={"subject": subject, "limit": 3,
                                                                           "cursor": cursor})
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["id"] for item in body["items"]]
        sizes.append(len(body["items"]))
        cursor = body["next_cursor"]
    assert seen == [str(e.id) for e in reversed(published)]
    assert sizes == [3, 3, 1]
    # From the top again, everything, each once.
    pages = await all_pages(client, admin, EVENTS, subject=subject, limit=4)
    assert [item["id"] for page in pages for item in page] == [str(e.id) for e in reversed(published + newer)]
    assert [len(page) for page in pages] == [4, 4, 1]


async def test_an_exact_page_has_no_next_cursor(client: httpx.AsyncClient, runtime: Runtime, admin: Actor) -> None:
    subject = f"subject-{uuid.uuid4().hex[:8]}"
    await publish_events(runtime, subject, 4)
    pages = await all_pages(client, admin, EVENTS, subject=subject, limit=2)
    assert [len(page) for page in pages] == [2, 2]


@pytest.mark.parametrize("cursor", ["garbage", "c2VxOm5vdGFudW1iZXI", "Zm9vOjEy", "c2VxOi0x",
                                    "c2VxOjk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "%%%"])
async def test_an_invalid_event_cursor_is_a_422(client: httpx.AsyncClient, admin: Actor, cursor: str) -> None:
    # seq:notanumber, foo:12, seq:-1, seq:<too large for any sequence>
    response = await client.get(EVENTS, headers=admin.headers, params={"cursor": cursor})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_cursor"


async def test_events_filters_are_validated(client: httpx.AsyncClient, admin: Actor) -> None:
    for params in ({"limit": 0}, {"limit": 101}, {"type": "x" * 101}, {"subject": "x" * 129}, {"since": "yesterday"}):
        response = await client.get(EVENTS, headers=admin.headers, params=params)
        assert response.status_code == 422, (params, response.text)


# --- dead letters (E1) ----------------------------------------------------------------------------

async def test_a_delivery_that_fails_every_attempt_is_listed_as_a_dead_letter(
        client: httpx.AsyncClient, runtime: Runtime, admin: Actor, poison: Poison) -> None:
    [dead] = await dead_letters(runtime, poison, 1)
    response = await client.get(DEAD_LETTERS, headers=admin.headers)
    assert response.status_code == 200, response.text
    [item] = [item for item in response.json()["items"] if item["id"] == str(dead.id)]
    assert item["subscriber"] == POISON_SUBSCRIBER
    assert item["event_id"] == str(dead.event_id) and item["event_type"] == "test.admin_poison"
    assert item["subject"] == dead.subject and item["attempts"] == 1 and item["state"] == "dead"
    assert "RuntimeError: poison event #0" in item["last_error"]
    assert datetime.fromisoformat(item["failed_at"]) == dead.updated_at
    # The event itself is in the history.
    events = await client.get(EVENTS, headers=admin.headers, params={"subject": dead.subject})
    assert [e["id"] for e in events.json()["items"]] == [str(dead.event_id)]


async def test_dead_letters_filter_by_subscriber_and_page_newest_first(
        client: httpx.AsyncClient, runtime: Runtime, admin: Actor, poison: Poison) -> None:
    dead = await dead_letters(runtime, poison, 5)
    pages = await all_pages(client, admin, DEAD_LETTERS, subscriber=POISON_SUBSCRIBER, limit=2)
    assert [len(page) for page in pages] == [2, 2, 1]
    listed = [item["id"] for page in pages for item in page]
    expected = sorted(dead, key=lambda d: (d.updated_at, d.id), reverse=True)
    assert listed == [str(d.id) for d in expected]
    other = await client.get(DEAD_LETTERS, headers=admin.headers, params={"subscriber": "no.such.subscriber"})
    assert other.status_code == 200 and (other.json()["items"], other.json()["next_cursor"]) == ([], None)
    bad = await client.get(DEAD_LETTERS, headers=admin.headers, params={"cursor": "garbage"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_cursor"


async def test_a_replayed_dead_letter_is_pending_audited_and_delivered_once_fixed(
        client: httpx.AsyncClient, runtime: Runtime, admin: Actor, poison: Poison) -> None:
    [dead] = await dead_letters(runtime, poison, 1)
    poison.fixed = True
    response = await client.post(f"{DEAD_LETTERS}/{dead.id}/replay", headers=admin.headers)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["id"] == str(dead.id) and body["state"] == "pending" and body["attempts"] == 0
    assert body["event_id"] == str(dead.event_id) and body["subscriber"] == POISON_SUBSCRIBER
    # The redelivery sweep hands it to the (now fixed) subscriber: delivered, once.
    done = await wait_for_state(runtime, dead.event_id, "done")
    assert done.last_error is None
    assert poison.handled == [dead.event_id]
    listed = await client.get(DEAD_LETTERS, headers=admin.headers, params={"subscriber": POISON_SUBSCRIBER})
    assert listed.json()["items"] == []
    # One audit row, with the state before and after.
    audit = await client.get(f"{V1}/admin/audit", headers=admin.headers, params={"action": "dead_letter:replay"})
    assert audit.status_code == 200, audit.text
    [row] = audit.json()["items"]
    assert row["actor_id"] == admin.id and row["result"] == "success"
    assert row["resource_type"] == "dead_letter" and row["resource_id"] == str(dead.id)
    assert row["before"] == {"state": "dead", "attempts": 1} and row["after"] == {"state": "pending"}


async def test_a_replayed_dead_letter_that_fails_again_is_dead_again(
        client: httpx.AsyncClient, runtime: Runtime, admin: Actor, poison: Poison) -> None:
    [dead] = await dead_letters(runtime, poison, 1)
    response = await client.post(f"{DEAD_LETTERS}/{dead.id}/replay", headers=admin.headers)
    assert response.status_code == 202, response.text
    again = await wait_for_state(runtime, dead.event_id, "dead")
    assert again.attempts == 1 and again.updated_at > dead.updated_at
    assert poison.handled == []


async def test_only_a_dead_letter_can_be_replayed(
        client: httpx.AsyncClient, runtime: Runtime, admin: Actor, poison: Poison) -> None:
    [dead] = await dead_letters(runtime, poison, 1)
    poison.fixed = True
    first = await client.post(f"{DEAD_LETTERS}/{dead.id}/replay", headers=admin.headers)
    assert first.status_code == 202, first.text
    again = await client.post(f"{DEAD_LETTERS}/{dead.id}/replay", headers=admin.headers)  # pending or done now
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "invalid_transition"
    await wait_for_state(runtime, dead.event_id, "done")
    done = await client.post(f"{DEAD_LETTERS}/{dead.id}/replay", headers=admin.headers)
    assert done.status_code == 409 and done.json()["code"] == "invalid_transition"
    # A healthy delivery of another subscriber is not a dead letter either (the admin's
    # sign-up gave the wallet one).
    await wait_idle(runtime.db, REGISTRY)
    async with runtime.db.read_session() as session:
        healthy = await session.scalar(select(EventDelivery).where(
            EventDelivery.subscriber == "wallet.welcome_credit", EventDelivery.state == "done").limit(1))
    assert healthy is not None
    other = await client.post(f"{DEAD_LETTERS}/{healthy.id}/replay", headers=admin.headers)
    assert other.status_code == 409 and other.json()["code"] == "invalid_transition"
    audit = await client.get(f"{V1}/admin/audit", headers=admin.headers, params={"action": "dead_letter:replay"})
    assert len(audit.json()["items"]) == 1, "refused replays change nothing and leave no success row"


async def test_replaying_an_unknown_dead_letter_is_a_404(client: httpx.AsyncClient, admin: Actor) -> None:
    response = await client.post(f"{DEAD_LETTERS}/{uuid.uuid4()}/replay", headers=admin.headers)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "dead_letter_not_found"
    malformed = await client.post(f"{DEAD_LETTERS}/not-a-uuid/replay", headers=admin.headers)
    assert malformed.status_code == 422, malformed.text


async def test_a_super_admin_may_replay(client: httpx.AsyncClient, runtime: Runtime, super_admin: Actor,
                                        poison: Poison) -> None:
    [dead] = await dead_letters(runtime, poison, 1)
    response = await client.post(f"{DEAD_LETTERS}/{dead.id}/replay", headers=super_admin.headers)
    assert response.status_code == 202, response.text


# --- access ---------------------------------------------------------------------------------------

async def test_users_may_not_read_events_or_dead_letters(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor, admin: Actor, poison: Poison) -> None:
    [dead] = await dead_letters(runtime, poison, 1)
    for method, url in (("GET", EVENTS), ("GET", DEAD_LETTERS), ("POST", f"{DEAD_LETTERS}/{dead.id}/replay"),
                        ("POST", f"{DEAD_LETTERS}/{uuid.uuid4()}/replay")):
        response = await client.request(method, url, headers=user.headers)
        assert response.status_code == 403, (method, url, response.text)
        anonymous = await client.request(method, url)
        assert anonymous.status_code == 401, (method, url, anonymous.text)
    assert (await delivery_of(runtime, dead.event_id)).state == "dead"  # type: ignore[union-attr]
    listed = await client.get(DEAD_LETTERS, headers=admin.headers, params={"subscriber": POISON_SUBSCRIBER})
    assert [item["id"] for item in listed.json()["items"]] == [str(dead.id)]
