from __future__ import annotations


async def test_register_login_and_read_me(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.post("/api/v1/auth/register", json={
        "email": "Alice@Example.org", "password": "a perfectly fine test password"})
    assert response.status_code == 201, response.text
    assert response.json()["roles"] == ["user"]
    login = await client.post("/api/v1/auth/login", json={
        "email": "alice@example.org", "password": "a perfectly fine test password"})
    assert login.status_code == 200
    body = login.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 600
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["email"] == "Alice@example.org"  # local part kept, domain normalised


async def test_actor_fixtures_sign_in(admin, user, client) -> None:  # type: ignore[no-untyped-def]
    response = await client.get("/api/v1/admin/users", headers=admin.headers)
    assert response.status_code == 200
    assert (await client.get("/api/v1/admin/users", headers=user.headers)).status_code == 403
