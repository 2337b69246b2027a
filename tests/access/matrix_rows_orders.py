"""Matrix rows (A2/A3/A6) of the order routes: buyers see and cancel their own orders,
admins any; publishers fulfil only orders with a shipment of theirs (others: 404).

Orders are written straight to the database in the state a row needs (the saga is tested
in tests/orders); their lines are free so no money moves when a row's action lets the saga
go on (delivery completes the order and settles nothing).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from mercato.kit.clock import utcnow
from mercato.models import Order, OrderLine, Shipment
from tests.access.matrix import (
    ADMIN,
    ADMINS,
    ANON,
    DEV,
    OTHER_DEV,
    SUPER,
    V1,
    Row,
    World,
    caller,
    dynamic,
    only,
    signed_in,
    static,
)
from tests.access.matrix_rows_library import a_listing


async def an_order(world: World, buyer_id: str, *, status: str = "created", shipment: str | None = None) -> str:
    """An order of ``buyer_id``; with ``shipment``, a physical line of publisher ``mine``
    whose shipment is in that state."""
    listing = await a_listing(world, world.mine)
    publisher_id = uuid.UUID(listing["publisher"]["id"])
    order_id, now = uuid.uuid4(), utcnow()
    paid = status not in ("created", "awaiting_payment")
    async with world.runtime.db.transaction() as session:
        session.add(Order(id=order_id, user_id=uuid.UUID(buyer_id), idempotency_key=f"matrix-{order_id}",
                          status=status, currency="USD", subtotal=0, discount=0, total=0, refunded_amount=0,
                          shipping_address={"name": "A", "line1": "B", "city": "C", "postal_code": "1",
                                            "country": "DE"} if shipment else None,
                          commission_bps=2000, refund_window_days=14, expires_at=now + timedelta(minutes=15),
                          paid_at=now if paid else None, created_at=now, updated_at=now))
        await session.flush()
        session.add(OrderLine(id=uuid.uuid4(), order_id=order_id, position=0, listing_id=uuid.UUID(listing["id"]),
                              publisher_id=publisher_id, title="Matrix App",
                              delivery="physical" if shipment else "digital", quantity=1, unit_price=0, discount=0,
                              total=0, refunded_quantity=0, refunded_amount=0))
        if shipment:
            session.add(Shipment(id=uuid.uuid4(), order_id=order_id, publisher_id=publisher_id, status=shipment,
                                 created_at=now, updated_at=now))
    return str(order_id)


async def my_order(world: World, who: str) -> dict[str, Any]:
    return {"url": f"{V1}/orders/{await an_order(world, caller(world, who).id)}"}


async def strangers_order(world: World, who: str) -> dict[str, Any]:
    stranger, _ = await world.new_account()
    return {"url": f"{V1}/orders/{await an_order(world, stranger)}"}


async def cancel_mine(world: World, who: str) -> dict[str, Any]:
    return {"url": f"{V1}/orders/{await an_order(world, caller(world, who).id, status='awaiting_payment')}/cancel"}


async def cancel_strangers(world: World, who: str) -> dict[str, Any]:
    stranger, _ = await world.new_account()
    return {"url": f"{V1}/orders/{await an_order(world, stranger)}/cancel"}


async def pay_strangers(world: World, who: str) -> dict[str, Any]:
    stranger, _ = await world.new_account()
    return {"url": f"{V1}/orders/{await an_order(world, stranger, status='awaiting_payment')}/pay"}


async def pay_a_paid_one(world: World, who: str) -> dict[str, Any]:
    return {"url": f"{V1}/orders/{await an_order(world, caller(world, who).id, status='completed')}/pay"}


async def fulfil(world: World, verb: str, status: str, shipment: str) -> dict[str, Any]:
    stranger, _ = await world.new_account()
    order_id = await an_order(world, stranger, status=status, shipment=shipment)
    body = {"json": {"carrier": "DHL", "tracking_number": "M1"}} if verb == "ship" else {}
    return {"url": f"{V1}/orders/{order_id}/{verb}", **body}


# Publishers of ``mine`` (the developer) and admins (order:fulfil any) act; the other
# developer has order:fulfil for its own publisher only: the order does not exist for it.
FULFILLERS = {**only(DEV, *ADMINS, status=200), OTHER_DEV: 404}
BUYER_AND_ADMINS = {**signed_in(404), **dict.fromkeys(ADMINS, 200)}

MATRIX_ROWS: list[Row] = [
    # The matrix sends no Idempotency-Key: every signed-in caller passes the permission and then
    # gets 400 for the missing key (tests/orders/test_orders.py covers the 201).
    Row("check out without an Idempotency-Key", "POST", f"{V1}/orders", signed_in(400),
        static(f"{V1}/orders", json={"items": [{"listing_id": str(uuid.uuid4()), "delivery": "digital"}]})),
    Row("my orders", "GET", f"{V1}/orders", signed_in(200), static(f"{V1}/orders")),
    Row("read my order", "GET", f"{V1}/orders/{{order_id}}", signed_in(200), my_order),
    Row("read someone else's order (A2)", "GET", f"{V1}/orders/{{order_id}}", BUYER_AND_ADMINS, strangers_order),
    Row("read an unknown order (A3)", "GET", f"{V1}/orders/{{order_id}}", signed_in(404),
        static(f"{V1}/orders/{uuid.uuid4()}")),
    Row("cancel my unpaid order", "POST", f"{V1}/orders/{{order_id}}/cancel", signed_in(200), cancel_mine),
    Row("cancel someone else's unpaid order (A2)", "POST", f"{V1}/orders/{{order_id}}/cancel", BUYER_AND_ADMINS,
        cancel_strangers),
    Row("pay someone else's order (A2)", "POST", f"{V1}/orders/{{order_id}}/pay", signed_in(404), pay_strangers),
    Row("pay my completed order (A6)", "POST", f"{V1}/orders/{{order_id}}/pay", signed_in(409), pay_a_paid_one),
    Row("ship an order of publisher mine", "POST", f"{V1}/orders/{{order_id}}/ship", FULFILLERS,
        lambda world, who: fulfil(world, "ship", "awaiting_shipment", "awaiting")),
    Row("ship an unpaid order of publisher mine (A6)", "POST", f"{V1}/orders/{{order_id}}/ship",
        {**FULFILLERS, DEV: 409, ADMIN: 409, SUPER: 409},
        lambda world, who: fulfil(world, "ship", "awaiting_payment", "pending")),
    Row("deliver an order of publisher mine", "POST", f"{V1}/orders/{{order_id}}/deliver", FULFILLERS,
        lambda world, who: fulfil(world, "deliver", "shipped", "shipped")),
    Row("a publisher cancels an order awaiting shipment", "POST", f"{V1}/orders/{{order_id}}/cancel",
        {**signed_in(404), DEV: 200, **dict.fromkeys(ADMINS, 200)},
        lambda world, who: fulfil(world, "cancel", "awaiting_shipment", "awaiting")),
    Row("orders of publisher mine", "GET", f"{V1}/publishers/{{slug}}/orders", {**only(DEV, *ADMINS, status=200),
                                                                              OTHER_DEV: 403},
        dynamic(lambda world, who: {"url": f"{V1}/publishers/{world.mine}/orders"})),
    Row("orders of an unknown publisher", "GET", f"{V1}/publishers/{{slug}}/orders",
        {**only(DEV, OTHER_DEV, *ADMINS, status=404)}, static(f"{V1}/publishers/nobody-here/orders")),
]

assert all(row.expect[ANON] == 401 for row in MATRIX_ROWS)

