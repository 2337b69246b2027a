"""The admin health page and dead letters in the console (one attempt per delivery here, so a
failing subscriber's event is a dead letter at once: the bus tests' settings and poison subscriber)."""

from __future__ import annotations

import re

import httpx

from mercato.app.runtime import Runtime
from tests.catalog.support import V1, Shop
from tests.support.actors import Actors
from tests.support.dead_letters import (  # noqa: F401  (fixtures)
    Poison,
    dead_letters,
    one_attempt_settings,
    poison_subscriber,
    wait_for_state,
)
from tests.support.pages import TOKEN, as_person


async def test_the_health_page_shows_the_review_queue_and_dead_letters(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, poison: Poison) -> None:
    shop = await Shop.open(client, actors)
    listing = await shop.listing()
    assert (await shop.upload(listing["slug"], "1.0.0")).status_code == 201
    await shop.submit(listing["slug"], "1.0.0")
    [dead] = await dead_letters(runtime, poison, 1)
    as_person(client, shop.admin)
    page = await client.get("/console/admin")
    assert re.search(r'id="review-queue">1<', page.text)
    assert re.search(r'id="dead-letters">1<', page.text)
    listed = await client.get("/console/admin/dead-letters")
    assert str(dead.id) in listed.text and "poison event" in listed.text
    poison.fixed = True
    token = TOKEN.search(listed.text).group(1)  # type: ignore[union-attr]
    replayed = await client.post(f"/console/admin/dead-letters/{dead.id}/replay", data={"csrf_token": token})
    assert replayed.status_code == 303
    assert (await wait_for_state(runtime, dead.event_id, "done")).last_error is None
    again = await client.post(f"/console/admin/dead-letters/{dead.id}/replay", data={"csrf_token": token})
    assert again.status_code == 409
    audit = await client.get(f"{V1}/admin/audit", headers=shop.admin.headers, params={"action": "dead_letter:replay"})
    assert len(audit.json()["items"]) == 1
