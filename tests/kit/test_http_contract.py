"""HTTP contract details outside clients find (issue 11, item 23): HEAD wherever GET is
answered, 405 answers naming every allowed method, public operations not declared as needing
a token, and strictly typed booleans and integers in bodies."""

from __future__ import annotations

import httpx
import pytest

V1 = "/api/v1"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", f"{V1}/listings", f"{V1}/categories"])
async def test_head_is_answered_like_get_without_a_body(client: httpx.AsyncClient, path: str) -> None:
    got = await client.get(path)
    head = await client.head(path)
    assert head.status_code == got.status_code == 200, (head.status_code, head.text)
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]


async def test_405_lists_every_method_of_the_path(client: httpx.AsyncClient, user) -> None:  # type: ignore[no-untyped-def]
    # /me answers GET and PATCH (two routes); /me/tokens GET and POST.
    response = await client.put(f"{V1}/me", headers=user.headers, json={})
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH"}
    tokens = await client.delete(f"{V1}/me/tokens", headers=user.headers)
    assert tokens.status_code == 405
    assert set(tokens.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}


async def test_public_operations_do_not_require_a_token_in_openapi(client: httpx.AsyncClient) -> None:
    document = (await client.get(f"{V1}/openapi.json")).json()
    paths = document["paths"]
    for path, method in ((f"{V1}/listings/{{listing_id}}", "get"), (f"{V1}/listings/{{listing_id}}/versions", "get"),
                         (f"{V1}/publishers/{{slug}}", "get"), (f"{V1}/listings/batch", "post")):
        operation = paths[path][method]
        assert operation["x-permission"] == "public", (path, operation["x-permission"])
        assert {} in operation.get("security", [{}]), (path, operation.get("security"))
    assert {} not in paths[f"{V1}/me"]["get"]["security"]  # a protected one still requires it


@pytest.mark.parametrize("body", [{"name": "ci", "expires_in_days": False}, {"name": "ci", "expires_in_days": "30"},
                                  {"name": "ci", "expires_in_days": True}])
async def test_an_integer_field_refuses_booleans_and_text(client: httpx.AsyncClient, user, body) -> None:  # type: ignore[no-untyped-def]
    response = await client.post(f"{V1}/me/tokens", headers=user.headers, json=body)
    assert response.status_code == 422 and response.json()["code"] == "validation_failed", response.text
    assert (await client.get(f"{V1}/me/tokens", headers=user.headers)).json()["items"] == []  # nothing made


@pytest.mark.parametrize("value", ["yes", "true", 1, 0])
async def test_a_boolean_field_takes_only_true_or_false(client: httpx.AsyncClient, super_admin, user,  # type: ignore[no-untyped-def]
                                                        value: object) -> None:
    response = await client.patch(f"{V1}/admin/users/{user.id}", headers=super_admin.headers,
                                  json={"is_active": value})
    assert response.status_code == 422 and response.json()["code"] == "validation_failed", response.text
    assert (await client.get(f"{V1}/me", headers=user.headers)).json()["is_active"] is True
    ok = await client.patch(f"{V1}/admin/users/{user.id}", headers=super_admin.headers, json={"is_active": True})
    assert ok.status_code == 200, ok.text


async def test_answers_content_types_are_documented(client: httpx.AsyncClient) -> None:
    paths = (await client.get(f"{V1}/openapi.json")).json()["paths"]
    for path in (f"{V1}/listings/{{listing_id}}/versions/{{version}}/download",
                 f"{V1}/agent/tasks/{{task_id}}/artifact"):
        for status in ("200", "206"):
            assert {"application/gzip", "application/zip"} <= set(paths[path]["get"]["responses"][status]["content"])
    pay = paths["/sandbox/pay/{payment_id}"]["post"]["responses"]
    assert "text/html" in pay["409"]["content"] and "text/html" in pay["422"]["content"]
