"""The web foundation in-process (httpx): sessions on the API's token family, CSRF on every
unsafe form, security headers, error pages in the layout for page paths only, forms that
keep their input, and /api/docs from vendored assets."""

from __future__ import annotations

import re

import httpx
import pytest

from mercato.web import session as web_session
from mercato.web.pages import CSP
from tests.support.actors import DEFAULT_PASSWORD, Actors
from tests.support.pages import TOKEN, csrf_token, sign_in


async def test_pages_send_csp_without_inline_scripts_and_nosniff(client: httpx.AsyncClient) -> None:
    for path in ("/", "/login", "/register", "/no-such-page"):
        response = await client.get(path)
        assert response.headers["content-type"].startswith("text/html"), path
        assert response.headers["content-security-policy"] == CSP, path
        assert "script-src 'self';" in CSP and "unsafe-inline" not in CSP.split("script-src")[1].split(";")[0]
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert "<script>" not in response.text and "onclick=" not in response.text, path


async def test_api_keeps_problem_json_and_pages_get_error_pages(client: httpx.AsyncClient) -> None:
    api = await client.get("/api/v1/listings/no-such-listing")
    assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"
    missing_api = await client.get("/api/v1/nothing-here")
    assert missing_api.status_code == 404 and missing_api.headers["content-type"] == "application/problem+json"
    page = await client.get("/no-such-page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "Page not found" in page.text and 'class="site-header"' in page.text


async def test_a_form_post_without_the_csrf_token_is_refused_with_the_403_page(
        client: httpx.AsyncClient, actors: Actors) -> None:
    user = await actors.create()
    await csrf_token(client)  # the browser has its CSRF cookie, the form lacks the field
    response = await client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html") and "Not allowed" in response.text
    assert web_session.COOKIE not in response.cookies
    forged = await client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD,
                                               "csrf_token": "0" * 64})
    assert forged.status_code == 403
    # another browser's (valid) token does not fit this browser's cookie
    async with httpx.AsyncClient(transport=client._transport, base_url=client.base_url) as other:
        theirs = await csrf_token(other)
    assert theirs != await csrf_token(client)
    stolen = await client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD,
                                               "csrf_token": theirs})
    assert stolen.status_code == 403


async def test_sign_in_sets_an_httponly_lax_cookie_and_sign_out_ends_the_api_session(
        client: httpx.AsyncClient, actors: Actors) -> None:
    user = await actors.create()
    response = await sign_in(client, user.email, next_path="/account")
    assert response.status_code == 303 and response.headers["location"] == "/account"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith(web_session.COOKIE))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    account = await client.get("/account")
    assert account.status_code == 200 and user.email in account.text
    token = TOKEN.search(account.text).group(1)  # type: ignore[union-attr]
    refresh_token = client.cookies[web_session.COOKIE]
    out = await client.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert (await client.get("/account")).status_code == 303  # signed out: sent to sign in
    # the same token family as the API: this session's refresh token is revoked; the account's
    # other sign-ins go on (POST /api/v1/auth/logout ends only its own sign-in too)
    refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert refreshed.status_code == 401
    assert (await client.get("/api/v1/me", headers=user.headers)).status_code == 200


async def test_the_session_cookie_is_secure_over_https(app, actors: Actors) -> None:  # type: ignore[no-untyped-def]
    user = await actors.create()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://mercato.test") as https:
        response = await sign_in(https, user.email)
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith(web_session.COOKIE))
    assert "Secure" in cookie


async def test_a_signed_out_visitor_is_sent_to_sign_in_and_back(client: httpx.AsyncClient, actors: Actors) -> None:
    response = await client.get("/account")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=%2Faccount"
    login = (await client.get(response.headers["location"])).text
    assert "to go on where you were" in login and "/register?next=/account" in login
    assert "to go on where you were" not in (await client.get("/login")).text  # came by itself: no reason to give
    user = await actors.create()
    signed = await sign_in(client, user.email, next_path="/account")
    assert signed.headers["location"] == "/account"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example"])
async def test_next_never_leaves_the_site(client: httpx.AsyncClient, actors: Actors, target: str) -> None:
    user = await actors.create()
    response = await sign_in(client, user.email, next_path=target)
    assert response.status_code == 303 and response.headers["location"] == "/"


async def test_a_bad_form_shows_the_message_beside_the_field_and_keeps_the_input(client: httpx.AsyncClient) -> None:
    token = await csrf_token(client, "/register")
    response = await client.post("/register", data={"email": "newcomer@example.org", "display_name": "Newcomer",
                                                    "password": "short", "next": "/", "csrf_token": token})
    assert response.status_code == 422
    assert 'id="e-password"' in response.text and 'aria-invalid="true"' in response.text
    assert 'value="newcomer@example.org"' in response.text and 'value="Newcomer"' in response.text
    assert 'value="short"' not in response.text  # passwords are never echoed


async def test_wrong_password_keeps_the_email_and_says_so(client: httpx.AsyncClient, actors: Actors) -> None:
    user = await actors.create()
    response = await sign_in(client, user.email, password="not the password at all")
    assert response.status_code == 422 and "do not match" in response.text
    assert f'value="{user.email}"' in response.text
    assert web_session.COOKIE not in response.cookies


async def test_a_rotated_or_revoked_refresh_token_is_no_session(client: httpx.AsyncClient, actors: Actors) -> None:
    user = await actors.create()
    client.cookies.set(web_session.COOKIE, user.refresh_token)
    assert (await client.get("/account")).status_code == 200
    rotated = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert rotated.status_code == 200
    assert (await client.get("/account")).status_code == 303


async def test_api_docs_load_only_vendored_assets(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/docs")
    assert response.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert sources and all(s.startswith("/static/") for s in sources), sources
    for source in sources:
        asset = await client.get(source)
        assert asset.status_code == 200 and len(asset.content) > 100, source
    assert "script-src 'self';" in response.headers["content-security-policy"]


async def test_htmx_is_vendored_and_pinned(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert '/static/vendor/htmx-2.0.4.min.js' in page.text
    script = await client.get("/static/vendor/htmx-2.0.4.min.js")
    assert script.status_code == 200 and 'version:"2.0.4"' in script.text.replace(" ", "")

