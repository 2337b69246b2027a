"""Access tokens, refresh tokens and API tokens (QUALITY.md (e): T1, T2, T3, T9).

Expired or otherwise bad tokens are forged with PyJWT and the store's own key rather
than waited for, so these tests stay fast.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select, update

from mercato.app.runtime import Runtime
from mercato.kit.clock import utcnow
from mercato.models import ApiToken, RefreshToken

ME = "/api/v1/me"
TOKENS = "/api/v1/me/tokens"
REFRESH = "/api/v1/auth/refresh"


# --- helpers ------------------------------------------------------------------------------------

def claims_for(runtime: Runtime, user_id: str, **overrides: Any) -> dict[str, Any]:
    """The claims the store itself would issue for ``user_id`` (token version 1), with overrides.

    An override of ``...`` (Ellipsis) removes that claim.
    """
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id, "iss": runtime.settings.jwt_issuer, "aud": runtime.settings.jwt_audience,
        "iat": now, "nbf": now, "exp": now + 600, "jti": uuid.uuid4().hex, "typ": "access", "ver": 1,
    }
    for name, value in overrides.items():
        if value is ...:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def forge(runtime: Runtime, user_id: str, *, key: str | None = None, algorithm: str = "HS256",
          **overrides: Any) -> str:
    return jwt.encode(claims_for(runtime, user_id, **overrides), key or runtime.settings.resolved_secret_key,
                      algorithm=algorithm)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"].endswith(code) and body["title"] and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def assert_unauthenticated(response: httpx.Response) -> None:
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].lower().startswith("bearer")


async def refresh_row(runtime: Runtime, refresh_token: str) -> RefreshToken:
    digest = hashlib.sha256(refresh_token.encode()).hexdigest()
    async with runtime.db.read_session() as session:
        row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest))
    assert row is not None
    return row


async def create_api_token(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(TOKENS, headers=headers, json={"name": "ci", **body})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


# --- T1: attacks on access tokens ---------------------------------------------------------------

async def test_forged_token_with_the_store_key_and_valid_claims_is_accepted(client, runtime, user) -> None:
    """Control for the attacks below: the forging helper itself produces a valid token."""
    response = await client.get(ME, headers=bearer(forge(runtime, user.id)))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == user.id


async def test_token_with_alg_none_is_refused(client, runtime, user) -> None:
    token = jwt.encode(claims_for(runtime, user.id), None, algorithm="none")
    assert jwt.get_unverified_header(token)["alg"] == "none"
    assert_unauthenticated(await client.get(ME, headers=bearer(token)))


async def test_token_with_alg_none_and_the_signature_kept_is_refused(client, runtime, user) -> None:
    valid = forge(runtime, user.id)
    _header, payload, signature = valid.split(".")
    none_header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    assert_unauthenticated(await client.get(ME, headers=bearer(f"{none_header}.{payload}.{signature}")))


async def test_token_signed_with_a_wrong_key_is_refused(client, runtime, user) -> None:
    token = forge(runtime, user.id, key="not-the-store-key-but-long-enough-0123456789")
    assert_unauthenticated(await client.get(ME, headers=bearer(token)))


async def test_token_with_a_tampered_payload_is_refused(client, runtime, user, actors) -> None:
    other = await actors.create()
    valid_header, _payload, signature = forge(runtime, user.id).split(".")
    other_payload = forge(runtime, other.id).split(".")[1]
    assert_unauthenticated(await client.get(ME, headers=bearer(f"{valid_header}.{other_payload}.{signature}")))


async def test_expired_token_is_refused(client, runtime, user) -> None:
    now = int(time.time())
    token = forge(runtime, user.id, iat=now - 700, nbf=now - 700, exp=now - 100)
    assert_unauthenticated(await client.get(ME, headers=bearer(token)))


async def test_token_for_another_audience_is_refused(client, runtime, user) -> None:
    token = forge(runtime, user.id, aud="some-other-api")
    assert_unauthenticated(await client.get(ME, headers=bearer(token)))


async def test_token_from_another_issuer_is_refused(client, runtime, user) -> None:
    token = forge(runtime, user.id, iss="https://evil.example")
    assert_unauthenticated(await client.get(ME, headers=bearer(token)))


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "iss", "aud", "typ", "ver"])
async def test_token_missing_a_required_claim_is_refused(client, runtime, user, claim) -> None:
    token = forge(runtime, user.id, **{claim: ...})
    assert_unauthenticated(await client.get(ME, headers=bearer(token)))


@pytest.mark.parametrize(("claim", "value"), [("ver", True), ("ver", "1"), ("sub", 12345), ("exp", "later")])
async def test_token_with_a_claim_of_the_wrong_type_is_refused(client, runtime, user, claim, value) -> None:
    assert_unauthenticated(await client.get(ME, headers=bearer(forge(runtime, user.id, **{claim: value}))))


async def test_token_of_another_type_is_refused(client, runtime, user) -> None:
    token = forge(runtime, user.id, typ="refresh")
    assert_unauthenticated(await client.get(ME, headers=bearer(token)))


async def test_token_with_a_malformed_subject_is_refused(client, runtime, user) -> None:
    assert_unauthenticated(await client.get(ME, headers=bearer(forge(runtime, "not-a-uuid"))))


async def test_token_for_a_user_that_does_not_exist_is_refused(client, runtime, user) -> None:
    assert_unauthenticated(await client.get(ME, headers=bearer(forge(runtime, str(uuid.uuid4())))))


async def test_refresh_token_presented_as_access_token_is_refused(client, user) -> None:
    assert user.refresh_token.startswith("mcr_")
    assert_unauthenticated(await client.get(ME, headers=bearer(user.refresh_token)))


async def test_access_token_presented_as_refresh_token_is_refused(client, user) -> None:
    response = await client.post(REFRESH, json={"refresh_token": user.access_token})
    assert_problem(response, 401, "invalid_refresh_token")


async def test_garbage_bearer_credential_is_refused(client, user) -> None:
    assert_unauthenticated(await client.get(ME, headers=bearer("this-is-not-a-token")))


async def test_valid_token_under_a_non_bearer_scheme_is_refused(client, user) -> None:
    response = await client.get(ME, headers={"Authorization": f"Token {user.access_token}"})
    assert_unauthenticated(response)


async def test_request_without_credentials_is_refused(client) -> None:
    assert_unauthenticated(await client.get(ME))


# --- T2: lifetimes ------------------------------------------------------------------------------

async def test_access_token_lives_ten_minutes(client, runtime, user) -> None:
    claims = jwt.decode(user.access_token, runtime.settings.resolved_secret_key, algorithms=["HS256"],
                        audience=runtime.settings.jwt_audience, issuer=runtime.settings.jwt_issuer)
    assert claims["exp"] - claims["iat"] == 600
    assert abs(claims["iat"] - time.time()) < 60
    login = await client.post("/api/v1/auth/login", json={"email": user.email, "password": user.password})
    assert login.json()["expires_in"] == 600


async def test_refresh_token_expires_seven_days_after_issue(runtime, user) -> None:
    before = utcnow()
    row = await refresh_row(runtime, user.refresh_token)
    assert row.expires_at - row.created_at == timedelta(days=7)
    assert before - timedelta(minutes=1) <= row.created_at <= utcnow()


async def test_expired_refresh_token_is_refused(client, runtime, user) -> None:
    row = await refresh_row(runtime, user.refresh_token)
    async with runtime.db.transaction() as session:
        await session.execute(update(RefreshToken).where(RefreshToken.id == row.id)
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert_problem(await client.post(REFRESH, json={"refresh_token": user.refresh_token}), 401,
                   "invalid_refresh_token")


# --- T3: refresh rotation -----------------------------------------------------------------------

async def test_refresh_returns_a_new_working_token_pair(client, user) -> None:
    response = await client.post(REFRESH, json={"refresh_token": user.refresh_token})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 600
    assert body["refresh_token"] != user.refresh_token and body["refresh_token"].startswith("mcr_")
    assert body["access_token"] != user.access_token
    assert (await client.get(ME, headers=bearer(body["access_token"]))).status_code == 200
    again = await client.post(REFRESH, json={"refresh_token": body["refresh_token"]})
    assert again.status_code == 200, again.text


async def test_reused_refresh_token_is_refused(client, user) -> None:
    assert (await client.post(REFRESH, json={"refresh_token": user.refresh_token})).status_code == 200
    assert_problem(await client.post(REFRESH, json={"refresh_token": user.refresh_token}), 401,
                   "invalid_refresh_token")


async def test_reused_refresh_token_revokes_the_whole_family(client, runtime, user) -> None:
    first = await client.post(REFRESH, json={"refresh_token": user.refresh_token})
    second = await client.post(REFRESH, json={"refresh_token": first.json()["refresh_token"]})
    newest = second.json()["refresh_token"]
    reuse = await client.post(REFRESH, json={"refresh_token": user.refresh_token})
    assert reuse.status_code == 401
    assert_problem(await client.post(REFRESH, json={"refresh_token": newest}), 401, "invalid_refresh_token")
    family = (await refresh_row(runtime, newest)).family_id
    async with runtime.db.read_session() as session:
        rows = list(await session.scalars(select(RefreshToken).where(RefreshToken.family_id == family)))
    assert len(rows) == 3
    assert all(row.revoked_at is not None for row in rows)


async def test_reused_refresh_token_leaves_other_sessions_alone(client, actors, user) -> None:
    other_session = await actors.login(user.email, user.password)
    await client.post(REFRESH, json={"refresh_token": user.refresh_token})
    assert (await client.post(REFRESH, json={"refresh_token": user.refresh_token})).status_code == 401
    response = await client.post(REFRESH, json={"refresh_token": other_session.refresh_token})
    assert response.status_code == 200, response.text


async def test_concurrent_refreshes_with_one_token_let_exactly_one_through(client, user) -> None:
    responses = await asyncio.gather(*[
        client.post(REFRESH, json={"refresh_token": user.refresh_token}) for _ in range(5)])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 401, 401, 401, 401], [r.text for r in responses]
    for response in responses:
        if response.status_code == 401:
            assert_problem(response, 401, "invalid_refresh_token")


# --- T9: API tokens -----------------------------------------------------------------------------

async def test_api_token_is_prefixed_and_has_at_least_128_random_bits(client, user) -> None:
    created = await create_api_token(client, user.headers)
    token = created["token"]
    assert token.startswith("mct_")
    secret = token.removeprefix("mct_")
    assert len(secret) >= 43  # 32 random bytes, urlsafe base64 (>= 22 chars would be 128 bits)
    assert set(secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    other = await create_api_token(client, user.headers)
    assert other["token"] != token


async def test_api_token_is_shown_only_at_creation(client, user) -> None:
    created = await create_api_token(client, user.headers, name="laptop")
    token = created["token"]
    listing = await client.get(TOKENS, headers=user.headers)
    assert listing.status_code == 200
    items = listing.json()["items"]
    assert [item["id"] for item in items] == [created["id"]]
    assert "token" not in items[0]
    assert token.removeprefix("mct_") not in listing.text
    hint = items[0]["hint"]
    assert token.startswith(hint) and len(hint) <= 12


async def test_api_token_is_stored_only_as_its_sha256(client, runtime, user) -> None:
    created = await create_api_token(client, user.headers)
    token = created["token"]
    async with runtime.db.read_session() as session:
        row = await session.get(ApiToken, uuid.UUID(created["id"]))
    assert row is not None
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    secret = token.removeprefix("mct_")
    stored = {column.key: getattr(row, column.key) for column in ApiToken.__table__.columns}
    assert not [name for name, value in stored.items() if secret[:16] in str(value)]


async def test_api_token_authenticates_its_user(client, user) -> None:
    token = (await create_api_token(client, user.headers))["token"]
    response = await client.get(ME, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == user.id


async def test_using_an_api_token_records_last_used_at(client, runtime, user) -> None:
    created = await create_api_token(client, user.headers)
    assert created["last_used_at"] is None
    assert (await client.get(ME, headers=bearer(created["token"]))).status_code == 200
    listing = (await client.get(TOKENS, headers=user.headers)).json()["items"]
    assert listing[0]["last_used_at"] is not None


async def test_revoked_api_token_is_refused(client, user) -> None:
    created = await create_api_token(client, user.headers)
    assert (await client.get(ME, headers=bearer(created["token"]))).status_code == 200
    response = await client.delete(f"{TOKENS}/{created['id']}", headers=user.headers)
    assert response.status_code == 204, response.text
    assert_unauthenticated(await client.get(ME, headers=bearer(created["token"])))
    assert (await client.get(TOKENS, headers=user.headers)).json()["items"] == []


async def test_expired_api_token_is_refused(client, runtime, user) -> None:
    created = await create_api_token(client, user.headers, expires_in_days=1)
    assert (await client.get(ME, headers=bearer(created["token"]))).status_code == 200
    async with runtime.db.transaction() as session:
        await session.execute(update(ApiToken).where(ApiToken.id == uuid.UUID(created["id"]))
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert_unauthenticated(await client.get(ME, headers=bearer(created["token"])))


async def test_unknown_api_token_is_refused(client, user) -> None:
    assert_unauthenticated(await client.get(ME, headers=bearer("mct_" + "A" * 43)))


async def test_api_token_of_a_disabled_user_is_refused(client, admin, user) -> None:
    token = (await create_api_token(client, user.headers))["token"]
    response = await client.patch(f"/api/v1/admin/users/{user.id}", headers=admin.headers, json={"is_active": False})
    assert response.status_code == 200, response.text
    assert_unauthenticated(await client.get(ME, headers=bearer(token)))


async def test_scoped_api_token_is_limited_to_its_scopes(client, user) -> None:
    token = (await create_api_token(client, user.headers, scopes=["account:read"]))["token"]
    assert (await client.get(ME, headers=bearer(token))).status_code == 200
    assert_problem(await client.get(TOKENS, headers=bearer(token)), 403, "forbidden")
    assert (await client.get(TOKENS, headers=user.headers)).status_code == 200


async def test_api_token_cannot_carry_a_permission_its_user_lacks(client, user) -> None:
    response = await client.post(TOKENS, headers=user.headers, json={"name": "ci", "scopes": ["user:read"]})
    body = assert_problem(response, 422, "invalid_scope")
    assert body["errors"][0]["loc"] == ["body", "scopes", 0]


async def test_api_token_cannot_carry_an_unknown_permission(client, user) -> None:
    response = await client.post(TOKENS, headers=user.headers, json={"name": "ci", "scopes": ["everything"]})
    assert_problem(response, 422, "invalid_scope")


async def test_api_token_cannot_create_api_tokens(client, user) -> None:
    token = (await create_api_token(client, user.headers))["token"]  # unscoped: holds token:manage
    assert (await client.get(TOKENS, headers=bearer(token))).status_code == 200
    response = await client.post(TOKENS, headers=bearer(token), json={"name": "child"})
    assert_problem(response, 403, "forbidden")
    assert len((await client.get(TOKENS, headers=user.headers)).json()["items"]) == 1


# --- a token's scopes bound every authorization decision (issue 11, item 2) ----------------------

async def test_user_create_token_of_a_super_admin_cannot_create_a_super_admin(client, super_admin) -> None:
    token = (await create_api_token(client, super_admin.headers, scopes=["user:create"]))["token"]
    email = f"escalated-{uuid.uuid4().hex[:8]}@example.org"
    response = await client.post("/api/v1/admin/users", headers=bearer(token), json={
        "email": email, "password": "a long and unusual passphrase 42", "roles": ["super_admin"]})
    assert_problem(response, 403, "forbidden")
    listed = await client.get("/api/v1/admin/users", headers=super_admin.headers, params={"q": email})
    assert listed.json()["items"] == []
    # the same token still creates an ordinary account (the sign-up role gives nothing a sign-up does not)
    response = await client.post("/api/v1/admin/users", headers=bearer(token), json={
        "email": email, "password": "a long and unusual passphrase 42"})
    assert response.status_code == 201, response.text
    assert response.json()["roles"] == ["user"]


async def test_user_update_token_of_a_super_admin_cannot_grant_super_admin(client, super_admin, user) -> None:
    token = (await create_api_token(client, super_admin.headers, scopes=["user:update"]))["token"]
    for roles in (["user", "super_admin"], ["user", "marketplace_admin"]):
        response = await client.patch(f"/api/v1/admin/users/{user.id}", headers=bearer(token), json={"roles": roles})
        assert_problem(response, 403, "forbidden")
    shown = await client.get("/api/v1/admin/users", headers=super_admin.headers, params={"q": user.email})
    assert [u["roles"] for u in shown.json()["items"]] == [["user"]]
    # the owner's own session, which holds role:update, may
    response = await client.patch(f"/api/v1/admin/users/{user.id}", headers=super_admin.headers,
                                  json={"roles": ["user", "marketplace_admin"]})
    assert response.status_code == 200, response.text


async def test_a_resource_bound_scope_does_not_count_as_holding_the_permission(runtime) -> None:
    from mercato.access.permissions import Condition
    from mercato.access.principal import Principal

    owner = Principal(user_id=uuid.uuid4(), email="a@example.org", roles=frozenset({"super_admin"}),
                      grants={"user:create": Condition.any, "listing:update": Condition.any,
                              "role:update": Condition.any})
    scoped = Principal(user_id=owner.user_id, email=owner.email, roles=owner.roles, grants=owner.grants,
                       token_scopes=("user:create", "listing:update@hello-notes"))
    assert owner.effective_grants() == owner.grants
    assert scoped.effective_grants() == {"user:create": Condition.any}


# --- scopes narrow (issue 11, item 6) -------------------------------------------------------------

async def test_a_coupon_scope_for_one_publisher_does_not_reach_another(client, actors) -> None:
    owner = await actors.create()
    first, second = await actors.publisher(owner), await actors.publisher(owner)
    owner = await actors.login(owner.email, owner.password, user_id=owner.id)
    coupons = {}
    for publisher in (first, second):
        made = await client.post("/api/v1/coupons", headers=owner.headers, json={
            "code": f"SAVE-{uuid.uuid4().hex[:8].upper()}", "kind": "percent", "value": 10, "scope": "publisher",
            "publisher": publisher["slug"]})
        assert made.status_code == 201, made.text
        coupons[publisher["slug"]] = made.json()
    token = bearer((await create_api_token(client, owner.headers, scopes=[f"coupon:manage@{first['slug']}"]))["token"])
    ours = await client.patch(f"/api/v1/coupons/{coupons[first['slug']]['id']}", headers=token, json={"value": 20})
    assert ours.status_code == 200, ours.text
    theirs = await client.patch(f"/api/v1/coupons/{coupons[second['slug']]['id']}", headers=token, json={"value": 20})
    assert theirs.status_code == 404, theirs.text
    listed = (await client.get("/api/v1/coupons", headers=token)).json()["items"]
    assert [c["id"] for c in listed] == [coupons[first["slug"]]["id"]]


async def test_a_download_scope_for_one_listing_does_not_download_another(client, actors, user) -> None:
    from tests.catalog.support import Shop

    shop = await Shop.open(client, actors)
    first, second = await shop.published(), await shop.published()
    token = bearer((await create_api_token(client, user.headers,
                                           scopes=[f"version:download@{first['slug']}"]))["token"])
    url = "/api/v1/listings/{}/versions/1.0.0/download"
    assert (await client.get(url.format(first["slug"]), headers=token)).status_code == 200
    assert_problem(await client.get(url.format(second["slug"]), headers=token), 403, "forbidden")
    library = (await client.get("/api/v1/library", headers=user.headers)).json()["items"]
    assert [item["listing"]["slug"] for item in library] == [first["slug"]]


async def test_a_scoped_token_cannot_read_the_event_stream_or_sign_the_account_out(client, user) -> None:
    token = bearer((await create_api_token(client, user.headers, scopes=["account:read"]))["token"])
    assert (await client.get(ME, headers=token)).status_code == 200
    streamed = await asyncio.wait_for(client.get("/api/v1/events/stream", headers=token), 10)  # a stream never ends
    assert_problem(streamed, 403, "forbidden")
    assert_problem(await client.post("/api/v1/auth/logout", headers=token), 403, "forbidden")
    assert (await client.get(ME, headers=user.headers)).status_code == 200  # the session still stands


async def test_a_password_change_revokes_the_accounts_api_tokens(client, user) -> None:
    token = bearer((await create_api_token(client, user.headers))["token"])
    assert (await client.get(ME, headers=token)).status_code == 200
    changed = await client.post("/api/v1/me/password", headers=user.headers, json={
        "current_password": user.password, "new_password": "another long and unusual passphrase 7"})
    assert changed.status_code in (200, 204), changed.text
    assert_unauthenticated(await client.get(ME, headers=token))
