"""One e-mail rule everywhere: the special-use ``.test`` domain (the demo's own) is accepted on
register, admin create, e-mail change, member add and publisher create; malformed addresses are
still refused with 422."""

from __future__ import annotations

import uuid

import pytest

PASSWORD = "a perfectly fine test password"


def _address(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}@demo.test"


async def test_register_accepts_test_domain(client) -> None:  # type: ignore[no-untyped-def]
    email = _address("reg")
    response = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    assert response.json()["email"] == email


async def test_admin_create_accepts_test_domain(client, super_admin) -> None:  # type: ignore[no-untyped-def]
    email = _address("made")
    response = await client.post("/api/v1/admin/users", headers=super_admin.headers,
                                 json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text


async def test_email_change_accepts_test_domain(client, user) -> None:  # type: ignore[no-untyped-def]
    email = _address("moved")
    response = await client.patch("/api/v1/me", headers=user.headers,
                                  json={"email": email, "current_password": user.password})
    assert response.status_code == 200, response.text
    assert response.json()["email"] == email


async def test_member_add_and_publisher_owner_accept_test_domain(client, actors) -> None:  # type: ignore[no-untyped-def]
    owner = await actors.create(email=_address("owner"))
    publisher = await actors.publisher(owner)  # owner_email on the .test domain
    member = await actors.create(email=_address("member"))
    response = await client.post(f"/api/v1/publishers/{publisher['slug']}/members", headers=owner.headers,
                                 json={"email": member.email, "role": "member"})
    assert response.status_code == 200, response.text
    assert member.email in {m["email"] for m in response.json()["members"]}


@pytest.mark.parametrize("email", ["not-an-address", "a@b", "two@@example.org", "x@example.org\nBcc: y@example.org"])
async def test_malformed_addresses_still_refused(client, email: str) -> None:  # type: ignore[no-untyped-def]
    response = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
