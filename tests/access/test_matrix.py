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

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from mercato.access.dependencies import route_policies
from mercato.app import create_app
from mercato.config import Settings
from mercato.runtime import Runtime
from tests.conftest import DEFAULT_PASSWORD, PG_URL, REDIS_URL, Actor, Actors, _admin_url, _pg_admin

V1 = "/api/v1"
ANON, USER, DEV, OTHER_DEV, REVIEWER, ADMIN, SUPER = (
    "anonymous", "user", "developer", "other_developer", "reviewer", "marketplace_admin", "super_admin")
PRINCIPALS = (ANON, USER, DEV, OTHER_DEV, REVIEWER, ADMIN, SUPER)
NEW_PASSWORD = "another perfectly fine passphrase"


# --- the world every row runs in ------------------------------------------------------------

@dataclass
class World:
    client: httpx.AsyncClient
    actors: Actors
    runtime: Runtime
    who: dict[str, Actor] = field(default_factory=dict)
    mine: str = ""      # slug of the developer's publisher
    theirs: str = ""    # slug of the other developer's publisher

    @property
    def super_admin(self) -> Actor:
        return self.who[SUPER]

    async def new_account(self) -> tuple[str, str]:
        """A fresh account (id, email) that is none of the principals."""
        from mercato.accounts import service

        email = f"someone-{uuid.uuid4().hex[:8]}@example.org"
        async with self.runtime.db.transaction() as session:
            user = await service.create_user(session, self.runtime, email=email, password=DEFAULT_PASSWORD)
        return str(user.id), email

    async def pending_application(self) -> str:
        applicant = await self.actors.create()
        response = await self.client.post(f"{V1}/publisher-applications", headers=applicant.headers,
                                          json={"slug": slug(), "name": "Applicant Co"})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def api_token_of(self, actor: Actor) -> str:
        response = await self.client.post(f"{V1}/me/tokens", headers=actor.headers, json={"name": "cli"})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


async def build_world(client: httpx.AsyncClient, actors: Actors, runtime: Runtime) -> World:
    world = World(client, actors, runtime)
    world.who = {
        USER: await actors.create(),
        DEV: await actors.create(),
        OTHER_DEV: await actors.create(),
        REVIEWER: await actors.create("reviewer"),
        ADMIN: await actors.create("marketplace_admin"),
        SUPER: await actors.create("super_admin"),
    }
    for name, owner in (("mine", DEV), ("theirs", OTHER_DEV)):
        publisher_slug = f"{name}-{uuid.uuid4().hex[:6]}"
        response = await client.post(f"{V1}/publishers", headers=world.super_admin.headers, json={
            "slug": publisher_slug, "name": f"Publisher {name}", "owner_email": world.who[owner].email})
        assert response.status_code == 201, response.text
        setattr(world, name, publisher_slug)
    return world


def slug() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"


def email() -> str:
    return f"new-{uuid.uuid4().hex[:8]}@example.org"


# --- expectations -----------------------------------------------------------------------------

def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(PRINCIPALS, status)


def signed_in(status: int) -> dict[str, int]:
    return {**everyone(status), ANON: 401}


def only(*allowed: str, status: int) -> dict[str, int]:
    """``allowed`` get ``status``; anonymous 401; every other principal 403."""
    return {**everyone(403), ANON: 401, **dict.fromkeys(allowed, status)}


ADMINS = (ADMIN, SUPER)

# --- requests ----------------------------------------------------------------------------------

Make = Callable[[World, str], Awaitable[dict[str, Any]]]


def static(path: str, **kwargs: Any) -> Make:
    async def make(world: World, who: str) -> dict[str, Any]:
        return {"url": path, **kwargs}

    return make


def dynamic(build: Callable[[World, str], Any]) -> Make:
    async def make(world: World, who: str) -> dict[str, Any]:
        out = build(world, who)
        return await out if isinstance(out, Awaitable) else out  # type: ignore[no-any-return]

    return make


def caller(world: World, who: str) -> Actor:
    """The actor whose own resources an anonymous request would touch."""
    return world.who[USER if who == ANON else who]


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


@dataclass(frozen=True)
class Row:
    name: str
    method: str
    route: str  # the path template as route_policies() reports it
    expect: dict[str, int]
    make: Make


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
]


@dataclass
class Store:
    client: httpx.AsyncClient
    actors: Actors
    runtime: Runtime


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def store(database_template: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Store]:
    """One migrated store for the whole module (see the module docstring)."""
    directory = tmp_path_factory.mktemp("matrix")
    if PG_URL:
        name = f"mercato_m_{uuid.uuid4().hex[:12]}"
        await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{database_template}"')
        url = _admin_url(name)
    else:
        shutil.copyfile(database_template, directory / "mercato.db")
        url = f"sqlite+aiosqlite:///{directory / 'mercato.db'}"
    settings = Settings(data_dir=directory, database_url=url, testing=True,
                        secret_key="test-secret-key-of-reasonable-length-0123456789",
                        redis_url=REDIS_URL, redis_namespace=f"mercato-test-{uuid.uuid4().hex[:8]}")
    runtime = Runtime.from_settings(settings)
    app = create_app(runtime=runtime)
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://mercato.test") as client:
            yield Store(client, Actors(client, runtime), runtime)
    finally:
        if REDIS_URL:
            await runtime.limiter.reset()
        await runtime.close()
        if PG_URL:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
        headers = {} if who == ANON else world.who[who].headers
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
