"""M1 and M12 through the API: the caller's wallet, its movements, and the welcome credit."""

from __future__ import annotations

import uuid

import httpx

from mercato.app.runtime import Runtime
from mercato.wallet import service as wallet
from tests.library.support import eventually
from tests.support.actors import Actor, Actors
from tests.support.invariants import assert_money_invariants

V1 = "/api/v1"


async def wallet_of(client: httpx.AsyncClient, who: Actor) -> dict:  # type: ignore[type-arg]
    response = await client.get(f"{V1}/wallet", headers=who.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def paid_in(runtime: Runtime, who: Actor, amount: int) -> uuid.UUID:
    payment_id = uuid.uuid4()
    async with runtime.db.transaction() as session:
        await wallet.credit_payment(session, payment_id=payment_id, user_id=uuid.UUID(who.id), provider="sandbox",
                                    amount=amount, currency="USD")
    return payment_id


async def test_a_new_wallet_is_empty(client: httpx.AsyncClient, user: Actor) -> None:
    assert (await wallet_of(client, user))["balance"] == {"amount": 0, "currency": "USD"}
    movements = await client.get(f"{V1}/wallet/transactions", headers=user.headers)
    assert movements.json() == {"items": [], "next_cursor": None, "total": None}


async def test_movements_are_listed_newest_first_with_the_balance_after_each(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    await paid_in(runtime, user, 1000)
    order_id = uuid.uuid4()
    async with runtime.db.transaction() as session:
        await wallet.debit_order(session, order_id=order_id, user_id=uuid.UUID(user.id), amount=250, currency="USD")
    assert (await wallet_of(client, user))["balance"]["amount"] == 750
    page = (await client.get(f"{V1}/wallet/transactions", headers=user.headers)).json()
    assert [(m["kind"], m["amount"]["amount"], m["balance_after"]["amount"]) for m in page["items"]] == [
        ("purchase", -250, 750), ("topup", 1000, 1000)]
    assert page["items"][0]["order_id"] == str(order_id)
    await assert_money_invariants(runtime.db)


async def test_movements_page_with_a_cursor(client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    for amount in (100, 200, 300):
        await paid_in(runtime, user, amount)
    first = (await client.get(f"{V1}/wallet/transactions", headers=user.headers, params={"limit": 2})).json()
    second = (await client.get(f"{V1}/wallet/transactions", headers=user.headers,
                               params={"limit": 2, "cursor": first["next_cursor"]})).json()
    amounts = [m["amount"]["amount"] for m in first["items"] + second["items"]]
    assert sorted(amounts) == [100, 200, 300] and len(set(amounts)) == 3
    assert second["next_cursor"] is None


async def test_someone_elses_movements_never_show(client: httpx.AsyncClient, runtime: Runtime, actors: Actors,
                                                  user: Actor) -> None:
    other = await actors.create()
    await paid_in(runtime, other, 5000)
    assert (await wallet_of(client, user))["balance"]["amount"] == 0
    assert (await client.get(f"{V1}/wallet/transactions", headers=user.headers)).json()["items"] == []


async def test_new_users_get_the_welcome_credit_the_policies_set_once(
        client: httpx.AsyncClient, runtime: Runtime, admin: Actor) -> None:
    changed = await client.patch(f"{V1}/admin/settings", headers=admin.headers, json={"welcome_credit": 500})
    assert changed.status_code == 200, changed.text
    email = f"welcome-{uuid.uuid4().hex[:8]}@example.org"
    registered = await client.post(f"{V1}/auth/register", json={
        "email": email, "password": "a perfectly fine test password", "display_name": "Welcome"})
    assert registered.status_code == 201, registered.text
    login = await client.post(f"{V1}/auth/login", json={"email": email, "password": "a perfectly fine test password"})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

    async def balance() -> int:
        return int((await client.get(f"{V1}/wallet", headers=headers)).json()["balance"]["amount"])

    assert await eventually(balance, lambda amount: amount == 500) == 500
    # a redelivered event (its handler run again) posts the same reference: nothing more
    async with runtime.db.transaction() as session:
        again = await wallet.credit_welcome(session, user_id=uuid.UUID(registered.json()["id"]), amount=500,
                                            currency="USD")
    assert not again.created
    assert await balance() == 500
    await assert_money_invariants(runtime.db)


async def test_no_welcome_credit_by_default(client: httpx.AsyncClient, runtime: Runtime, actors: Actors) -> None:
    newcomer = await actors.create()
    async with runtime.db.read_session() as session:
        assert await wallet.balance(session, uuid.UUID(newcomer.id)) == 0
    assert (await client.get(f"{V1}/wallet/transactions", headers=newcomer.headers)).json()["items"] == []
