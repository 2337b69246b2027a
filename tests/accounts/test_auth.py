"""Sign-in, sessions and re-authentication (QUALITY.md (e): T4, T7, T10).

The lockout tests run against the limiter the runtime was built with: the ``limits``
memory storage by default, Redis when ``MERCATO_TEST_REDIS_URL`` is set.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
from limits.aio.storage import RedisStorage
from sqlalchemy import select

from mercato.kit.errors import RateLimited
from mercato.kit.ratelimit import RateLimiter
from mercato.models import RefreshToken, User

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/me"
ATTEMPTS = 10  # failures per account and per IP within the window (settings.login_attempts)

ClientAt = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def assert_locked(response: httpx.Response, window_seconds: int) -> None:
    assert_problem(response, 429, "rate_limited")
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= window_seconds + 1


@pytest.fixture
def client_at(app) -> ClientAt:  # type: ignore[no-untyped-def]
    """A client whose requests come from the given IP address."""

    @asynccontextmanager
    async def make(ip: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://mercato.test") as http:
            yield http

    return make


async def login(client: httpx.AsyncClient, email: str, password: str, **kwargs: Any) -> httpx.Response:
    return await client.post(LOGIN, json={"email": email, "password": password}, **kwargs)


# --- T4: sessions end at once -------------------------------------------------------------------

async def test_logout_ends_the_access_token_at_once(client, user) -> None:
    assert (await client.get(ME, headers=user.headers)).status_code == 200
    response = await client.post("/api/v1/auth/logout", headers=user.headers,
                                 json={"refresh_token": user.refresh_token})
    assert response.status_code == 204, response.text
    assert_problem(await client.get(ME, headers=user.headers), 401, "unauthenticated")


async def test_logout_revokes_the_refresh_token_family(client, user) -> None:
    response = await client.post("/api/v1/auth/logout", headers=user.headers,
                                 json={"refresh_token": user.refresh_token})
    assert response.status_code == 204, response.text
    assert_problem(await client.post(REFRESH, json={"refresh_token": user.refresh_token}), 401,
                   "invalid_refresh_token")


async def test_logout_cannot_revoke_another_users_refresh_token(client, actors, user) -> None:
    other = await actors.create()
    response = await client.post("/api/v1/auth/logout", headers=user.headers,
                                 json={"refresh_token": other.refresh_token})
    assert response.status_code == 204, response.text
    assert (await client.post(REFRESH, json={"refresh_token": other.refresh_token})).status_code == 200


async def test_logout_ends_only_its_own_sign_in(client, actors, user) -> None:
    """`mercato login` signs in, makes an API token and logs that sign-in out: the browser's
    sign-in (another session of the same account) must go on."""
    cli = await actors.login(user.email, user.password)
    response = await client.post("/api/v1/auth/logout", headers=cli.headers,
                                 json={"refresh_token": cli.refresh_token})
    assert response.status_code == 204, response.text
    assert_problem(await client.get(ME, headers=cli.headers), 401, "unauthenticated")  # its own: at once
    assert (await client.get(ME, headers=user.headers)).status_code == 200  # the other sign-in goes on
    assert (await client.post(REFRESH, json={"refresh_token": user.refresh_token})).status_code == 200


async def test_logout_without_the_refresh_token_ends_the_sign_in_of_the_access_token(client, actors, user) -> None:
    other = await actors.login(user.email, user.password)
    assert (await client.post("/api/v1/auth/logout", headers=user.headers)).status_code == 204
    assert_problem(await client.get(ME, headers=user.headers), 401, "unauthenticated")
    assert_problem(await client.post(REFRESH, json={"refresh_token": user.refresh_token}), 401,
                   "invalid_refresh_token")
    assert (await client.get(ME, headers=other.headers)).status_code == 200


async def test_refresh_token_reuse_ends_the_access_tokens_of_its_sign_in(client, user) -> None:
    rotated = await client.post(REFRESH, json={"refresh_token": user.refresh_token})
    assert rotated.status_code == 200
    fresh = rotated.json()["access_token"]
    assert (await client.post(REFRESH, json={"refresh_token": user.refresh_token})).status_code == 401  # reuse
    assert_problem(await client.get(ME, headers=bearer(fresh)), 401, "unauthenticated")


async def test_password_change_ends_the_access_token_at_once(client, user) -> None:
    response = await client.post("/api/v1/me/password", headers=user.headers, json={
        "current_password": user.password, "new_password": "another entirely fine passphrase"})
    assert response.status_code == 204, response.text
    assert_problem(await client.get(ME, headers=user.headers), 401, "unauthenticated")
    assert (await login(client, user.email, "another entirely fine passphrase")).status_code == 200
    assert (await login(client, user.email, user.password)).status_code == 401


async def test_password_change_revokes_every_refresh_token(client, runtime, actors, user) -> None:
    second_session = await actors.login(user.email, user.password)
    response = await client.post("/api/v1/me/password", headers=user.headers, json={
        "current_password": user.password, "new_password": "another entirely fine passphrase"})
    assert response.status_code == 204, response.text
    for refresh_token in (user.refresh_token, second_session.refresh_token):
        assert_problem(await client.post(REFRESH, json={"refresh_token": refresh_token}), 401,
                       "invalid_refresh_token")
    async with runtime.db.read_session() as session:
        digest = hashlib.sha256(user.refresh_token.encode()).hexdigest()
        user_id = (await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest))).user_id
        rows = list(await session.scalars(select(RefreshToken).where(RefreshToken.user_id == user_id)))
    assert len(rows) == 2 and all(row.revoked_at is not None for row in rows)


async def test_disabling_a_user_ends_their_access_token_at_once(client, admin, user) -> None:
    response = await client.patch(f"/api/v1/admin/users/{user.id}", headers=admin.headers, json={"is_active": False})
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False
    assert_problem(await client.get(ME, headers=user.headers), 401, "unauthenticated")
    assert (await client.post(REFRESH, json={"refresh_token": user.refresh_token})).status_code == 401


async def test_disabled_user_is_refused_even_with_a_token_of_the_current_version(client, runtime, admin, user) -> None:
    """Disabling bumps the token version; a token minted for the new version must still fail."""
    await client.patch(f"/api/v1/admin/users/{user.id}", headers=admin.headers, json={"is_active": False})
    async with runtime.db.read_session() as session:
        version = (await session.get(User, uuid.UUID(user.id))).token_version
    now = int(time.time())
    token = jwt.encode({"sub": user.id, "iss": runtime.settings.jwt_issuer, "aud": runtime.settings.jwt_audience,
                        "iat": now, "nbf": now, "exp": now + 600, "typ": "access", "ver": version},
                       runtime.settings.resolved_secret_key, algorithm="HS256")
    assert_problem(await client.get(ME, headers=bearer(token)), 401, "unauthenticated")


async def test_disabled_user_cannot_sign_in(client, admin, user) -> None:
    await client.patch(f"/api/v1/admin/users/{user.id}", headers=admin.headers, json={"is_active": False})
    assert_problem(await login(client, user.email, user.password), 401, "invalid_credentials")


async def test_role_change_ends_the_access_token_at_once(client, admin, user) -> None:
    response = await client.patch(f"/api/v1/admin/users/{user.id}", headers=admin.headers,
                                  json={"roles": ["user", "developer"]})
    assert response.status_code == 200, response.text
    assert sorted(response.json()["roles"]) == ["developer", "user"]
    assert_problem(await client.get(ME, headers=user.headers), 401, "unauthenticated")
    assert (await client.post(REFRESH, json={"refresh_token": user.refresh_token})).status_code == 401


async def test_display_name_change_by_an_admin_keeps_the_session(client, admin, user) -> None:
    response = await client.patch(f"/api/v1/admin/users/{user.id}", headers=admin.headers,
                                  json={"display_name": "Renamed"})
    assert response.status_code == 200, response.text
    assert (await client.get(ME, headers=user.headers)).status_code == 200


# --- T7: brute-force lockout --------------------------------------------------------------------

async def test_failed_logins_lock_the_account_even_from_many_ips(client_at, settings, user) -> None:
    """Each attempt comes from another IP, so only the per-account count can lock."""
    for attempt in range(ATTEMPTS):
        async with client_at(f"10.1.0.{attempt + 1}") as http:
            assert_problem(await login(http, user.email, "not the right password"), 401, "invalid_credentials")
    async with client_at("10.1.1.1") as http:
        assert_locked(await login(http, user.email, user.password), settings.login_window_seconds)


async def test_account_lockout_matches_the_email_case_insensitively(client_at, settings, user) -> None:
    for attempt in range(ATTEMPTS):
        email = user.email.upper() if attempt % 2 else user.email
        async with client_at(f"10.2.0.{attempt + 1}") as http:
            assert (await login(http, email, "not the right password")).status_code == 401
    async with client_at("10.2.1.1") as http:
        assert_locked(await login(http, user.email, user.password), settings.login_window_seconds)


async def test_account_lockout_leaves_other_accounts_alone(client_at, actors, user) -> None:
    other = await actors.create()
    for attempt in range(ATTEMPTS):
        async with client_at(f"10.3.0.{attempt + 1}") as http:
            await login(http, user.email, "not the right password")
    async with client_at("10.3.1.1") as http:
        assert (await login(http, other.email, other.password)).status_code == 200


async def test_failed_logins_lock_the_ip_across_accounts(client_at, settings, user) -> None:
    """Every attempt names another (unknown) account, so only the per-IP count can lock."""
    async with client_at("10.4.0.1") as http:
        for attempt in range(ATTEMPTS):
            response = await login(http, f"nobody-{attempt}@example.org", "not the right password")
            assert_problem(response, 401, "invalid_credentials")
        assert_locked(await login(http, user.email, user.password), settings.login_window_seconds)
    async with client_at("10.4.0.2") as http:
        assert (await login(http, user.email, user.password)).status_code == 200


async def test_successful_logins_do_not_count_toward_the_lockout(client, user) -> None:
    for _ in range(ATTEMPTS - 1):
        assert (await login(client, user.email, "not the right password")).status_code == 401
    for _ in range(ATTEMPTS + 2):
        assert (await login(client, user.email, user.password)).status_code == 200
    # The tenth failure is still answered; only the eleventh attempt is refused.
    assert_problem(await login(client, user.email, "not the right password"), 401, "invalid_credentials")
    assert (await login(client, user.email, user.password)).status_code == 429


async def test_unknown_email_and_wrong_password_get_identical_answers(client, user) -> None:
    headers = {"X-Request-ID": "same-request-id"}
    wrong_password = await login(client, user.email, "not the right password", headers=headers)
    unknown_email = await login(client, "nobody-here@example.org", "not the right password", headers=headers)
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.content == unknown_email.content
    for name in ("content-type", "www-authenticate", "content-length"):
        assert wrong_password.headers.get(name) == unknown_email.headers.get(name)
    assert_problem(wrong_password, 401, "invalid_credentials")


async def test_disabled_account_gets_the_same_answer_as_a_wrong_password(client, admin, actors, user) -> None:
    disabled = await actors.create()
    await client.patch(f"/api/v1/admin/users/{disabled.id}", headers=admin.headers, json={"is_active": False})
    headers = {"X-Request-ID": "same-request-id"}
    wrong_password = await login(client, user.email, "not the right password", headers=headers)
    right_password_disabled = await login(client, disabled.email, disabled.password, headers=headers)
    assert right_password_disabled.status_code == 401
    assert wrong_password.content == right_password_disabled.content


@pytest.mark.redis
async def test_failed_logins_lock_the_account_with_redis(client_at, runtime, settings, user) -> None:
    assert isinstance(runtime.limiter.storage, RedisStorage)
    for attempt in range(ATTEMPTS):
        async with client_at(f"10.5.0.{attempt + 1}") as http:
            assert (await login(http, user.email, "not the right password")).status_code == 401
    async with client_at("10.5.1.1") as http:
        assert_locked(await login(http, user.email, user.password), settings.login_window_seconds)
    # The count lives in Redis, not in this process: a second runtime on the same namespace sees it.
    other_process = RateLimiter(settings.redis_url, namespace=settings.redis_namespace)
    with pytest.raises(RateLimited):
        await other_process.check(name="login", keys=[f"account:{user.email.casefold()}"],
                                  limit=settings.login_attempts, window_seconds=settings.login_window_seconds)


# --- T10: re-authentication and unique emails ---------------------------------------------------

async def test_email_change_without_the_current_password_is_refused(client, user) -> None:
    response = await client.patch(ME, headers=user.headers, json={"email": "new-address@example.org"})
    assert_problem(response, 403, "wrong_current_password")
    assert (await client.get(ME, headers=user.headers)).json()["email"] == user.email


async def test_email_change_with_a_wrong_current_password_is_refused(client, user) -> None:
    response = await client.patch(ME, headers=user.headers, json={
        "email": "new-address@example.org", "current_password": "not the right password"})
    assert_problem(response, 403, "wrong_current_password")


async def test_email_change_with_the_current_password_succeeds(client, user) -> None:
    response = await client.patch(ME, headers=user.headers, json={
        "email": "new-address@example.org", "current_password": user.password})
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "new-address@example.org"
    assert (await login(client, "new-address@example.org", user.password)).status_code == 200


async def test_display_name_change_needs_no_current_password(client, user) -> None:
    response = await client.patch(ME, headers=user.headers, json={"display_name": "Alice"})
    assert response.status_code == 200, response.text
    assert response.json()["display_name"] == "Alice"


async def test_email_change_to_a_taken_email_is_refused(client, actors, user) -> None:
    other = await actors.create()
    response = await client.patch(ME, headers=user.headers, json={
        "email": other.email.upper(), "current_password": user.password})
    assert_problem(response, 409, "email_taken")


async def test_password_change_with_a_wrong_current_password_is_refused(client, user) -> None:
    response = await client.post("/api/v1/me/password", headers=user.headers, json={
        "current_password": "not the right password", "new_password": "another entirely fine passphrase"})
    assert_problem(response, 403, "wrong_current_password")
    assert (await client.get(ME, headers=user.headers)).status_code == 200
    assert (await login(client, user.email, user.password)).status_code == 200


async def test_wrong_current_passwords_count_toward_the_account_lockout(client, settings, user) -> None:
    """Re-authentication is no unlimited password oracle for someone holding a stolen session."""
    for attempt in range(ATTEMPTS):
        current = f"guess number {attempt}"
        if attempt % 2:
            response = await client.patch(ME, headers=user.headers, json={
                "email": "new-address@example.org", "current_password": current})
        else:
            response = await client.post("/api/v1/me/password", headers=user.headers, json={
                "current_password": current, "new_password": "another entirely fine passphrase"})
        assert_problem(response, 403, "wrong_current_password")
    response = await client.post("/api/v1/me/password", headers=user.headers, json={
        "current_password": user.password, "new_password": "another entirely fine passphrase"})
    assert_locked(response, settings.login_window_seconds)
    assert_locked(await login(client, user.email, user.password), settings.login_window_seconds)


async def test_display_name_change_is_not_locked_out_with_the_account(client, user) -> None:
    for attempt in range(ATTEMPTS):
        await login(client, user.email, f"guess number {attempt}")
    response = await client.patch(ME, headers=user.headers, json={"display_name": "Still me"})
    assert response.status_code == 200, response.text


async def test_registering_an_email_that_differs_only_in_case_is_refused(client) -> None:
    first = await client.post("/api/v1/auth/register", json={
        "email": "carol@example.org", "password": "a perfectly fine test password"})
    assert first.status_code == 201, first.text
    second = await client.post("/api/v1/auth/register", json={
        "email": "CAROL@Example.ORG", "password": "a perfectly fine test password"})
    assert_problem(second, 409, "email_taken")


async def test_concurrent_failed_logins_cannot_exceed_the_account_limit(client_at, user) -> None:
    """A burst of guesses sent at once must not all pass a check made before any of them failed."""
    async def guess(attempt: int) -> int:
        async with client_at(f"10.6.{attempt // 200}.{attempt % 200 + 1}") as http:
            return (await login(http, user.email, f"wrong guess number {attempt}")).status_code

    statuses = await asyncio.gather(*[guess(attempt) for attempt in range(3 * ATTEMPTS)])
    assert statuses.count(401) <= ATTEMPTS, statuses
    assert set(statuses) <= {401, 429}


async def test_concurrent_registrations_of_one_email_create_one_account(client) -> None:
    emails = ["dave@example.org", "Dave@example.org", "DAVE@example.org", "dave@EXAMPLE.org"]
    responses = await asyncio.gather(*[client.post("/api/v1/auth/register", json={
        "email": email, "password": "a perfectly fine test password"}) for email in emails])
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409], [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "email_taken")


async def test_concurrent_email_changes_to_one_address_leave_one_owner(client, actors) -> None:
    first, second = await actors.create(), await actors.create()
    responses = await asyncio.gather(*[client.patch(ME, headers=actor.headers, json={
        "email": "shared-address@example.org", "current_password": actor.password}) for actor in (first, second)])
    assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
