"""Every list answers ``{items, next_cursor}`` (API.md "Lists"), bounded lists included:
``limit`` cuts them and ``next_cursor`` reaches the rest."""

from __future__ import annotations

import httpx
import pytest

V1 = "/api/v1"


@pytest.mark.parametrize("path", ["/me/tokens", "/me/registry-tokens", "/me/publisher-applications",
                                  "/admin/roles", "/admin/permissions", "/categories", "/admin/sources"])
async def test_list_is_an_object_with_items_and_next_cursor(client: httpx.AsyncClient, super_admin, path: str) -> None:  # type: ignore[no-untyped-def]
    response = await client.get(f"{V1}{path}", headers=super_admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, dict) and isinstance(body["items"], list) and "next_cursor" in body


@pytest.mark.parametrize("path", ["/admin/roles", "/categories"])
async def test_bounded_list_pages_through_every_item_once(client: httpx.AsyncClient, super_admin, path: str) -> None:  # type: ignore[no-untyped-def]
    whole = (await client.get(f"{V1}{path}", headers=super_admin.headers, params={"limit": 100})).json()["items"]
    assert len(whole) >= 3
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"{V1}{path}", headers=super_admin.headers, params=params)).json()
        assert len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == whole


async def test_tokens_are_paged_newest_first(client: httpx.AsyncClient, user) -> None:  # type: ignore[no-untyped-def]
    names = [f"t{n}" for n in range(3)]
    for name in names:
        assert (await client.post(f"{V1}/me/tokens", headers=user.headers, json={"name": name})).status_code == 201
    first = (await client.get(f"{V1}/me/tokens", headers=user.headers, params={"limit": 2})).json()
    rest = (await client.get(f"{V1}/me/tokens", headers=user.headers,
                             params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [t["name"] for t in first["items"] + rest["items"]] == names[::-1] and rest["next_cursor"] is None
