"""The request budget (kit/budget.py) cuts requests that wait on something slow, but gives a
long poll the ``wait`` it asked for on top."""

from __future__ import annotations

from typing import Any

import httpx

from mercato.kit.budget import RequestBudget
from tests.catalog.support import Shop
from tests.conftest import Actor, Actors
from tests.installs.support import install, published, register


def _budget(app: Any) -> RequestBudget:
    """The app's budget middleware (built at the first request)."""
    layer = app.middleware_stack
    while not isinstance(layer, RequestBudget):
        layer = layer.app
    return layer


async def test_a_long_poll_gets_its_wait_on_top_of_the_budget(app: Any, client: httpx.AsyncClient,
                                                               actors: Actors, user: Actor) -> None:
    listing = await published(await Shop.open(client, actors))
    agent = await register(client, user)
    queued = await install(client, user, agent, listing["id"])  # the agent never takes it
    assert queued.status_code == 202, queued.text
    _budget(app).seconds = 0.5  # set after the arrangements, which a loaded machine may slow down
    waited = await client.get(f"/api/v1/tasks/{queued.json()['id']}", headers=user.headers,
                              params={"wait": 2})
    assert waited.status_code == 202, waited.text  # not finished within `wait`, and not cut at 0.5 s
