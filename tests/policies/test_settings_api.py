"""O4: admins read and change the store policies at runtime, validated, audited and
announced as ``config.changed``; bad input is a 4xx problem and changes nothing."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from typing import Any

import httpx
import pytest

from mercato.app.runtime import Runtime
from mercato.kit.errors import ValidationFailed
from mercato.policies import service
from mercato.policies.schemas import Policies
from tests.policies.support import (
    DEFAULTS,
    SETTINGS,
    audit_rows,
    current,
    events,
    stored,
    system_admin,
)
from tests.support.actors import Actor, Actors


async def patch(client: httpx.AsyncClient, actor: Actor, body: Any) -> httpx.Response:
    """PATCH ``body`` as JSON (``None`` is sent as ``null``, not as an empty body)."""
    return await client.patch(SETTINGS, headers={**actor.headers, "Content-Type": "application/json"},
                              content=json.dumps(body).encode())


async def assert_nothing_changed(client: httpx.AsyncClient, admin: Actor, runtime: Runtime) -> None:
    assert await stored(runtime) == {}
    assert await audit_rows(runtime) == []
    assert await events(runtime) == []
    response = await client.get(SETTINGS, headers=admin.headers)
    assert response.json()["policies"] == DEFAULTS
    assert (await current(runtime)).model_dump() == DEFAULTS


# --- reading ---------------------------------------------------------------------------------------

async def test_every_policy_has_its_default_until_an_admin_changes_it(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime) -> None:
    response = await client.get(SETTINGS, headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"policies": DEFAULTS, "defaults": DEFAULTS, "currency": "USD",
                               "updated_at": None, "updated_by": None}
    assert await current(runtime) == Policies()
    assert Policies().model_dump() == DEFAULTS


# --- changing --------------------------------------------------------------------------------------

async def test_a_change_is_stored_and_in_force_for_every_reader(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime) -> None:
    response = await patch(client, admin, {"commission_bps": 1500, "refund_window_days": 30})
    assert response.status_code == 200, response.text
    expected = {**DEFAULTS, "commission_bps": 1500, "refund_window_days": 30}
    body = response.json()
    assert body["policies"] == expected
    assert body["defaults"] == DEFAULTS
    assert body["updated_by"] == admin.id and body["updated_at"] is not None

    assert (await client.get(SETTINGS, headers=admin.headers)).json() == body
    assert (await current(runtime)).model_dump() == expected
    assert await stored(runtime) == {"commission_bps": 1500, "refund_window_days": 30}


async def test_the_super_admin_may_change_them_too(
        client: httpx.AsyncClient, super_admin: Actor, runtime: Runtime) -> None:
    response = await patch(client, super_admin, {"welcome_credit": 500})
    assert response.status_code == 200, response.text
    assert (await current(runtime)).welcome_credit == 500


async def test_each_change_is_audited_and_announced_with_before_and_after(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime) -> None:
    assert (await patch(client, admin, {"commission_bps": 1500, "max_order_lines": 20})).status_code == 200
    assert (await patch(client, admin, {"commission_bps": 1000, "order_timeout_seconds": 600})).status_code == 200

    first, second = await audit_rows(runtime)
    assert (first.actor_id, first.resource_type, first.resource_id, first.result) == (
        uuid.UUID(admin.id), "settings", "policies", "success")
    # max_order_lines was sent with the value in force: not a change, so not recorded
    assert (first.before, first.after) == ({"commission_bps": 2000}, {"commission_bps": 1500})
    assert (second.before, second.after) == ({"commission_bps": 1500, "order_timeout_seconds": 900},
                                             {"commission_bps": 1000, "order_timeout_seconds": 600})

    announced = await events(runtime)
    assert [(e.subject, e.source, e.data) for e in announced] == [
        ("policies", "mercato/policies", {"changed": {"commission_bps": {"before": 2000, "after": 1500}}}),
        ("policies", "mercato/policies", {"changed": {"commission_bps": {"before": 1500, "after": 1000},
                                                      "order_timeout_seconds": {"before": 900, "after": 600}}}),
    ]


@pytest.mark.parametrize("body", [{}, {"commission_bps": 2000}, dict(DEFAULTS)], ids=["empty", "default", "all"])
async def test_a_patch_that_changes_nothing_writes_and_announces_nothing(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime, body: dict[str, int]) -> None:
    response = await patch(client, admin, body)
    assert response.status_code == 200, response.text
    assert response.json()["policies"] == DEFAULTS
    await assert_nothing_changed(client, admin, runtime)


async def test_sending_the_value_in_force_again_is_not_a_change(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime) -> None:
    assert (await patch(client, admin, {"refund_window_days": 7})).status_code == 200
    again = await patch(client, admin, {"refund_window_days": 7})
    assert again.status_code == 200
    assert again.json()["policies"]["refund_window_days"] == 7
    assert len(await audit_rows(runtime)) == 1
    assert len(await events(runtime)) == 1


async def test_a_policy_can_be_set_back_to_its_default(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime) -> None:
    assert (await patch(client, admin, {"max_line_quantity": 1})).status_code == 200
    assert (await patch(client, admin, {"max_line_quantity": 10})).status_code == 200
    assert (await current(runtime)).max_line_quantity == 10
    assert [(e.data["changed"]["max_line_quantity"]["after"]) for e in await events(runtime)] == [1, 10]


# --- refused -----------------------------------------------------------------------------------------

async def test_unknown_policies_are_refused_by_name_and_nothing_changes(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime) -> None:
    response = await patch(client, admin, {"commission_bps": 1000, "comission_bps": 5, "theme": "dark"})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == "validation_failed"
    unknown = sorted(error["loc"] for error in problem["errors"] if error["type"] == "extra_forbidden")
    assert unknown == [["body", "comission_bps"], ["body", "theme"]]
    await assert_nothing_changed(client, admin, runtime)


INVALID: dict[str, Any] = {
    # out of bounds, at each end
    "commission below 0": {"commission_bps": -1},
    "commission above 100 %": {"commission_bps": 10_001},
    "refund window above a year": {"refund_window_days": 366},
    "auto refund downloads above 1000": {"refund_auto_max_downloads": 1001},
    "order timeout under a minute": {"order_timeout_seconds": 59},
    "order timeout over a day": {"order_timeout_seconds": 86_401},
    "welcome credit negative": {"welcome_credit": -1},
    "welcome credit too large": {"welcome_credit": 10_000_001},
    "poll after under 5 s": {"payment_poll_after_seconds": 4},
    "payment expiry over a day": {"payment_expire_seconds": 86_401},
    "no order lines": {"max_order_lines": 0},
    "order lines above 100": {"max_order_lines": 101},
    "line quantity 0": {"max_line_quantity": 0},
    "line quantity above 1000": {"max_line_quantity": 1001},
    "huge integer": {"commission_bps": 10**40},
    # wrong types: integers only, never null
    "float": {"commission_bps": 1500.5},
    "integral float": {"commission_bps": 1500.0},
    "numeric string": {"commission_bps": "1500"},
    "boolean": {"max_order_lines": True},
    "null": {"welcome_credit": None},
    "list": {"refund_window_days": [1]},
    "object": {"refund_window_days": {"days": 1}},
    # one valid and one invalid: all or nothing
    "one good one bad": {"commission_bps": 1000, "max_order_lines": 500},
    # a rule across policies: a payment is polled before it expires
    "poll after expiry": {"payment_poll_after_seconds": 3600, "payment_expire_seconds": 600},
    "expiry before the poll in force": {"payment_expire_seconds": 60, "payment_poll_after_seconds": 60},
    # not an object
    "array body": [{"commission_bps": 1000}],
    "string body": "commission_bps=1000",
    "number body": 1000,
    "null body": None,
}


@pytest.mark.parametrize("body", list(INVALID.values()), ids=list(INVALID))
async def test_invalid_changes_are_refused_and_nothing_changes(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime, body: Any) -> None:
    response = await patch(client, admin, body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_failed"
    assert response.json()["errors"], response.json()
    await assert_nothing_changed(client, admin, runtime)


async def test_the_rule_across_policies_holds_against_the_values_in_force(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime) -> None:
    assert (await patch(client, admin, {"payment_poll_after_seconds": 600})).status_code == 200
    response = await patch(client, admin, {"payment_expire_seconds": 300})
    assert response.status_code == 422, response.text
    assert "payment_poll_after_seconds" in response.json()["errors"][0]["msg"]
    assert (await current(runtime)).payment_expire_seconds == 1800


@pytest.mark.parametrize("content", [b"{", b'{"commission_bps": 1500,}', b"\xff\xfe"], ids=["cut", "comma", "bytes"])
async def test_a_malformed_body_is_a_400_and_changes_nothing(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime, content: bytes) -> None:
    response = await client.patch(SETTINGS, headers={**admin.headers, "Content-Type": "application/json"},
                                  content=content)
    assert response.status_code == 400, response.text
    await assert_nothing_changed(client, admin, runtime)


async def test_the_service_refuses_what_the_api_refuses(runtime: Runtime) -> None:
    """Other callers of ``service.update`` (the CLI, tests) get the same validation."""
    for changes in ({"nope": 1}, {"commission_bps": "1"}, {"max_order_lines": 101},
                    {"payment_poll_after_seconds": 3600, "payment_expire_seconds": 600}):
        with pytest.raises(ValidationFailed) as refused:
            async with runtime.db.transaction() as session:
                await service.update(session, actor=system_admin(), changes=changes)
        assert refused.value.errors, changes
    with pytest.raises(ValidationFailed, match="Unknown policies: nope"):
        async with runtime.db.transaction() as session:
            await service.update(session, actor=system_admin(), changes={"nope": 1})
    assert await stored(runtime) == {}


# --- access --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("roles", [(), ("developer",), ("reviewer",)], ids=["user", "developer", "reviewer"])
async def test_only_admins_read_or_change_settings(
        client: httpx.AsyncClient, actors: Actors, admin: Actor, runtime: Runtime, roles: tuple[str, ...]) -> None:
    caller = await actors.create(*roles)
    read = await client.get(SETTINGS, headers=caller.headers)
    change = await patch(client, caller, {"commission_bps": 0})
    assert (read.status_code, change.status_code) == (403, 403)
    assert change.json()["code"] == "forbidden"
    await assert_nothing_changed(client, admin, runtime)


async def test_anonymous_callers_must_sign_in(client: httpx.AsyncClient, admin: Actor, runtime: Runtime) -> None:
    assert (await client.get(SETTINGS)).status_code == 401
    assert (await client.patch(SETTINGS, json={"commission_bps": 0})).status_code == 401
    await assert_nothing_changed(client, admin, runtime)


# --- concurrency and stored data -------------------------------------------------------------------------

async def test_concurrent_changes_are_applied_one_after_the_other(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime) -> None:
    """Every change reads what the previous one wrote: the audit trail is one unbroken chain
    (and first writes of the same key never collide into a 500)."""
    values = [100 * n for n in range(1, 11)]
    responses = await asyncio.gather(*(patch(client, admin, {"commission_bps": value, "welcome_credit": value})
                                       for value in values))
    assert [r.status_code for r in responses] == [200] * len(values), [r.text for r in responses]
    chain = await audit_rows(runtime)
    assert len(chain) == len(values)
    assert chain[0].before == {"commission_bps": 2000, "welcome_credit": 0}
    for previous, following in itertools.pairwise(chain):
        assert following.before == previous.after
    final = await current(runtime)
    assert chain[-1].after == {"commission_bps": final.commission_bps, "welcome_credit": final.welcome_credit}
    assert len(await events(runtime)) == len(values)


async def test_a_stored_value_the_code_no_longer_accepts_falls_back_to_its_default(
        client: httpx.AsyncClient, admin: Actor, runtime: Runtime) -> None:
    """Bounds narrowed by an upgrade (or a removed policy) must not break every order."""
    from mercato.kit.clock import utcnow
    from mercato.policies import repository

    async with runtime.db.transaction() as session:
        await repository.put(session, key="commission_bps", value=99_999, at=utcnow(), by=None)
        await repository.put(session, key="max_order_lines", value="many", at=utcnow(), by=None)
        await repository.put(session, key="retired_policy", value=1, at=utcnow(), by=None)
        await repository.put(session, key="refund_window_days", value=3, at=utcnow(), by=None)
    service.evict_cache()
    expected = {**DEFAULTS, "refund_window_days": 3}
    assert (await current(runtime)).model_dump() == expected
    response = await client.get(SETTINGS, headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json()["policies"] == expected
