"""The request budget (kit/budget.py) cuts requests that wait on something slow, but gives a
long poll the ``wait`` it asked for on top."""

from __future__ import annotations

from typing import Any

import httpx

from tests.catalog.support import Shop
from tests.installs.support import install, published, register
from tests.kit.support import budget_of
from tests.support.actors import Actor, Actors


async def test_a_long_poll_gets_its_wait_on_top_of_the_budget(app: Any, client: httpx.AsyncClient,
                                                               actors: Actors, user: Actor) -> None:
    listing = await published(await Shop.open(client, actors))
    agent = await register(client, user)
    queued = await install(client, user, agent, listing["id"])  # the agent never takes it
    assert queued.status_code == 202, queued.text
    budget_of(app).seconds = 2.0  # after the arrangements
    waited = await client.get(f"/api/v1/tasks/{queued.json()['id']}", headers=user.headers,
                              params={"wait": 4})
    assert waited.status_code == 202, waited.text  # not finished within `wait`, and not cut at 2 s
