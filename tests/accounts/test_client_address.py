"""The client's address behind a load balancer (issue 11, item 8): X-Forwarded-For is read only
from the proxies MERCATO_TRUSTED_PROXIES names, and the sign-up limit is a runtime policy."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from mercato.app.runtime import Runtime
from mercato.config import Settings
from mercato.models import AuditEntry
from tests.support.actors import DEFAULT_PASSWORD, Actor

V1 = "/api/v1"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"trusted_proxies": "10.0.0.0/8"})


async def _client(app, address: str) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://mercato.test") as http:
        yield http


@pytest.fixture
async def balancer(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    async for http in _client(app, "10.1.2.3"):
        yield http


@pytest.fixture
async def stranger(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    async for http in _client(app, "192.0.2.9"):
        yield http


async def register(http: httpx.AsyncClient, forwarded_for: str) -> int:
    response = await http.post(f"{V1}/auth/register", headers={"X-Forwarded-For": forwarded_for}, json={
        "email": f"signup-{uuid.uuid4().hex[:8]}@example.org", "password": DEFAULT_PASSWORD})
    assert response.status_code in (201, 429), response.text
    return response.status_code


async def test_sign_ups_are_limited_per_forwarded_address_behind_a_trusted_proxy(
        client: httpx.AsyncClient, balancer: httpx.AsyncClient, stranger: httpx.AsyncClient,
        super_admin: Actor) -> None:
    changed = await client.patch(f"{V1}/admin/settings", headers=super_admin.headers,
                                 json={"signups_per_address_per_hour": 2})
    assert changed.status_code == 200, changed.text
    # through the load balancer: each visitor has their own allowance
    assert [await register(balancer, "203.0.113.1") for _ in range(3)] == [201, 201, 429]
    assert await register(balancer, "203.0.113.2") == 201
    # what the visitor wrote themselves (left) does not count: the address the proxy appended does
    assert await register(balancer, "203.0.113.1, 203.0.113.3") == 201
    # a peer that is not a trusted proxy cannot choose its address: its header is ignored
    assert [await register(stranger, f"203.0.113.{n}") for n in (10, 11, 12)] == [201, 201, 429]


def test_trusted_proxies_is_a_documented_setting() -> None:
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    assert "MERCATO_TRUSTED_PROXIES" in docs


async def test_the_audit_log_records_the_forwarded_address_behind_a_trusted_proxy(
        balancer: httpx.AsyncClient, runtime: Runtime, user: Actor) -> None:
    """The request context (audit rows' ``ip``) is read after the proxy headers are applied."""
    request_id = f"proxied-{uuid.uuid4().hex[:12]}"
    refused = await balancer.get(f"{V1}/admin/audit", headers={
        **user.headers, "X-Forwarded-For": "203.0.113.77", "X-Request-ID": request_id})
    assert refused.status_code == 403
    async with runtime.db.read_session() as session:
        row = await session.scalar(select(AuditEntry).where(AuditEntry.request_id == request_id))
    assert row is not None and row.ip == "203.0.113.77"
