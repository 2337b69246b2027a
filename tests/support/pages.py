"""Driving the HTML pages through the in-process client (httpx), as a browser would: the
CSRF token a page puts in its forms, signing in through the login form or as a person's page
session, and the cart's forms (CSRF token and Idempotency-Key)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from mercato.web import session as web_session
from tests.support.actors import DEFAULT_PASSWORD, Actor, Actors

TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


async def csrf_token(client: httpx.AsyncClient, path: str = "/login") -> str:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    found = TOKEN.search(response.text)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, email: str, password: str = DEFAULT_PASSWORD,
                  next_path: str = "/") -> httpx.Response:
    token = await csrf_token(client)
    return await client.post("/login", data={"email": email, "password": password, "next": next_path,
                                             "csrf_token": token})


KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


async def signed_in(client: httpx.AsyncClient, actors: Actors) -> Actor:
    buyer = await actors.create()
    answer = await sign_in(client, buyer.email)
    assert answer.status_code == 303, answer.text
    return buyer


async def form_of(client: httpx.AsyncClient, path: str) -> dict[str, str]:
    """The CSRF token and the Idempotency-Key a page put in its form."""
    page = await client.get(path)
    assert page.status_code == 200, page.text
    tokens = TOKEN.findall(page.text) or TOKEN.findall((await client.get("/login")).text)
    fields = {"csrf_token": tokens[-1]}
    key = KEY.search(page.text)
    if key:
        fields["idempotency_key"] = key.group(1)
    return fields


async def add(client: httpx.AsyncClient, listing: dict[str, Any], delivery: str = "digital",
              quantity: int = 1) -> httpx.Response:
    fields = await form_of(client, "/cart")
    return await client.post("/cart", data={**fields, "listing_id": listing["id"], "delivery": delivery,
                                            "quantity": str(quantity)})


def as_person(client: httpx.AsyncClient, actor: Actor) -> None:
    """The page session of ``actor`` (the cookie carries the session's refresh token)."""
    client.cookies.clear()
    client.cookies.set(web_session.COOKIE, actor.refresh_token)


async def token_of(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    found = TOKEN.search(page.text)
    assert found
    return found.group(1)
