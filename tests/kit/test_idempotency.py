"""Idempotency keys (API.md "Conventions"; QUALITY M2–M5), on POST /api/v1/publisher-applications.

Runs on SQLite by default and on PostgreSQL in the scaled pass.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from mercato.access.dependencies import idempotent, requires
from mercato.access.permissions import Permission
from mercato.access.principal import Principal
from mercato.app.runtime import Runtime
from mercato.kit.clock import utcnow
from mercato.kit.http import install_error_handlers
from mercato.models import IdempotencyRecord, OutboxEvent, PublisherApplication
from mercato.platform import idempotency
from mercato.platform.routing import TransactionalRoute, WriteSession
from tests.support.actors import Actor, Actors

URL = "/api/v1/publisher-applications"
EVENT = "publisher.application_submitted"


def _body(slug: str | None = None) -> dict[str, Any]:
    slug = slug or f"pub-{uuid.uuid4().hex[:8]}"
    return {"slug": slug, "name": f"Publisher {slug}", "description": "We make things."}


def _headers(actor: Actor, key: str | None) -> dict[str, str]:
    headers = dict(actor.headers)
    if key is not None:
        headers[idempotency.HEADER] = key
    return headers


async def _post(client: httpx.AsyncClient, actor: Actor, key: str | None, body: Any,
                **extra_headers: str) -> httpx.Response:
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return await client.post(URL, content=content, headers={
        **_headers(actor, key), "Content-Type": "application/json", **extra_headers})


async def _applications(runtime: Runtime, user_id: str) -> int:
    async with runtime.db.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(PublisherApplication)
                                        .where(PublisherApplication.user_id == uuid.UUID(user_id))) or 0)


async def _events(runtime: Runtime, user_id: str) -> int:
    async with runtime.db.read_session() as session:
        events = (await session.scalars(select(OutboxEvent).where(OutboxEvent.type == EVENT))).all()
    return sum(1 for event in events if event.data.get("user_id") == user_id)


async def _record(runtime: Runtime, actor: Actor, key: str) -> IdempotencyRecord | None:
    async with runtime.db.read_session() as session:
        return await session.get(IdempotencyRecord, (f"user:{actor.id}", key))


async def _set_record(runtime: Runtime, actor: Actor, key: str, **values: Any) -> None:
    async with runtime.db.transaction() as session:
        result = await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.owner == f"user:{actor.id}", IdempotencyRecord.key == key)
            .values(**values))
        assert result.rowcount == 1  # type: ignore[attr-defined]


# --- M2: same key, same body -> one effect, identical replies -----------------------------------

async def test_replay_returns_the_stored_status_and_body_and_runs_once(client, runtime, user) -> None:  # type: ignore[no-untyped-def]
    body, key = _body(), f"key-{uuid.uuid4()}"
    body["description"] = "ünïcödé — \U0001f642 \u2028 \\u0000"
    first = await _post(client, user, key, body)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    second = await _post(client, user, key, body)
    assert second.status_code == first.status_code
    assert second.content == first.content  # byte for byte, also on PostgreSQL (JSONB reorders keys)
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["content-type"].startswith("application/json")
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    assert await _applications(runtime, user.id) == 1
    assert await _events(runtime, user.id) == 1
    record = await _record(runtime, user, key)
    assert record is not None and record.state == "done" and record.response_status == 201


async def test_json_spacing_and_key_order_are_the_same_body(client, runtime, user) -> None:  # type: ignore[no-untyped-def]
    body, key = _body(), f"key-{uuid.uuid4()}"
    first = await _post(client, user, key, json.dumps(body))
    assert first.status_code == 201, first.text
    reordered = "{\n  " + ",\n  ".join(f'"{k}" :  {json.dumps(v)}' for k, v in reversed(list(body.items()))) + "\n}\n"
    assert reordered != json.dumps(body)
    second = await _post(client, user, key, reordered)
    assert second.status_code == 201, second.text
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert await _applications(runtime, user.id) == 1


async def test_concurrent_copies_have_exactly_one_effect(client, runtime, user) -> None:  # type: ignore[no-untyped-def]
    body, key = _body(), f"key-{uuid.uuid4()}"
    responses = await asyncio.gather(*(_post(client, user, key, body) for _ in range(5)))
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, [r.text for r in responses]
    created = [r for r in responses if r.status_code == 201]
    assert created, [r.text for r in responses]
    originals = [r for r in created if "idempotent-replayed" not in r.headers]
    assert len(originals) == 1
    for replay in created:
        assert replay.json() == originals[0].json()
    for busy in (r for r in responses if r.status_code == 409):
        problem = busy.json()
        assert problem["code"] == "idempotency_key_in_flight", problem
        assert busy.headers["content-type"].startswith("application/problem+json")
        assert int(busy.headers["retry-after"]) >= 1
    assert await _applications(runtime, user.id) == 1
    assert await _events(runtime, user.id) == 1
    # The 409s were retryable: a retry now gets the stored answer.
    retry = await _post(client, user, key, body)
    assert retry.status_code == 201 and retry.json() == originals[0].json()
    assert retry.headers["idempotent-replayed"] == "true"


async def test_in_flight_duplicate_gets_409_with_retry_after(client, runtime, user) -> None:  # type: ignore[no-untyped-def]
    """A duplicate arriving while the first still holds its lease (simulated in the DB)."""
    body, key = _body(), f"key-{uuid.uuid4()}"
    request_hash = idempotency.fingerprint("POST", URL, json.dumps(body).encode())
    now = utcnow()
    async with runtime.db.transaction() as session:
        session.add(IdempotencyRecord(owner=f"user:{user.id}", key=key, request_hash=request_hash, state="in_flight",
                                      lease_id=str(uuid.uuid4()), locked_until=now + timedelta(minutes=1),
                                      created_at=now, expires_at=now + timedelta(hours=24)))
    busy = await _post(client, user, key, body)
    assert busy.status_code == 409, busy.text
    assert busy.json()["code"] == "idempotency_key_in_flight"
    assert busy.headers["retry-after"] == "1"
    assert await _applications(runtime, user.id) == 0


# --- M3: same key, other body -> 422; bad keys -> 400 ---------------------------------------------

async def test_same_key_with_a_different_body_is_refused(client, runtime, user) -> None:  # type: ignore[no-untyped-def]
    key = f"key-{uuid.uuid4()}"
    first = await _post(client, user, key, _body())
    assert first.status_code == 201, first.text
    other = await _post(client, user, key, _body())
    assert other.status_code == 422, other.text
    problem = other.json()
    assert problem["code"] == "idempotency_key_reused"
    assert other.headers["content-type"].startswith("application/problem+json")
    assert await _applications(runtime, user.id) == 1


async def test_key_longer_than_255_characters_is_a_400(client, runtime, user) -> None:  # type: ignore[no-untyped-def]
    response = await _post(client, user, "k" * 256, _body())
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "idempotency_key_invalid"
    assert await _applications(runtime, user.id) == 0
    exactly_255 = await _post(client, user, "k" * 255, _body())
    assert exactly_255.status_code == 201, exactly_255.text


async def test_empty_key_is_a_400(client, runtime, user) -> None:  # type: ignore[no-untyped-def]
    response = await _post(client, user, "", _body())
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "idempotency_key_invalid"
    assert await _applications(runtime, user.id) == 0


def test_validate_key() -> None:
    assert idempotency.validate_key(None, required=False) is None
    assert idempotency.validate_key("a", required=True) == "a"
    assert idempotency.validate_key("x" * 255, required=True) == "x" * 255
    with pytest.raises(idempotency.IdempotencyKeyMissing) as missing:
        idempotency.validate_key(None, required=True)
    assert missing.value.status == 400 and missing.value.code == "idempotency_key_missing"
    for bad in ("", "x" * 256, "tab\there", "nl\nhere"):
        with pytest.raises(idempotency.IdempotencyKeyInvalid) as invalid:
            idempotency.validate_key(bad, required=False)
        assert invalid.value.status == 400


def test_fingerprint_compares_json_by_value_and_includes_method_and_path() -> None:
    a = idempotency.fingerprint("POST", "/x", b'{"a": 1, "b": [1, 2]}')
    assert a == idempotency.fingerprint("POST", "/x", b'{ "b":[1,2],\n"a":1 }')
    assert a != idempotency.fingerprint("POST", "/x", b'{"a": 2, "b": [1, 2]}')
    assert a != idempotency.fingerprint("POST", "/y", b'{"a": 1, "b": [1, 2]}')
    assert a != idempotency.fingerprint("PUT", "/x", b'{"a": 1, "b": [1, 2]}')
    # Not JSON: compared byte for byte, never an error.
    assert idempotency.fingerprint("POST", "/x", b"\xff{") == idempotency.fingerprint("POST", "/x", b"\xff{")
    assert idempotency.fingerprint("POST", "/x", b"") != idempotency.fingerprint("POST", "/x", b"{}")


# --- M4: keys are scoped per caller ---------------------------------------------------------------

async def test_two_callers_using_the_same_key_each_get_their_own_effect(client, runtime, actors: Actors) -> None:  # type: ignore[no-untyped-def]
    alice, bob = await actors.create(), await actors.create()
    key = "shared-key"
    first = await _post(client, alice, key, _body())
    second = await _post(client, bob, key, _body())  # another body: must not be "reused"
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert "idempotent-replayed" not in second.headers
    assert first.json()["id"] != second.json()["id"]
    assert second.json()["user_id"] == bob.id
    # Even the very same body runs again for another caller.
    body = _body()
    carol, dave = await actors.create(), await actors.create()
    third = await _post(client, carol, "same-body", body)
    fourth = await _post(client, dave, "same-body", body)
    assert third.status_code == 201 and fourth.status_code == 409  # the slug is pending for carol: a real run
    assert fourth.json()["code"] == "slug_taken"
    for actor in (alice, bob, carol):
        assert await _applications(runtime, actor.id) == 1


# --- M5: retention --------------------------------------------------------------------------------

async def test_after_retention_the_key_is_new_again(client, runtime, user) -> None:  # type: ignore[no-untyped-def]
    key = f"key-{uuid.uuid4()}"
    first = await _post(client, user, key, _body())
    assert first.status_code == 201, first.text
    record = await _record(runtime, user, key)
    assert record is not None
    retention = record.expires_at - record.created_at
    assert timedelta(hours=23, minutes=59) < retention <= timedelta(hours=24, seconds=1)
    # Still within retention: another body is refused.
    assert (await _post(client, user, key, _body())).status_code == 422
    await _set_record(runtime, user, key, expires_at=utcnow() - timedelta(seconds=1))
    # Past retention: the key is new (this body differs, so a replay is impossible). The
    # first application is still pending, which proves this request really ran.
    again = await _post(client, user, key, _body())
    assert again.status_code == 409 and again.json()["code"] == "application_pending", again.text
    # ... and, failed, it left nothing behind: the expired record is gone too.
    assert await _record(runtime, user, key) is None


async def test_purge_expired_removes_only_expired_records(client, runtime, user) -> None:  # type: ignore[no-untyped-def]
    old, fresh = f"old-{uuid.uuid4()}", f"fresh-{uuid.uuid4()}"
    assert (await _post(client, user, old, _body())).status_code == 201
    await _set_record(runtime, user, old, expires_at=utcnow() - timedelta(minutes=1))
    assert (await _post(client, user, fresh, _body())).status_code == 409  # pending; not stored
    async with runtime.db.read_session() as session:
        before = await session.scalar(select(func.count()).select_from(IdempotencyRecord))
    async with runtime.db.transaction() as session:
        assert await idempotency.purge_expired(session) == 1
    async with runtime.db.read_session() as session:
        after = await session.scalar(select(func.count()).select_from(IdempotencyRecord))
    assert before == 1 and after == 0


# --- failures are not stored ----------------------------------------------------------------------

async def test_a_failed_request_is_not_stored_and_may_be_retried(client, runtime, actors: Actors, admin) -> None:  # type: ignore[no-untyped-def]
    applicant = await actors.create()
    pending = await _post(client, applicant, f"first-{uuid.uuid4()}", _body())
    assert pending.status_code == 201
    key, body = f"key-{uuid.uuid4()}", _body()
    refused = await _post(client, applicant, key, body)
    assert refused.status_code == 409 and refused.json()["code"] == "application_pending"
    assert await _record(runtime, applicant, key) is None
    # Fix the cause (an admin rejects the pending application) and retry with the same key.
    reject = await client.post(f"/api/v1/admin/publisher-applications/{pending.json()['id']}/reject",
                               headers=admin.headers, json={"reason": "Not this time"})
    assert reject.status_code == 200, reject.text
    retried = await _post(client, applicant, key, body)
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert await _applications(runtime, applicant.id) == 2
    assert (await _post(client, applicant, key, body)).headers["idempotent-replayed"] == "true"


async def test_a_validation_error_with_a_key_stores_nothing(client, runtime, user) -> None:  # type: ignore[no-untyped-def]
    key = f"key-{uuid.uuid4()}"
    bad = await _post(client, user, key, {"slug": "NOT A SLUG", "name": "x"})
    assert bad.status_code == 422
    assert await _record(runtime, user, key) is None
    good = await _post(client, user, key, _body())
    assert good.status_code == 201, good.text


async def test_an_unauthenticated_request_with_a_key_stores_nothing(client, runtime) -> None:  # type: ignore[no-untyped-def]
    response = await client.post(URL, json=_body(), headers={idempotency.HEADER: "anon-key"})
    assert response.status_code == 401
    async with runtime.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0


# --- crash safety ---------------------------------------------------------------------------------

async def test_a_claim_whose_lease_expired_is_taken_over_by_a_retry(client, runtime, user) -> None:  # type: ignore[no-untyped-def]
    """A holder that crashed before committing left only its claim; once the lease runs out, a retry runs."""
    body, key = _body(), f"key-{uuid.uuid4()}"
    request_hash = idempotency.fingerprint("POST", URL, json.dumps(body).encode())
    crashed = await idempotency.claim(runtime.db, owner=f"user:{user.id}", key=key, request_hash=request_hash,
                                      retention=timedelta(hours=24), lease=timedelta(minutes=1))
    assert (await _post(client, user, key, body)).status_code == 409  # still leased
    await _set_record(runtime, user, key, locked_until=utcnow() - timedelta(seconds=1))
    retry = await _post(client, user, key, body)
    assert retry.status_code == 201, retry.text
    assert "idempotent-replayed" not in retry.headers
    record = await _record(runtime, user, key)
    assert record is not None and record.state == "done" and record.lease_id != crashed.lease_id
    assert await _applications(runtime, user.id) == 1
    assert await _events(runtime, user.id) == 1


async def test_a_late_finisher_whose_lease_was_taken_over_cannot_commit(runtime, user) -> None:  # type: ignore[no-untyped-def]
    from starlette.responses import JSONResponse

    owner, key, request_hash = f"user:{user.id}", f"key-{uuid.uuid4()}", "h" * 64
    late = await idempotency.claim(runtime.db, owner=owner, key=key, request_hash=request_hash,
                                   retention=timedelta(hours=24), lease=timedelta(minutes=1))
    await _set_record(runtime, user, key, locked_until=utcnow() - timedelta(seconds=1))
    retry = await idempotency.claim(runtime.db, owner=owner, key=key, request_hash=request_hash,
                                    retention=timedelta(hours=24), lease=timedelta(minutes=1))
    assert retry.lease_id != late.lease_id

    marker = f"late-{uuid.uuid4().hex[:8]}"
    with pytest.raises(idempotency.IdempotencyKeyInFlight):
        async with runtime.db.transaction() as session:
            # The late finisher's effects, in the same transaction as its completion.
            session.add(OutboxEvent(id=uuid.uuid4(), type=marker, source="test", subject="x", time=utcnow(),
                                    data={}))
            await session.flush()
            await idempotency.complete(session, late, JSONResponse({"late": True}, status_code=201))
    async with runtime.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxEvent)
                                    .where(OutboxEvent.type == marker)) == 0  # rolled back
    record = await _record(runtime, user, key)
    assert record is not None and record.state == "in_flight" and record.lease_id == retry.lease_id
    # The retry, which holds the lease, completes.
    async with runtime.db.transaction() as session:
        await idempotency.complete(session, retry, JSONResponse({"ok": True}, status_code=201))
    record = await _record(runtime, user, key)
    assert record is not None and record.state == "done" and record.response_status == 201
    with pytest.raises(idempotency.Replay) as replay:
        await idempotency.claim(runtime.db, owner=owner, key=key, request_hash=request_hash,
                                retention=timedelta(hours=24), lease=timedelta(minutes=1))
    assert bytes(replay.value.response.body) == b'{"ok":true}'
    # A late release by the old holder does not drop the finished record.
    await idempotency.release(runtime.db, late)
    assert await _record(runtime, user, key) is not None


@pytest.mark.parametrize(("stored", "content_type"), [
    (b"hello \xc3\xa9", "text/plain; charset=utf-8"),
    (b"\x00\xff\xfe binary", "application/octet-stream"),
    (b'{"b": 1,  "a": "\\u0000"}', "application/json"),
])
async def test_stored_bodies_replay_byte_for_byte(runtime, user, stored: bytes, content_type: str) -> None:  # type: ignore[no-untyped-def]
    from starlette.responses import Response

    owner, key = f"user:{user.id}", f"key-{uuid.uuid4()}"
    claim = await idempotency.claim(runtime.db, owner=owner, key=key, request_hash="h" * 64,
                                    retention=timedelta(hours=1), lease=timedelta(minutes=1))
    async with runtime.db.transaction() as session:
        await idempotency.complete(session, claim, Response(stored, status_code=202, media_type=content_type,
                                                            headers={"Location": "/x/1", "X-Other": "dropped"}))
    with pytest.raises(idempotency.Replay) as replay:
        await idempotency.claim(runtime.db, owner=owner, key=key, request_hash="h" * 64,
                                retention=timedelta(hours=1), lease=timedelta(minutes=1))
    response = replay.value.response
    assert response.status_code == 202 and bytes(response.body) == stored
    assert response.headers["content-type"] == content_type
    assert response.headers["location"] == "/x/1" and "x-other" not in response.headers
    assert response.headers["idempotent-replayed"] == "true"


async def test_records_stored_as_parsed_json_still_replay(runtime, user) -> None:  # type: ignore[no-untyped-def]
    owner, key, now = f"user:{user.id}", f"key-{uuid.uuid4()}", utcnow()
    async with runtime.db.transaction() as session:
        session.add(IdempotencyRecord(owner=owner, key=key, request_hash="h" * 64, state="done", lease_id="x",
                                      locked_until=now, created_at=now, expires_at=now + timedelta(hours=1),
                                      response_status=201, response_body={"id": 1},
                                      response_headers={"content-type": "application/json"}))
    with pytest.raises(idempotency.Replay) as replay:
        await idempotency.claim(runtime.db, owner=owner, key=key, request_hash="h" * 64,
                                retention=timedelta(hours=1), lease=timedelta(minutes=1))
    assert replay.value.response.status_code == 201 and bytes(replay.value.response.body) == b'{"id":1}'


# --- required keys --------------------------------------------------------------------------------

def _required_key_app(runtime: Runtime) -> FastAPI:
    """A tiny app shaped like the money routes: permission, then a required key, then the write."""
    app = FastAPI()
    app.state.runtime = runtime
    install_error_handlers(app)

    from fastapi import APIRouter

    router = APIRouter(route_class=TransactionalRoute)

    @router.post("/charge", status_code=201)
    async def charge(body: dict[str, int],
                     actor: Annotated[Principal, requires(Permission.publisher_application_create)],
                     key: Annotated[str | None, idempotent(required=True)], session: WriteSession) -> dict[str, Any]:
        event_id = uuid.uuid4()
        session.add(OutboxEvent(id=event_id, type="test.charged", source="test", subject=str(actor.user_id),
                                time=utcnow(), data={"amount": body["amount"], "key": key}))
        await session.flush()
        return {"event": str(event_id), "amount": body["amount"]}

    @router.post("/refusable", status_code=201)
    async def refusable(body: dict[str, bool],
                        actor: Annotated[Principal, requires(Permission.publisher_application_create)],
                        key: Annotated[str | None, idempotent(required=False)]) -> Any:
        if body.get("refuse"):  # an error returned rather than raised
            from starlette.responses import JSONResponse
            return JSONResponse({"code": "refused"}, status_code=409)
        return {"done": True}

    app.include_router(router)
    return app


async def test_a_required_key_that_is_missing_is_a_400(runtime, user) -> None:  # type: ignore[no-untyped-def]
    app = _required_key_app(runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        missing = await http.post("/charge", json={"amount": 5}, headers=user.headers)
        assert missing.status_code == 400, missing.text
        assert missing.json()["code"] == "idempotency_key_missing"
        assert missing.headers["content-type"].startswith("application/problem+json")
        anonymous = await http.post("/charge", json={"amount": 5})
        assert anonymous.status_code == 401  # the permission is checked first
        first = await http.post("/charge", json={"amount": 5}, headers=_headers(user, "k1"))
        again = await http.post("/charge", json={"amount": 5}, headers=_headers(user, "k1"))
        other = await http.post("/charge", json={"amount": 6}, headers=_headers(user, "k1"))
    assert first.status_code == 201 and again.status_code == 201, (first.text, again.text)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    async with runtime.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxEvent)
                                    .where(OutboxEvent.type == "test.charged")) == 1


async def test_an_error_response_returned_by_a_handler_is_not_stored(runtime, user) -> None:  # type: ignore[no-untyped-def]
    app = _required_key_app(runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        refused = await http.post("/refusable", json={"refuse": True}, headers=_headers(user, "r1"))
        assert refused.status_code == 409
        assert await _record(runtime, user, "r1") is None
        again = await http.post("/refusable", json={"refuse": True}, headers=_headers(user, "r1"))
        assert again.status_code == 409 and "idempotent-replayed" not in again.headers
        done = await http.post("/refusable", json={"refuse": False}, headers=_headers(user, "r2"))
        assert done.status_code == 201
        replay = await http.post("/refusable", json={"refuse": False}, headers=_headers(user, "r2"))
        assert replay.headers["idempotent-replayed"] == "true" and replay.json() == {"done": True}
