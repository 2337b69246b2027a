"""A2/A3: every route against every kind of caller, own and other resources.

Each row of MATRIX is one route (or one own/other/unknown variant of it) with the exact
status every principal must get: 401 for anonymous callers of protected routes, 403 for
callers without the permission (or with an ``own`` grant on someone else's resource),
404 for resources that do not exist or are not the caller's, and the success status
otherwise. Anything else, and in particular any unexpected 2xx, fails the row.

The world of each row: a plain user, a developer owning publisher ``mine``, another
developer owning publisher ``theirs``, a reviewer, a marketplace admin and a super admin.
Every row builds a world of its own, in one store (database) shared by the module: a
database per row would cost more than the rows themselves.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from mercato.access.dependencies import route_policies
from mercato.app import create_app
from mercato.app.runtime import Runtime
from mercato.bus import repository
from mercato.bus.events import CloudEvent, declare_event_type
from mercato.bus.outbox import publish
from mercato.config import Settings
from mercato.kit.clock import utcnow
from tests.access.matrix import (
    ADMINS,
    ANON,
    DEV,
    OTHER_DEV,
    PRINCIPALS,
    SUPER,
    USER,
    V1,
    Make,
    Row,
    World,
    build_world,
    caller,
    dynamic,
    email,
    everyone,
    only,
    signed_in,
    slug,
    static,
)
from tests.support.actors import DEFAULT_PASSWORD, Actors
from tests.support.backends import PG_URL, REDIS_URL, admin_url, pg_admin

NEW_PASSWORD = "another perfectly fine passphrase"

declare_event_type("test.matrix", source="tests", data="{}")


async def login_body(world: World, who: str) -> dict[str, Any]:
    actor = caller(world, who)
    return {"url": f"{V1}/auth/login", "json": {"email": actor.email, "password": actor.password}}


async def refresh_body(world: World, who: str) -> dict[str, Any]:
    actor = caller(world, who)
    fresh = await world.actors.login(actor.email, actor.password, user_id=actor.id)
    return {"url": f"{V1}/auth/refresh", "json": {"refresh_token": fresh.refresh_token}}


async def revoke_own_token(world: World, who: str) -> dict[str, Any]:
    return {"url": f"{V1}/me/tokens/{await world.api_token_of(caller(world, who))}"}


async def revoke_someone_elses_token(world: World, who: str) -> dict[str, Any]:
    victim = world.who[DEV if who == USER else USER]
    return {"url": f"{V1}/me/tokens/{await world.api_token_of(victim)}"}


async def add_member_to(world: World, publisher: str) -> dict[str, Any]:
    _, member = await world.new_account()
    return {"url": f"{V1}/publishers/{publisher}/members", "json": {"email": member}}


async def remove_member_from(world: World, publisher: str) -> dict[str, Any]:
    _, member = await world.new_account()
    added = await world.client.post(f"{V1}/publishers/{publisher}/members", headers=world.super_admin.headers,
                                    json={"email": member})
    assert added.status_code == 200, added.text
    return {"url": f"{V1}/publishers/{publisher}/members", "params": {"email": member}}


async def decide(world: World, verb: str) -> dict[str, Any]:
    body = {"reason": "Not a real company"} if verb == "reject" else None
    application = await world.pending_application()
    return {"url": f"{V1}/admin/publisher-applications/{application}/{verb}", **({"json": body} if body else {})}


async def patch_a_user(world: World, who: str) -> dict[str, Any]:
    target, _ = await world.new_account()
    return {"url": f"{V1}/admin/users/{target}", "json": {"display_name": "Renamed"}}


async def a_delivery(world: World, state: str) -> str:
    """The id of a ``live.push`` delivery in ``state`` (its event already relayed, so the bus leaves it be)."""
    event = CloudEvent(type="test.matrix", subject=f"matrix-{uuid.uuid4().hex[:8]}", data={})
    delivery_id = uuid.uuid4()
    now = utcnow()
    async with world.runtime.db.transaction() as session:
        await publish(session, event)
        row = await repository.event(session, event.id)
        assert row is not None
        await repository.lock_relay(session)  # positions are handed out one relay at a time
        position = await repository.max_position(session) + 1
        await repository.mark_relayed_at_positions(session, [(row.sequence, position)], now)
        await repository.add_deliveries(session, [{
            "id": delivery_id, "subscriber": "live.push", "event_id": event.id, "sequence": row.sequence,
            "subject": event.subject, "event_type": event.type, "state": state, "attempts": 8 if state == "dead" else 1,
            "next_attempt_at": now, "last_error": "RuntimeError: boom" if state == "dead" else None,
            "created_at": now, "updated_at": now, "done_at": now if state == "done" else None}])
    return str(delivery_id)


async def replay(world: World, state: str) -> dict[str, Any]:
    return {"url": f"{V1}/admin/dead-letters/{await a_delivery(world, state)}/replay"}


# Webhooks point at the discard port of the SSRF allowlist's one host, and subscribe to a
# type no row publishes for a publisher: nothing is ever sent.
HOOK_URL = "http://127.0.0.1:9/hook"
HOOK_TYPES = ["publisher.application_rejected"]


async def a_webhook(world: World) -> str:
    """A webhook of the developer's publisher ``mine``, made by the super admin."""
    response = await world.client.post(f"{V1}/webhooks", headers=world.super_admin.headers, json={
        "url": HOOK_URL, "event_types": HOOK_TYPES, "publisher": world.mine})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def on_a_webhook(suffix: str = "", **kwargs: Any) -> Make:
    """A request to a fresh webhook of ``mine`` (one per principal: DELETE removes it)."""
    async def make(world: World, who: str) -> dict[str, Any]:
        return {"url": f"{V1}/webhooks/{await a_webhook(world)}{suffix}", **kwargs}

    return make


MATRIX: list[Row] = [
    # operations
    Row("healthz", "GET", "/healthz", everyone(200), static("/healthz")),
    Row("readyz", "GET", "/readyz", everyone(200), static("/readyz")),
    Row("metrics", "GET", "/metrics", everyone(200), static("/metrics")),
    # accounts: public ways in
    Row("register", "POST", f"{V1}/auth/register", everyone(201), dynamic(lambda w, who: {
        "url": f"{V1}/auth/register", "json": {"email": email(), "password": DEFAULT_PASSWORD}})),
    Row("login", "POST", f"{V1}/auth/login", everyone(200), login_body),
    Row("refresh", "POST", f"{V1}/auth/refresh", everyone(200), refresh_body),
    # accounts: the caller's own
    Row("logout", "POST", f"{V1}/auth/logout", signed_in(204), static(f"{V1}/auth/logout")),
    Row("read me", "GET", f"{V1}/me", signed_in(200), static(f"{V1}/me")),
    Row("update me", "PATCH", f"{V1}/me", signed_in(200), static(f"{V1}/me", json={"display_name": "Me"})),
    Row("change password", "POST", f"{V1}/me/password", signed_in(204), dynamic(lambda w, who: {
        "url": f"{V1}/me/password",
        "json": {"current_password": caller(w, who).password, "new_password": NEW_PASSWORD}})),
    Row("list my tokens", "GET", f"{V1}/me/tokens", signed_in(200), static(f"{V1}/me/tokens")),
    Row("create a token", "POST", f"{V1}/me/tokens", signed_in(201), static(f"{V1}/me/tokens", json={"name": "ci"})),
    Row("revoke my token", "DELETE", f"{V1}/me/tokens/{{token_id}}", signed_in(204), revoke_own_token),
    Row("revoke someone else's token (A3)", "DELETE", f"{V1}/me/tokens/{{token_id}}", signed_in(404),
        revoke_someone_elses_token),
    Row("revoke an unknown token", "DELETE", f"{V1}/me/tokens/{{token_id}}", signed_in(404),
        static(f"{V1}/me/tokens/{uuid.uuid4()}")),
    # publisher applications
    Row("apply", "POST", f"{V1}/publisher-applications", signed_in(201), dynamic(lambda w, who: {
        "url": f"{V1}/publisher-applications", "json": {"slug": slug(), "name": "My Company"}})),
    Row("my applications", "GET", f"{V1}/me/publisher-applications", signed_in(200),
        static(f"{V1}/me/publisher-applications")),
    Row("list applications", "GET", f"{V1}/admin/publisher-applications", only(*ADMINS, status=200),
        static(f"{V1}/admin/publisher-applications")),
    Row("approve", "POST", f"{V1}/admin/publisher-applications/{{application_id}}/approve",
        only(*ADMINS, status=200), dynamic(lambda w, who: decide(w, "approve"))),
    Row("reject", "POST", f"{V1}/admin/publisher-applications/{{application_id}}/reject",
        only(*ADMINS, status=200), dynamic(lambda w, who: decide(w, "reject"))),
    Row("approve an unknown application (A3)", "POST",
        f"{V1}/admin/publisher-applications/{{application_id}}/approve", only(*ADMINS, status=404),
        static(f"{V1}/admin/publisher-applications/{uuid.uuid4()}/approve")),
    Row("reject an unknown application (A3)", "POST",
        f"{V1}/admin/publisher-applications/{{application_id}}/reject", only(*ADMINS, status=404),
        static(f"{V1}/admin/publisher-applications/{uuid.uuid4()}/reject", json={"reason": "No such thing"})),
    # publishers
    Row("create a publisher", "POST", f"{V1}/publishers", only(*ADMINS, status=201), dynamic(lambda w, who: {
        "url": f"{V1}/publishers", "json": {"slug": slug(), "name": "Made By Admin",
                                            "owner_email": w.who[USER].email}})),
    Row("read a publisher", "GET", f"{V1}/publishers/{{slug}}", everyone(200),
        dynamic(lambda w, who: {"url": f"{V1}/publishers/{w.mine}"})),
    Row("read an unknown publisher", "GET", f"{V1}/publishers/{{slug}}", everyone(404),
        static(f"{V1}/publishers/no-such-publisher")),
    Row("update own publisher / other's", "PATCH", f"{V1}/publishers/{{slug}}",
        only(DEV, *ADMINS, status=200), dynamic(lambda w, who: {
            "url": f"{V1}/publishers/{w.mine}", "json": {"description": f"Edited by {who}"}})),
    Row("update an unknown publisher", "PATCH", f"{V1}/publishers/{{slug}}",
        only(DEV, OTHER_DEV, *ADMINS, status=404), static(f"{V1}/publishers/no-such-publisher",
                                                          json={"description": "x"})),
    Row("grant the verified badge", "PATCH", f"{V1}/publishers/{{slug}}", only(*ADMINS, status=200),
        dynamic(lambda w, who: {"url": f"{V1}/publishers/{w.mine}", "json": {"verified": True}})),
    Row("add a member to own publisher / other's", "POST", f"{V1}/publishers/{{slug}}/members",
        only(DEV, *ADMINS, status=200), dynamic(lambda w, who: add_member_to(w, w.mine))),
    Row("remove a member from own publisher / other's", "DELETE", f"{V1}/publishers/{{slug}}/members",
        only(DEV, *ADMINS, status=204), dynamic(lambda w, who: remove_member_from(w, w.mine))),
    Row("remove someone who is not a member", "DELETE", f"{V1}/publishers/{{slug}}/members",
        only(DEV, *ADMINS, status=404), dynamic(lambda w, who: {
            "url": f"{V1}/publishers/{w.mine}/members", "params": {"email": w.who[USER].email}})),
    # administration
    Row("list users", "GET", f"{V1}/admin/users", only(*ADMINS, status=200), static(f"{V1}/admin/users")),
    Row("create a user", "POST", f"{V1}/admin/users", only(*ADMINS, status=201), dynamic(lambda w, who: {
        "url": f"{V1}/admin/users", "json": {"email": email(), "password": DEFAULT_PASSWORD, "roles": ["reviewer"]}})),
    Row("update a user", "PATCH", f"{V1}/admin/users/{{user_id}}", only(*ADMINS, status=200), patch_a_user),
    Row("update an unknown user (A3)", "PATCH", f"{V1}/admin/users/{{user_id}}", only(*ADMINS, status=404),
        static(f"{V1}/admin/users/{uuid.uuid4()}", json={"display_name": "Ghost"})),
    Row("list roles", "GET", f"{V1}/admin/roles", only(*ADMINS, status=200), static(f"{V1}/admin/roles")),
    Row("list permissions", "GET", f"{V1}/admin/permissions", only(*ADMINS, status=200),
        static(f"{V1}/admin/permissions")),
    Row("edit a role", "PUT", f"{V1}/admin/roles/{{name}}", only(SUPER, status=200), dynamic(lambda w, who: {
        "url": f"{V1}/admin/roles/custom_{uuid.uuid4().hex[:6]}", "json": {"permissions": {"account:read": "own"}}})),
    Row("read the audit log", "GET", f"{V1}/admin/audit", only(*ADMINS, status=200), static(f"{V1}/admin/audit")),
    # events (E1, E3)
    Row("read the event history", "GET", f"{V1}/admin/events", only(*ADMINS, status=200),
        static(f"{V1}/admin/events", params={"type": "user.registered"})),
    Row("list dead letters", "GET", f"{V1}/admin/dead-letters", only(*ADMINS, status=200),
        static(f"{V1}/admin/dead-letters")),
    Row("replay a dead letter", "POST", f"{V1}/admin/dead-letters/{{dead_letter_id}}/replay",
        only(*ADMINS, status=202), dynamic(lambda w, who: replay(w, "dead"))),
    Row("replay a delivery that is not dead (A6)", "POST", f"{V1}/admin/dead-letters/{{dead_letter_id}}/replay",
        only(*ADMINS, status=409), dynamic(lambda w, who: replay(w, "done"))),
    Row("replay an unknown dead letter (A3)", "POST", f"{V1}/admin/dead-letters/{{dead_letter_id}}/replay",
        only(*ADMINS, status=404), static(f"{V1}/admin/dead-letters/{uuid.uuid4()}/replay")),
    # outgoing webhooks (E2): owners of the publisher and admins; another developer gets 404 (A3)
    Row("list webhooks", "GET", f"{V1}/webhooks", only(DEV, OTHER_DEV, *ADMINS, status=200),
        static(f"{V1}/webhooks")),
    Row("create a webhook for own publisher / other's", "POST", f"{V1}/webhooks", only(DEV, *ADMINS, status=201),
        dynamic(lambda w, who: {"url": f"{V1}/webhooks",
                                "json": {"url": HOOK_URL, "event_types": HOOK_TYPES, "publisher": w.mine}})),
    Row("create a store-wide webhook", "POST", f"{V1}/webhooks", only(*ADMINS, status=201),
        static(f"{V1}/webhooks", json={"url": HOOK_URL, "event_types": HOOK_TYPES})),
    Row("read a webhook", "GET", f"{V1}/webhooks/{{webhook_id}}", {**only(DEV, *ADMINS, status=200), OTHER_DEV: 404},
        on_a_webhook()),
    Row("update a webhook", "PATCH", f"{V1}/webhooks/{{webhook_id}}",
        {**only(DEV, *ADMINS, status=200), OTHER_DEV: 404}, on_a_webhook(json={"active": False})),
    Row("delete a webhook", "DELETE", f"{V1}/webhooks/{{webhook_id}}",
        {**only(DEV, *ADMINS, status=204), OTHER_DEV: 404}, on_a_webhook()),
    Row("rotate a webhook's secret", "POST", f"{V1}/webhooks/{{webhook_id}}/rotate-secret",
        {**only(DEV, *ADMINS, status=200), OTHER_DEV: 404}, on_a_webhook("/rotate-secret")),
    Row("send a webhook a test event", "POST", f"{V1}/webhooks/{{webhook_id}}/test",
        {**only(DEV, *ADMINS, status=202), OTHER_DEV: 404}, on_a_webhook("/test")),
    Row("list a webhook's deliveries", "GET", f"{V1}/webhooks/{{webhook_id}}/deliveries",
        {**only(DEV, *ADMINS, status=200), OTHER_DEV: 404}, on_a_webhook("/deliveries")),
    Row("delete an unknown webhook (A3)", "DELETE", f"{V1}/webhooks/{{webhook_id}}",
        only(DEV, OTHER_DEV, *ADMINS, status=404), static(f"{V1}/webhooks/{uuid.uuid4()}")),
    Row("read an unknown webhook (A3)", "GET", f"{V1}/webhooks/{{webhook_id}}",
        only(DEV, OTHER_DEV, *ADMINS, status=404), static(f"{V1}/webhooks/{uuid.uuid4()}")),
    # live events (S3): the caller's own stream
    Row("open my event stream", "GET", f"{V1}/events/stream", signed_in(200), static(f"{V1}/events/stream"),
        stream=True),
]

# Rows of other modules' routes. Here, not at the end of the file: the test below is
# parametrised (with its ids) when this module is imported.
from tests.access.matrix_rows_library import MATRIX_ROWS  # noqa: E402

MATRIX.extend(MATRIX_ROWS)

from tests.access.matrix_rows_catalog import MATRIX_ROWS as CATALOG_MATRIX_ROWS  # noqa: E402

MATRIX.extend(CATALOG_MATRIX_ROWS)

from tests.access.matrix_rows_policies import MATRIX_ROWS as POLICIES_MATRIX_ROWS  # noqa: E402

MATRIX.extend(POLICIES_MATRIX_ROWS)

from tests.access.matrix_rows_wallet import MATRIX_ROWS as WALLET_MATRIX_ROWS  # noqa: E402

MATRIX.extend(WALLET_MATRIX_ROWS)

from tests.access.matrix_rows_refunds import MATRIX_ROWS as REFUNDS_MATRIX_ROWS  # noqa: E402

MATRIX.extend(REFUNDS_MATRIX_ROWS)

from tests.access.matrix_rows_receipts import MATRIX_ROWS as RECEIPTS_MATRIX_ROWS  # noqa: E402

MATRIX.extend(RECEIPTS_MATRIX_ROWS)

from tests.access.matrix_rows_payments import MATRIX_ROWS as PAYMENTS_MATRIX_ROWS  # noqa: E402

MATRIX.extend(PAYMENTS_MATRIX_ROWS)

from tests.access.matrix_rows_licences import MATRIX_ROWS as LICENCES_MATRIX_ROWS  # noqa: E402

MATRIX.extend(LICENCES_MATRIX_ROWS)

from tests.access.matrix_rows_installs import MATRIX_ROWS as INSTALLS_MATRIX_ROWS  # noqa: E402

MATRIX.extend(INSTALLS_MATRIX_ROWS)

from tests.access.matrix_rows_money_payouts import MATRIX_ROWS as MONEY_PAYOUTS_MATRIX_ROWS  # noqa: E402

MATRIX.extend(MONEY_PAYOUTS_MATRIX_ROWS)

from tests.access.matrix_rows_orders import MATRIX_ROWS as ORDERS_MATRIX_ROWS  # noqa: E402

MATRIX.extend(ORDERS_MATRIX_ROWS)

from tests.access.matrix_rows_history import MATRIX_ROWS as HISTORY_MATRIX_ROWS  # noqa: E402

MATRIX.extend(HISTORY_MATRIX_ROWS)

from tests.access.matrix_rows_sync import MATRIX_ROWS as SYNC_MATRIX_ROWS  # noqa: E402

MATRIX.extend(SYNC_MATRIX_ROWS)

from tests.access.matrix_rows_market import MATRIX_ROWS as MARKET_MATRIX_ROWS  # noqa: E402

MATRIX.extend(MARKET_MATRIX_ROWS)

from tests.access.matrix_rows_openvsx import MATRIX_ROWS as OPENVSX_MATRIX_ROWS  # noqa: E402

MATRIX.extend(OPENVSX_MATRIX_ROWS)


@dataclass
class Answer:
    """What a row needs of a response: its status, headers and (start of the) body."""

    status_code: int
    headers: httpx.Headers
    text: str


async def open_and_close(app: Any, method: str, url: str, headers: dict[str, str], *,
                         timeout: float = 10.0) -> Answer:
    """Call ``app`` over raw ASGI and hang up as soon as the response has started.

    httpx's ASGITransport returns only once the app has finished, which an event stream
    never does: here the client disconnects after the status and headers, so the stream
    ends at once, and a hang fails the row after ``timeout`` instead of stalling the suite.
    """
    target = httpx.URL(url)
    started = asyncio.Event()
    answer: dict[str, Any] = {"body": bytearray()}
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await started.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = httpx.Headers([(k.decode("latin-1"), v.decode("latin-1"))
                                               for k, v in message.get("headers", [])])
            started.set()
        elif message["type"] == "http.response.body":
            answer["body"].extend(message.get("body", b""))

    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": target.path, "raw_path": target.raw_path.split(b"?")[0],
        "query_string": target.query, "root_path": "", "client": ("127.0.0.1", 50000),
        "server": ("mercato.test", 80),
        "headers": [(b"host", b"mercato.test"), *((k.lower().encode(), v.encode()) for k, v in headers.items())],
    }
    await asyncio.wait_for(app(scope, receive, send), timeout)
    assert "status" in answer, "the app answered nothing"
    return Answer(answer["status"], answer["headers"], answer["body"].decode("utf-8", "replace"))


@dataclass
class Store:
    client: httpx.AsyncClient
    actors: Actors
    runtime: Runtime
    app: Any


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def store(database_template: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Store]:
    """One migrated store for the whole module (see the module docstring)."""
    directory = tmp_path_factory.mktemp("matrix")
    if PG_URL:
        name = f"mercato_m_{uuid.uuid4().hex[:12]}"
        await pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{database_template}"')
        url = admin_url(name)
    else:
        shutil.copyfile(database_template, directory / "mercato.db")
        url = f"sqlite+aiosqlite:///{directory / 'mercato.db'}"
    settings = Settings(data_dir=directory, database_url=url, testing=True,
                        secret_key="test-secret-key-of-reasonable-length-0123456789",
                        redis_url=REDIS_URL, redis_namespace=f"mercato-test-{uuid.uuid4().hex[:8]}",
                        outbound_allowed_hosts=["127.0.0.1"])  # the webhooks' URL (HOOK_URL)
    runtime = Runtime.from_settings(settings)
    app = create_app(runtime=runtime)
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://mercato.test") as client:
            yield Store(client, Actors(client, runtime), runtime, app)
    finally:
        if REDIS_URL:
            await runtime.limiter.reset()
        await runtime.close()
        if PG_URL:
            await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("row", MATRIX, ids=[row.name for row in MATRIX])
async def test_route_answers_each_principal_exactly_as_specified(row: Row, store: Store) -> None:
    client = store.client
    world = await build_world(client, store.actors, store.runtime)
    secrets = {secret for actor in world.who.values() for secret in (actor.access_token, actor.refresh_token)}
    actual: dict[str, int] = {}
    bodies: dict[str, str] = {}
    leaks: dict[str, list[str]] = {}
    for who in PRINCIPALS:
        request = await row.make(world, who)
        # a row may add headers (an Idempotency-Key); the principal's credentials come on top
        headers = {**request.pop("headers", {}), **({} if who == ANON else world.who[who].headers)}
        if row.stream:
            assert set(request) == {"url"}, "a stream row sends no body or parameters"
            response: httpx.Response | Answer = await open_and_close(store.app, row.method, request["url"], headers)
            if response.status_code == 200:
                assert response.headers["content-type"].startswith("text/event-stream"), response.headers
        else:
            response = await client.request(row.method, headers=headers, **request)
        actual[who] = response.status_code
        bodies[who] = response.text[:200]
        # A5: no response carries a hash or anybody's session tokens
        found = [needle for needle in ("password_hash", "token_hash", "$argon2") if needle in response.text]
        found += ["a session token" for secret in secrets if secret in response.text]
        if found:
            leaks[who] = found
    unexpected = {who: (actual[who], row.expect[who], bodies[who]) for who in PRINCIPALS
                  if actual[who] != row.expect[who]}
    assert unexpected == {}, "principal: (got, expected, body)"
    assert leaks == {}


def policies() -> dict[tuple[str, str], str | None]:
    with tempfile.TemporaryDirectory() as directory:
        return route_policies(create_app(Settings(data_dir=Path(directory), testing=True)))


def test_the_matrix_covers_every_route() -> None:
    covered = {(row.method, row.route) for row in MATRIX}
    assert set(policies()) - covered == set(), "add a MATRIX row for each new route"
    assert covered - set(policies()) == set(), "MATRIX rows for routes that do not exist"


def test_every_protected_row_expects_401_for_anonymous_callers() -> None:
    declared = policies()
    for row in MATRIX:
        if declared[(row.method, row.route)] != "public":
            assert row.expect[ANON] == 401, row.name
