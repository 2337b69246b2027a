"""Matrix rows (A2/A3) of the payment routes: a user's own payments, admins any, everyone
else 404; the providers' webhook and the sandbox's pages need no credentials."""

from __future__ import annotations

import uuid
from typing import Any

from tests.access.matrix import ADMINS, SUPER, USER, V1, Row, World, dynamic, everyone, signed_in, static


async def a_topup_of(world: World, who: str) -> dict[str, Any]:
    """A payment of the plain user (made by them), read by each principal."""
    owner = world.who[USER]
    response = await world.client.post(f"{V1}/wallet/topups", headers={**owner.headers,
                                                                      "Idempotency-Key": uuid.uuid4().hex},
                                       json={"amount": 500})
    assert response.status_code == 201, response.text
    return {"url": f"{V1}/payments/{response.json()['id']}"}


MATRIX_ROWS: list[Row] = [
    # The matrix sends no Idempotency-Key: every signed-in caller passes the permission and then
    # gets 400 for the missing key (tests/payments/test_payments.py covers the 201).
    Row("top up my wallet without an Idempotency-Key", "POST", f"{V1}/wallet/topups", signed_in(400),
        static(f"{V1}/wallet/topups", json={"amount": 1000})),
    Row("my payments", "GET", f"{V1}/payments", signed_in(200), static(f"{V1}/payments")),
    Row("read the user's payment (own / admins any / others 404)", "GET", f"{V1}/payments/{{payment_id}}",
        {**signed_in(404), USER: 200, **dict.fromkeys(ADMINS, 200)}, dynamic(a_topup_of)),
    Row("read an unknown payment", "GET", f"{V1}/payments/{{payment_id}}", signed_in(404),
        static(f"{V1}/payments/{uuid.uuid4()}")),
    Row("an unsigned provider webhook", "POST", f"{V1}/payments/webhooks/{{provider}}", everyone(400),
        static(f"{V1}/payments/webhooks/sandbox", json={"id": "evt_x", "type": "payment.succeeded", "data": {}})),
    Row("a webhook of an unknown provider", "POST", f"{V1}/payments/webhooks/{{provider}}", everyone(404),
        static(f"{V1}/payments/webhooks/nobody", json={})),
    Row("the sandbox pay page of an unknown payment", "GET", "/sandbox/pay/{payment_id}", everyone(404),
        static(f"/sandbox/pay/{uuid.uuid4()}")),
    Row("pay an unknown sandbox payment", "POST", "/sandbox/pay/{payment_id}", everyone(404),
        static(f"/sandbox/pay/{uuid.uuid4()}", data={"action": "decline"})),
    Row("the sandbox status API, unknown reference", "GET", "/sandbox/api/payments/{provider_ref}", everyone(404),
        static("/sandbox/api/payments/sbx_unknown")),
]

assert SUPER in ADMINS
