"""O1 / A8 / INV-6: the audit log records every privileged action once, is append-only,
and is queryable and exportable by admins."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from mercato.app.runtime import Runtime
from mercato.models import AuditEntry
from tests.support.actors import Actor, Actors

V1 = "/api/v1"


async def audit_rows(runtime: Runtime, **where: object) -> list[AuditEntry]:
    async with runtime.db.read_session() as session:
        query = select(AuditEntry).order_by(AuditEntry.at)
        for column, value in where.items():
            query = query.where(getattr(AuditEntry, column) == value)
        return list(await session.scalars(query))


async def pending_application(client: httpx.AsyncClient, applicant: Actor, slug: str | None = None) -> str:
    response = await client.post(f"{V1}/publisher-applications", headers=applicant.headers, json={
        "slug": slug or f"app-{uuid.uuid4().hex[:8]}", "name": "Applicant Co"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def some_audit_rows(client: httpx.AsyncClient, actors: Actors, admin: Actor, count: int) -> None:
    """``count`` publisher creations by ``admin``: one publisher:create row each."""
    owner = await actors.create()
    for _ in range(count):
        response = await client.post(f"{V1}/publishers", headers=admin.headers, json={
            "slug": f"p-{uuid.uuid4().hex[:8]}", "name": "Audited", "owner_email": owner.email})
        assert response.status_code == 201, response.text


# --- append-only (INV-6), on SQLite and on PostgreSQL -------------------------------------------

async def test_audit_rows_cannot_be_updated_or_deleted_through_the_database(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    await client.get(f"{V1}/admin/users", headers=user.headers)  # a denied row
    before = [(row.id, row.action, row.result) for row in await audit_rows(runtime)]
    assert before, "the test needs rows to tamper with"
    for statement in ("UPDATE audit_log SET action = 'tampered'",
                      "UPDATE audit_log SET result = 'success' WHERE result = 'denied'",
                      "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with runtime.db.transaction() as session:
                await session.execute(text(statement))
        assert [(row.id, row.action, row.result) for row in await audit_rows(runtime)] == before, statement


# --- one row per privileged action (A8) ----------------------------------------------------------

async def test_approving_an_application_writes_exactly_one_audit_row_with_the_request_context(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, admin: Actor) -> None:
    applicant = await actors.create()
    application = await pending_application(client, applicant)
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    response = await client.post(f"{V1}/admin/publisher-applications/{application}/approve", headers={
        **admin.headers, "X-Request-ID": request_id, "User-Agent": "audit-test/1.0"})
    assert response.status_code == 200, response.text
    assert response.headers["X-Request-ID"] == request_id

    rows = await audit_rows(runtime, action="publisher_application:approve")
    assert len(rows) == 1
    row = rows[0]
    assert (row.actor_id, row.actor_email) == (uuid.UUID(admin.id), admin.email)
    assert (row.resource_type, row.resource_id, row.result) == ("publisher_application", application, "success")
    assert row.request_id == request_id
    assert row.user_agent == "audit-test/1.0"
    assert row.ip  # the ASGI client address
    assert row.before == {"status": "pending"}
    assert row.after is not None and row.after["status"] == "approved"
    assert [r.request_id for r in await audit_rows(runtime)].count(request_id) == 1, \
        "one privileged action, one audit row"


async def test_a_failed_privileged_action_leaves_no_success_row(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, admin: Actor) -> None:
    applicant = await actors.create()
    application = await pending_application(client, applicant)
    first = await client.post(f"{V1}/admin/publisher-applications/{application}/approve", headers=admin.headers)
    assert first.status_code == 200
    again = await client.post(f"{V1}/admin/publisher-applications/{application}/approve", headers=admin.headers)
    assert again.status_code == 409
    assert len(await audit_rows(runtime, action="publisher_application:approve")) == 1


async def test_a_refused_authorization_is_audited_as_denied(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    refused = [("GET", f"{V1}/admin/users", "user:read"), ("GET", f"{V1}/admin/audit", "audit:read"),
               ("PUT", f"{V1}/admin/roles/sneaky", "role:update")]
    for method, path, permission in refused:
        request_id = f"deny-{uuid.uuid4().hex[:12]}"
        body = {"json": {"permissions": {"role:update": "any"}}} if method == "PUT" else {}
        response = await client.request(method, path, headers={**user.headers, "X-Request-ID": request_id}, **body)
        assert response.status_code == 403
        rows = await audit_rows(runtime, action="authorization:denied", request_id=request_id)
        assert len(rows) == 1, path
        row = rows[0]
        assert (row.actor_id, row.actor_email, row.result) == (uuid.UUID(user.id), user.email, "denied")
        assert (row.resource_type, row.resource_id) == ("route", f"{method} {path.replace('sneaky', '{name}')}")
        assert row.after == {"permission": permission}
    assert len(await audit_rows(runtime)) == len(refused)


async def test_anonymous_callers_are_refused_without_an_audit_row(
        client: httpx.AsyncClient, runtime: Runtime) -> None:
    assert (await client.get(f"{V1}/admin/users")).status_code == 401
    assert await audit_rows(runtime, action="authorization:denied") == []


# --- querying: GET /admin/audit ------------------------------------------------------------------

async def test_the_audit_log_filters_by_actor_action_and_resource(
        client: httpx.AsyncClient, actors: Actors, admin: Actor, super_admin: Actor) -> None:
    owner = await actors.create()
    created = await client.post(f"{V1}/publishers", headers=admin.headers, json={
        "slug": "audited-co", "name": "Audited Co", "owner_email": owner.email})
    publisher_id = created.json()["id"]
    await client.patch(f"{V1}/publishers/audited-co", headers=super_admin.headers, json={"verified": True})
    await client.get(f"{V1}/admin/roles", headers=owner.headers)  # denied

    async def search(**params: str) -> list[dict]:  # type: ignore[type-arg]
        response = await client.get(f"{V1}/admin/audit", headers=admin.headers, params={**params, "limit": "100"})
        assert response.status_code == 200, response.text
        return response.json()["items"]  # type: ignore[no-any-return]

    by_admin = await search(actor=admin.id)
    assert {row["action"] for row in by_admin} == {"publisher:create"}
    assert {row["actor_id"] for row in by_admin} == {admin.id}
    verified = await search(action="publisher:verify")
    assert [(row["actor_id"], row["resource_id"]) for row in verified] == [(super_admin.id, publisher_id)]
    on_publisher = await search(resource=f"publisher:{publisher_id}")
    assert {row["action"] for row in on_publisher} == {"publisher:create", "publisher:verify"}
    assert {row["resource_id"] for row in await search(resource="publisher")} == {publisher_id}
    assert await search(resource=f"publisher:{uuid.uuid4()}") == []
    denied = await search(action="authorization:denied")
    assert [(row["actor_id"], row["result"]) for row in denied] == [(owner.id, "denied")]


async def test_the_audit_log_filters_by_time_with_timezones(
        client: httpx.AsyncClient, actors: Actors, admin: Actor) -> None:
    await some_audit_rows(client, actors, admin, 2)
    now = datetime.now(UTC)

    async def count(**params: str) -> int:
        response = await client.get(f"{V1}/admin/audit", headers=admin.headers,
                                    params={**params, "action": "publisher:create", "limit": "100"})
        assert response.status_code == 200, response.text
        return len(response.json()["items"])

    hour_ago, in_an_hour = now - timedelta(hours=1), now + timedelta(hours=1)
    assert await count(since=hour_ago.isoformat()) == 2
    assert await count(since=in_an_hour.isoformat()) == 0
    assert await count(until=hour_ago.isoformat()) == 0
    assert await count(since=hour_ago.isoformat(), until=in_an_hour.isoformat()) == 2
    # the same instants written in another zone mean the same thing
    plus_two = timezone(timedelta(hours=2))
    assert await count(since=hour_ago.astimezone(plus_two).isoformat()) == 2
    assert await count(since=in_an_hour.astimezone(plus_two).isoformat()) == 0
    assert await count(until=in_an_hour.astimezone(plus_two).isoformat()) == 2
    assert await count(since=in_an_hour.strftime("%Y-%m-%dT%H:%M:%SZ")) == 0


async def test_a_time_filter_without_a_timezone_is_refused(client: httpx.AsyncClient, admin: Actor) -> None:
    for param in ("since", "until"):
        response = await client.get(f"{V1}/admin/audit", headers=admin.headers,
                                    params={param: "2026-01-01T00:00:00"})
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"][0]["loc"] == ["query", param]


async def test_audit_pages_have_no_duplicates_and_no_gaps(
        client: httpx.AsyncClient, actors: Actors, admin: Actor) -> None:
    await some_audit_rows(client, actors, admin, 7)
    everything = await client.get(f"{V1}/admin/audit", headers=admin.headers, params={"limit": "100"})
    expected = [row["id"] for row in everything.json()["items"]]
    assert len(expected) == 7
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        response = await client.get(f"{V1}/admin/audit", headers=admin.headers, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        seen += [row["id"] for row in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert pages == 4
    ats = [row["at"] for row in everything.json()["items"]]
    assert ats == sorted(ats, reverse=True), "newest first"


async def test_a_forged_cursor_is_refused(client: httpx.AsyncClient, admin: Actor) -> None:
    response = await client.get(f"{V1}/admin/audit", headers=admin.headers, params={"cursor": "not-a-cursor"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_cursor"


# --- export: format=csv --------------------------------------------------------------------------

async def test_the_csv_export_has_a_header_and_one_line_per_row(
        client: httpx.AsyncClient, actors: Actors, runtime: Runtime, admin: Actor) -> None:
    await some_audit_rows(client, actors, admin, 3)
    response = await client.get(f"{V1}/admin/audit", headers=admin.headers,
                                params={"format": "csv", "action": "publisher:create"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers.get("content-disposition", "")
    lines = response.text.splitlines()
    assert lines[0].split(",")[:5] == ["id", "at", "actor_id", "actor_email", "action"]
    assert len(lines) == 1 + 3
    records = list(csv.DictReader(io.StringIO(response.text)))
    stored = await audit_rows(runtime, action="publisher:create")
    assert sorted(r["id"] for r in records) == sorted(str(r.id) for r in stored)
    assert {r["actor_email"] for r in records} == {admin.email}


async def test_the_csv_export_defuses_formula_looking_values(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor, admin: Actor) -> None:
    hostile = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+1", "-2+3", "@SUM(A1)"]
    for agent in hostile:
        response = await client.get(f"{V1}/admin/users", headers={**user.headers, "User-Agent": agent})
        assert response.status_code == 403
    response = await client.get(f"{V1}/admin/audit", headers=admin.headers,
                                params={"format": "csv", "action": "authorization:denied"})
    agents = [record["user_agent"] for record in csv.DictReader(io.StringIO(response.text))]
    assert sorted(agents) == sorted("'" + agent for agent in hostile)
    for record in csv.DictReader(io.StringIO(response.text)):
        for value in record.values():
            assert value[:1] not in ("=", "+", "-", "@"), value


async def test_the_csv_export_is_for_admins_only(client: httpx.AsyncClient, user: Actor) -> None:
    response = await client.get(f"{V1}/admin/audit", headers=user.headers, params={"format": "csv"})
    assert response.status_code == 403
    assert "text/csv" not in response.headers["content-type"]


async def test_repeated_csv_exports_do_not_exhaust_the_database_connections(
        client: httpx.AsyncClient, actors: Actors, admin: Actor) -> None:
    await some_audit_rows(client, actors, admin, 1)
    for _ in range(12):
        response = await client.get(f"{V1}/admin/audit", headers=admin.headers, params={"format": "csv"})
        assert response.status_code == 200
    assert (await client.get(f"{V1}/admin/audit", headers=admin.headers)).status_code == 200


async def test_audit_rows_are_stored_once_per_action_not_per_read(
        client: httpx.AsyncClient, runtime: Runtime, admin: Actor) -> None:
    for _ in range(3):
        assert (await client.get(f"{V1}/admin/audit", headers=admin.headers)).status_code == 200
    async with runtime.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == 0


async def test_timestamps_inside_audit_rows_are_rfc3339(
        client: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    created = await client.post(f"{V1}/me/tokens", headers=user.headers, json={"name": "ci", "expires_in_days": 30})
    assert created.status_code == 201
    [row] = await audit_rows(runtime, action="token:create")
    assert row.after is not None
    expires_at = row.after["expires_at"]
    assert "T" in expires_at
    assert datetime.fromisoformat(expires_at) == datetime.fromisoformat(created.json()["expires_at"])
