"""Matrix rows (A2/A6) of the receipt routes: the buyer and admins read a receipt; to
everyone else it does not exist."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from mercato.kit.clock import utcnow
from mercato.models import Payment
from tests.access.matrix import ADMINS, ANON, V1, Row, World, caller, everyone
from tests.access.matrix_rows_library import a_listing
from tests.support.refunds import completed_order


async def own_order_receipt(world: World, who: str) -> dict[str, Any]:
    listing = await a_listing(world, world.mine, price=600)
    bought = await completed_order(world.runtime, caller(world, who), [(listing, 600, 1, "digital")])
    return {"url": f"{V1}/orders/{bought.order_id}/receipt"}


async def strangers_order_receipt(world: World, who: str) -> dict[str, Any]:
    listing = await a_listing(world, world.mine, price=600)
    bought = await completed_order(world.runtime, await world.actors.create(), [(listing, 600, 1, "digital")])
    return {"url": f"{V1}/orders/{bought.order_id}/receipt"}


async def strangers_payment_receipt(world: World, who: str) -> dict[str, Any]:
    payer_id, _ = await world.new_account()
    now = utcnow()
    payment = Payment(id=uuid.uuid4(), user_id=uuid.UUID(payer_id), provider="sandbox", provider_ref=uuid.uuid4().hex,
                      purpose="topup", amount=1000, currency="USD", status="succeeded",
                      expires_at=now + timedelta(hours=1), succeeded_at=now, created_at=now, updated_at=now)
    async with world.runtime.db.transaction() as session:
        session.add(payment)
    return {"url": f"{V1}/payments/{payment.id}/receipt"}


STRANGERS = {**everyone(404), ANON: 401, **dict.fromkeys(ADMINS, 200)}

MATRIX_ROWS: list[Row] = [
    Row("my order's receipt", "GET", f"{V1}/orders/{{order_id}}/receipt", {**everyone(200), ANON: 401},
        own_order_receipt),
    Row("someone else's order receipt (A2)", "GET", f"{V1}/orders/{{order_id}}/receipt", STRANGERS,
        strangers_order_receipt),
    Row("someone else's payment receipt (A2)", "GET", f"{V1}/payments/{{payment_id}}/receipt", STRANGERS,
        strangers_payment_receipt),
]
