"""Matrix rows (A2/A3/A6) of the refund routes.

Every principal buys from the publisher ``mine`` (the developer's); a refund waiting for a
decision is one whose item was downloaded beyond the automatic policy. Only members of
``mine`` and admins decide; the other developer, holding ``refund:decide`` for their own
publisher, finds nothing (404); the buyer and the reviewer lack the permission (403).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update

from mercato.models import Entitlement
from tests.access.matrix import ADMINS, ANON, DEV, OTHER_DEV, REVIEWER, USER, V1, Row, World, caller, signed_in
from tests.access.matrix_rows_library import a_listing
from tests.support.refunds import completed_order


async def a_purchase(world: World, who: str) -> tuple[dict[str, Any], str]:
    buyer = caller(world, who)
    listing = await a_listing(world, world.theirs if who == DEV else world.mine, price=1000)
    bought = await completed_order(world.runtime, buyer, [(listing, 1000, 1, "digital")])
    return listing, bought.order_id


async def refund_own_order(world: World, who: str) -> dict[str, Any]:
    _, order_id = await a_purchase(world, who)
    return {"url": f"{V1}/orders/{order_id}/refunds", "json": {"reason": "Matrix refund"},
            "headers": {"Idempotency-Key": uuid.uuid4().hex}}


async def refund_someone_elses_order(world: World, who: str) -> dict[str, Any]:
    stranger = await world.actors.create()
    listing = await a_listing(world, world.mine, price=1000)
    bought = await completed_order(world.runtime, stranger, [(listing, 1000, 1, "digital")])
    return {"url": f"{V1}/orders/{bought.order_id}/refunds", "json": {"reason": "Not mine"},
            "headers": {"Idempotency-Key": uuid.uuid4().hex}}


async def a_waiting_refund(world: World) -> str:
    """A refund of a sale of ``mine`` by a stranger, waiting for the publisher."""
    stranger = await world.actors.create()
    listing = await a_listing(world, world.mine, price=1000)
    bought = await completed_order(world.runtime, stranger, [(listing, 1000, 1, "digital")])
    async with world.runtime.db.transaction() as session:
        await session.execute(update(Entitlement).where(Entitlement.user_id == uuid.UUID(stranger.id))
                              .values(download_count=99))
    response = await world.client.post(f"{V1}/orders/{bought.order_id}/refunds", json={"reason": "Too late"},
                                       headers={**stranger.headers, "Idempotency-Key": uuid.uuid4().hex})
    assert response.status_code == 201 and response.json()["status"] == "requested", response.text
    return str(response.json()["id"])


def on_waiting_refund(suffix: str, **kwargs: Any):  # type: ignore[no-untyped-def]
    async def make(world: World, who: str) -> dict[str, Any]:
        return {"url": f"{V1}/refunds/{await a_waiting_refund(world)}{suffix}", **kwargs}

    return make


async def list_refunds(world: World, who: str) -> dict[str, Any]:
    return {"url": f"{V1}/refunds"}


DECIDERS = {ANON: 401, USER: 403, REVIEWER: 403, DEV: 200, OTHER_DEV: 404, **dict.fromkeys(ADMINS, 200)}
SEERS = {ANON: 401, USER: 404, REVIEWER: 404, DEV: 200, OTHER_DEV: 404, **dict.fromkeys(ADMINS, 200)}

MATRIX_ROWS: list[Row] = [
    Row("refund my order", "POST", f"{V1}/orders/{{order_id}}/refunds", signed_in(201), refund_own_order),
    Row("refund someone else's order (A2)", "POST", f"{V1}/orders/{{order_id}}/refunds",
        {**signed_in(404)}, refund_someone_elses_order),
    Row("list refunds", "GET", f"{V1}/refunds", signed_in(200), list_refunds),
    Row("see a waiting refund", "GET", f"{V1}/refunds/{{refund_id}}", SEERS, on_waiting_refund("")),
    Row("approve a refund", "POST", f"{V1}/refunds/{{refund_id}}/approve", DECIDERS, on_waiting_refund("/approve")),
    Row("reject a refund", "POST", f"{V1}/refunds/{{refund_id}}/reject", DECIDERS,
        on_waiting_refund("/reject", json={"reason": "Matrix says no"})),
]
