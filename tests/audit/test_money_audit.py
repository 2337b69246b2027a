"""Buyers' money movements leave audit rows (the buyer, or ``system`` for the saga's steps),
written with the change; order and install-task outcomes are counted in /metrics once each,
when their transition commits (a rolled-back attempt counts nothing)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from mercato.app.runtime import Runtime
from mercato.audit.service import SYSTEM_ACTOR
from mercato.kit.clock import utcnow
from mercato.kit.metrics import REGISTRY
from mercato.models import AuditEntry
from mercato.orders import service as orders
from tests.catalog.support import Shop
from tests.installs.support import install, published, register
from tests.support.actors import Actor, Actors
from tests.support.orders import Seller, fund, item, place, quiet, until
from tests.support.refunds import completed_order


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def trail(runtime: Runtime, resource_id: str) -> list[tuple[str, str | None, str | None]]:
    """(action, actor id, actor e-mail) of every audit row about ``resource_id``, oldest first."""
    async with runtime.db.read_session() as session:
        rows = await session.scalars(select(AuditEntry).where(AuditEntry.resource_id == resource_id)
                                     .order_by(AuditEntry.at))
        return [(row.action, str(row.actor_id) if row.actor_id else None, row.actor_email) for row in rows]


async def test_a_purchase_is_audited_step_by_step_and_counted_once(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=1500)
    await fund(runtime, user, 1500)
    completed_before = counted("mercato_orders_total", outcome="completed")
    order = (await place(client, user, [item(app)], wait=20)).json()
    assert order["status"] == "completed"
    await quiet(runtime)
    assert await trail(runtime, order["id"]) == [
        ("order:create", user.id, user.email),      # the buyer's request
        ("order:pay", None, SYSTEM_ACTOR),          # the saga debits the wallet
        ("order:complete", None, SYSTEM_ACTOR),     # ... and completes it once entitled
    ]
    assert counted("mercato_orders_total", outcome="completed") == completed_before + 1


async def test_an_automatic_refund_is_audited_as_the_store_s_decision(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=1000)
    bought = await completed_order(runtime, user, [(app, 1000, 1, "digital")])
    refunded_before = counted("mercato_orders_total", outcome="refunded")
    response = await client.post(f"/api/v1/orders/{bought.order_id}/refunds", json={"reason": "Changed my mind"},
                                 headers={**user.headers, "Idempotency-Key": uuid.uuid4().hex})
    assert response.status_code == 201, response.text
    refund_id = response.json()["id"]
    await quiet(runtime)
    assert await trail(runtime, refund_id) == [
        ("refund:request", user.id, user.email),
        ("refund:approve", None, SYSTEM_ACTOR),   # inside the policy: nobody decided
        ("refund:complete", None, SYSTEM_ACTOR),  # the money went back
    ]
    assert counted("mercato_orders_total", outcome="refunded") == refunded_before + 1


async def test_an_expiry_counts_once_when_it_commits_and_not_when_it_rolls_back(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, user: Actor) -> None:
    seller = await Seller.open(client, actors, runtime)
    app = await seller.listing(digital=700)
    order = (await place(client, user, [item(app)])).json()  # no money: it waits for payment
    await until(runtime, order["id"], "awaiting_payment")
    expired_before = counted("mercato_orders_total", outcome="expired")
    later = utcnow() + timedelta(days=1)

    with pytest.raises(RuntimeError):  # an attempt that fails after the transition: nothing happened
        async with runtime.db.transaction() as session:
            assert await orders.expire_due(session, now=later) == 1
            raise RuntimeError("the sweep's transaction fails")
    assert counted("mercato_orders_total", outcome="expired") == expired_before
    assert ("order:expire", None, SYSTEM_ACTOR) not in await trail(runtime, order["id"])

    async with runtime.db.transaction() as session:  # the retry
        assert await orders.expire_due(session, now=later) == 1
    async with runtime.db.transaction() as session:  # and a second run finds nothing to do
        assert await orders.expire_due(session, now=later) == 0
    assert counted("mercato_orders_total", outcome="expired") == expired_before + 1
    assert (await trail(runtime, order["id"]))[-1] == ("order:expire", None, SYSTEM_ACTOR)


async def test_install_task_outcomes_are_counted_once_by_kind(
        client: httpx.AsyncClient, actors: Actors, user: Actor) -> None:
    shop = await Shop.open(client, actors)
    listing = await published(shop)
    agent = await register(client, user)
    before = counted("mercato_install_tasks_total", kind="install", outcome="succeeded")
    assert (await install(client, user, agent, listing["id"])).status_code == 202
    [task] = await agent.fetch()
    assert (await agent.result(task["id"])).status_code == 200
    assert (await agent.result(task["id"])).status_code == 200  # repeated by the agent: the first one counts
    assert counted("mercato_install_tasks_total", kind="install", outcome="succeeded") == before + 1
    assert "mercato_install_tasks_total" in (await client.get("/metrics")).text
