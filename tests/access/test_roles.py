"""A4 (roles and permissions): roles are data, edited by super admins only, audited, and a
store never loses its last super admin."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from mercato.access.permissions import Permission
from mercato.access.seeds import DEFAULT_ROLES
from mercato.app.runtime import Runtime
from mercato.models import AuditEntry, OutboxEvent
from tests.support.actors import DEFAULT_PASSWORD, Actor, Actors

V1 = "/api/v1"
EVERY_PERMISSION = {p.value: "any" for p in Permission}


async def roles(client: httpx.AsyncClient, actor: Actor) -> dict[str, dict]:  # type: ignore[type-arg]
    response = await client.get(f"{V1}/admin/roles", headers=actor.headers, params={"limit": 100})
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return {role["name"]: role for role in response.json()["items"]}


async def put_role(client: httpx.AsyncClient, actor: Actor, name: str, permissions: dict[str, str],
                   **extra: str) -> httpx.Response:
    return await client.put(f"{V1}/admin/roles/{name}", headers=actor.headers,
                            json={"permissions": permissions, **extra})


async def set_roles(client: httpx.AsyncClient, actor: Actor, target: Actor, *names: str) -> httpx.Response:
    return await client.patch(f"{V1}/admin/users/{target.id}", headers=actor.headers, json={"roles": list(names)})


async def audit_actions(runtime: Runtime, action: str) -> list[AuditEntry]:
    async with runtime.db.read_session() as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


# --- reading ---------------------------------------------------------------------------------------

async def test_the_five_seeded_roles_are_listed_with_their_permissions(
        client: httpx.AsyncClient, admin: Actor) -> None:
    listed = await roles(client, admin)
    assert set(listed) == {"user", "developer", "reviewer", "marketplace_admin", "super_admin"}
    assert all(role["is_system"] for role in listed.values())
    for name, (_, grants) in DEFAULT_ROLES.items():
        assert listed[name]["permissions"] == {p.value: c.value for p, c in grants.items()}, name
    assert listed["super_admin"]["permissions"] == EVERY_PERMISSION
    assert "role:update" not in listed["marketplace_admin"]["permissions"]


async def test_the_permission_catalogue_lists_every_permission(client: httpx.AsyncClient, admin: Actor) -> None:
    response = await client.get(f"{V1}/admin/permissions", headers=admin.headers, params={"limit": 100})
    assert response.json()["items"] == sorted(EVERY_PERMISSION) and response.json()["next_cursor"] is None
    first = (await client.get(f"{V1}/admin/permissions", headers=admin.headers, params={"limit": 10})).json()
    rest = (await client.get(f"{V1}/admin/permissions", headers=admin.headers,
                             params={"limit": 100, "cursor": first["next_cursor"]})).json()
    assert first["items"] + rest["items"] == sorted(EVERY_PERMISSION)


# --- editing --------------------------------------------------------------------------------------

async def test_a_super_admin_creates_a_custom_role(client: httpx.AsyncClient, super_admin: Actor) -> None:
    response = await put_role(client, super_admin, "support", {"user:read": "any", "account:read": "own"},
                              description="Reads user accounts for support.")
    assert response.status_code == 200, response.text
    assert response.json() == {"name": "support", "description": "Reads user accounts for support.",
                               "is_system": False,
                               "permissions": {"user:read": "any", "account:read": "own"}}
    assert (await roles(client, super_admin))["support"]["permissions"] == {"user:read": "any",
                                                                              "account:read": "own"}


async def test_a_custom_role_grants_its_permissions_to_its_holders(
        client: httpx.AsyncClient, actors: Actors, super_admin: Actor) -> None:
    assert (await put_role(client, super_admin, "auditor", {"audit:read": "any"})).status_code == 200
    holder = await actors.create("auditor")
    assert (await client.get(f"{V1}/admin/audit", headers=holder.headers)).status_code == 200
    assert (await client.get(f"{V1}/admin/users", headers=holder.headers)).status_code == 403


async def test_replaced_grants_take_effect_on_the_holders_next_request(
        client: httpx.AsyncClient, actors: Actors, super_admin: Actor) -> None:
    reviewer = await actors.create("reviewer")
    assert (await client.get(f"{V1}/admin/audit", headers=reviewer.headers)).status_code == 403
    current = (await roles(client, super_admin))["reviewer"]["permissions"]

    granted = await put_role(client, super_admin, "reviewer", {**current, "audit:read": "any"})
    assert granted.status_code == 200, granted.text
    assert granted.json()["is_system"] is True
    assert (await client.get(f"{V1}/admin/audit", headers=reviewer.headers)).status_code == 200

    assert (await put_role(client, super_admin, "reviewer", current)).status_code == 200
    assert (await client.get(f"{V1}/admin/audit", headers=reviewer.headers)).status_code == 403


async def test_an_unknown_permission_or_condition_is_refused(client: httpx.AsyncClient, super_admin: Actor) -> None:
    before = await roles(client, super_admin)
    for permissions in ({"listing:teleport": "any"}, {"audit:read": "sometimes"},
                        {"account:read": "own", "account:delete": "own"}):
        response = await put_role(client, super_admin, "reviewer", permissions)
        assert response.status_code == 422, permissions
        assert response.json()["code"] == "unknown_permission"
        assert response.json()["errors"][0]["loc"][:2] == ["body", "permissions"]
        assert (await put_role(client, super_admin, "new_role", permissions)).status_code == 422
    assert await roles(client, super_admin) == before


async def test_an_invalid_role_name_is_refused(client: httpx.AsyncClient, super_admin: Actor) -> None:
    for name in ("Admin", "x", "has space", "a-b", "9lives"):
        response = await put_role(client, super_admin, name, {"account:read": "own"})
        assert response.status_code == 422, name
    assert set(await roles(client, super_admin)) == set(DEFAULT_ROLES)


async def test_a_marketplace_admin_cannot_edit_roles(
        client: httpx.AsyncClient, admin: Actor, super_admin: Actor) -> None:
    before = await roles(client, super_admin)
    escalate = await put_role(client, admin, "marketplace_admin", EVERY_PERMISSION)
    assert escalate.status_code == 403
    assert (await put_role(client, admin, "mine", EVERY_PERMISSION)).status_code == 403
    assert await roles(client, super_admin) == before


async def test_the_super_admin_role_keeps_every_permission(client: httpx.AsyncClient, super_admin: Actor) -> None:
    """Stripping the super admin role would lock every super admin out of role management for good."""
    response = await put_role(client, super_admin, "super_admin", {"account:read": "own"})
    assert response.status_code == 409
    assert response.json()["code"] == "role_locked"
    assert (await roles(client, super_admin))["super_admin"]["permissions"] == EVERY_PERMISSION
    renamed = await put_role(client, super_admin, "super_admin", EVERY_PERMISSION, description="Root.")
    assert renamed.status_code == 200
    assert renamed.json()["description"] == "Root."


async def test_a_role_change_is_audited_once_with_before_and_after(
        client: httpx.AsyncClient, runtime: Runtime, super_admin: Actor) -> None:
    request_id = f"role-{uuid.uuid4().hex[:8]}"
    await put_role(client, super_admin, "support", {"user:read": "any"})
    response = await client.put(f"{V1}/admin/roles/support", headers={**super_admin.headers,
                                                                       "X-Request-ID": request_id},
                                json={"permissions": {"user:read": "any", "audit:read": "any"}})
    assert response.status_code == 200
    rows = await audit_actions(runtime, "role:update")
    assert [(row.resource_type, row.resource_id) for row in rows] == [("role", "support")] * 2
    created, replaced = sorted(rows, key=lambda row: row.at)
    assert created.before is None and created.after == {"permissions": {"user:read": "any"}}
    assert replaced.before == {"permissions": {"user:read": "any"}}
    assert replaced.after == {"permissions": {"user:read": "any", "audit:read": "any"}}
    assert (replaced.actor_id, replaced.request_id) == (uuid.UUID(super_admin.id), request_id)
    async with runtime.db.read_session() as session:
        events = list(await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "role.changed")))
    assert [event.subject for event in events] == ["support", "support"]


# --- who grants which role ---------------------------------------------------------------------

async def test_only_a_super_admin_grants_admin_roles(
        client: httpx.AsyncClient, actors: Actors, admin: Actor, super_admin: Actor) -> None:
    target = await actors.create()
    for role in ("marketplace_admin", "super_admin"):
        assert (await set_roles(client, admin, target, "user", role)).status_code == 403
        created = await client.post(f"{V1}/admin/users", headers=admin.headers, json={
            "email": f"{role}-{uuid.uuid4().hex[:6]}@example.org", "password": DEFAULT_PASSWORD, "roles": [role]})
        assert created.status_code == 403
    assert (await client.get(f"{V1}/me", headers=target.headers)).json()["roles"] == ["user"]

    assert (await set_roles(client, admin, target, "user", "reviewer")).status_code == 200
    granted = await set_roles(client, super_admin, target, "user", "marketplace_admin")
    assert granted.status_code == 200
    assert granted.json()["roles"] == ["marketplace_admin", "user"]
    # a role change ends the holder's sessions; the next sign-in carries the new role
    assert (await client.get(f"{V1}/me", headers=target.headers)).status_code == 401
    again = await actors.login(target.email, target.password)
    assert (await client.get(f"{V1}/admin/users", headers=again.headers)).status_code == 200


async def test_a_marketplace_admin_cannot_take_admin_roles_away(
        client: httpx.AsyncClient, actors: Actors, admin: Actor) -> None:
    other_admin = await actors.create("marketplace_admin")
    root = await actors.create("super_admin")
    assert (await set_roles(client, admin, other_admin, "user")).status_code == 403
    assert (await set_roles(client, admin, root, "user")).status_code == 403
    assert (await client.get(f"{V1}/admin/users", headers=other_admin.headers)).status_code == 200


async def test_a_super_admin_cannot_disable_themselves_or_change_their_own_roles(
        client: httpx.AsyncClient, super_admin: Actor) -> None:
    disabled = await client.patch(f"{V1}/admin/users/{super_admin.id}", headers=super_admin.headers,
                                  json={"is_active": False})
    assert disabled.status_code == 403
    demoted = await set_roles(client, super_admin, super_admin, "user")
    assert demoted.status_code == 403
    assert (await client.get(f"{V1}/admin/roles", headers=super_admin.headers)).status_code == 200


async def test_an_account_holding_more_than_the_admin_cannot_be_changed_by_them(
        client: httpx.AsyncClient, actors: Actors, super_admin: Actor) -> None:
    # An operator that may manage users and roles, but holds less than a super admin.
    response = await put_role(client, super_admin, "operator", {"user:update": "any", "role:update": "any"})
    assert response.status_code == 200
    operator = await actors.create("operator")
    assert (await set_roles(client, operator, super_admin, "user")).status_code == 403
    disabled = await client.patch(f"{V1}/admin/users/{super_admin.id}", headers=operator.headers,
                                  json={"is_active": False})
    assert disabled.status_code == 403
    assert (await client.get(f"{V1}/admin/roles", headers=super_admin.headers)).status_code == 200


async def test_the_last_active_super_admin_cannot_be_removed_or_disabled(runtime: Runtime, actors: Actors,
                                                                         super_admin: Actor) -> None:
    """Defence in depth below the API (which already refuses self-changes and changes by
    lesser admins): the service never leaves the store without an active super admin."""
    from mercato.access.errors import LastSuperAdmin
    from mercato.access.permissions import Condition, Permission
    from mercato.accounts import service as accounts

    everything = {p.value: Condition.any for p in Permission}
    for change in ({"roles": ["user"], "is_active": None}, {"roles": None, "is_active": False}):
        with pytest.raises(LastSuperAdmin):
            async with runtime.db.transaction() as session:
                await accounts.admin_update(session, actor_id=uuid.uuid4(), actor_email="system@example.org",
                                            actor_grants=everything, user_id=uuid.UUID(super_admin.id),
                                            display_name=None, **change)
    second = await actors.create("super_admin")
    async with runtime.db.transaction() as session:
        updated = await accounts.admin_update(session, actor_id=uuid.UUID(second.id), actor_email=second.email,
                                              actor_grants=everything, user_id=uuid.UUID(super_admin.id),
                                              display_name=None, roles=["user"], is_active=None)
    assert updated.id == uuid.UUID(super_admin.id)


async def test_mass_assignment_of_roles_through_the_profile_is_refused(
        client: httpx.AsyncClient, user: Actor) -> None:
    for body in ({"roles": ["super_admin"]}, {"is_active": False}, {"display_name": "x", "roles": ["user"]},
                 {"id": str(uuid.uuid4())}, {"password_hash": "x"}):
        response = await client.patch(f"{V1}/me", headers=user.headers, json=body)
        assert response.status_code == 422, body
    me = (await client.get(f"{V1}/me", headers=user.headers)).json()
    assert (me["roles"], me["is_active"], me["display_name"]) == (["user"], True, "")


async def test_mass_assignment_at_registration_is_refused(client: httpx.AsyncClient) -> None:
    for extra in ({"roles": ["super_admin"]}, {"is_active": True}, {"role": "marketplace_admin"}):
        response = await client.post(f"{V1}/auth/register", json={
            "email": f"sneaky-{uuid.uuid4().hex[:6]}@example.org", "password": DEFAULT_PASSWORD, **extra})
        assert response.status_code == 422, extra
        assert response.json()["code"] == "validation_failed"


async def test_an_unknown_role_in_a_request_body_is_invalid(
        client: httpx.AsyncClient, user: Actor, super_admin: Actor) -> None:
    patched = await set_roles(client, super_admin, user, "user", "wizard")
    assert (patched.status_code, patched.json()["code"]) == (422, "unknown_role")
    assert patched.json()["errors"] == [{"loc": ["body", "roles"], "msg": "unknown role 'wizard'",
                                         "type": "unknown_role"}]
    created = await client.post(f"{V1}/admin/users", headers=super_admin.headers, json={
        "email": f"w-{uuid.uuid4().hex[:6]}@example.org", "password": DEFAULT_PASSWORD, "roles": ["wizard"]})
    assert (created.status_code, created.json()["code"]) == (422, "unknown_role")
    assert (await client.get(f"{V1}/me", headers=user.headers)).json()["roles"] == ["user"]


async def test_roles_beyond_names_the_roles_that_grant_more_than_the_caller_holds(
        client: httpx.AsyncClient, runtime: Runtime, super_admin: Actor) -> None:
    from mercato.access import service
    from mercato.access.permissions import Condition
    from mercato.access.seeds import MARKETPLACE_ADMIN_GRANTS

    await put_role(client, super_admin, "operator", {"role:update": "any"})
    await put_role(client, super_admin, "helper", {"user:read": "any"})
    await put_role(client, super_admin, "broad_reader", {"account:read": "any"})
    admin_grants = {p.value: c for p, c in MARKETPLACE_ADMIN_GRANTS.items()}
    async with runtime.db.read_session() as session:
        beyond = await service.roles_beyond(session, admin_grants, [
            "user", "developer", "reviewer", "helper", "operator", "broad_reader", "marketplace_admin",
            "super_admin"])
        # admin roles are beyond anyone without role:update, whatever they carry
        assert beyond == ["broad_reader", "marketplace_admin", "operator", "super_admin"]
        assert await service.roles_beyond(session, {p: Condition.any for p in EVERY_PERMISSION},
                                          ["super_admin", "operator"]) == []


# Found by these tests in accounts/ and fixed there.

async def test_a_marketplace_admin_cannot_hand_out_a_custom_role_that_carries_more_than_they_hold(
        client: httpx.AsyncClient, actors: Actors, admin: Actor, super_admin: Actor) -> None:
    await put_role(client, super_admin, "operator", {"role:update": "any", "user:update": "any"})
    target = await actors.create()
    granted = await set_roles(client, admin, target, "user", "operator")
    created = await client.post(f"{V1}/admin/users", headers=admin.headers, json={
        "email": f"op-{uuid.uuid4().hex[:6]}@example.org", "password": DEFAULT_PASSWORD, "roles": ["operator"]})
    assert (granted.status_code, created.status_code) == (403, 403)


async def test_a_marketplace_admin_cannot_disable_a_super_admin(
        client: httpx.AsyncClient, actors: Actors, admin: Actor, super_admin: Actor) -> None:
    await actors.create("super_admin")  # so that last_super_admin is not what refuses it
    response = await client.patch(f"{V1}/admin/users/{super_admin.id}", headers=admin.headers,
                                  json={"is_active": False})
    assert response.status_code == 403
    assert (await client.get(f"{V1}/admin/roles", headers=super_admin.headers)).status_code == 200


async def test_a_user_role_change_is_audited_once(
        client: httpx.AsyncClient, runtime: Runtime, actors: Actors, super_admin: Actor) -> None:
    target = await actors.create()
    request_id = f"roles-{uuid.uuid4().hex[:8]}"
    response = await client.patch(f"{V1}/admin/users/{target.id}", json={"roles": ["user", "reviewer"]},
                                  headers={**super_admin.headers, "X-Request-ID": request_id})
    assert response.status_code == 200
    async with runtime.db.read_session() as session:
        rows = list(await session.scalars(select(AuditEntry).where(AuditEntry.request_id == request_id)))
    assert [row.action for row in rows] == ["user:roles_change"]
