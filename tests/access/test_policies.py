"""A1: every route declares its policy, and the declaration is the one this table expects.

A new route fails here until it is added to POLICY (with the permission it should need);
a route whose declaration changes fails here until the change is made on purpose.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from mercato.access.dependencies import public, route_policies
from mercato.access.permissions import Permission
from mercato.app import create_app
from mercato.config import Settings

PUBLIC = "public"
AUTHENTICATED = "authenticated"
V1 = "/api/v1"

# (method, full path) -> permission string, "public" or "authenticated".
POLICY: dict[tuple[str, str], str] = {
    # operations (outside /api/v1)
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    # accounts
    ("POST", f"{V1}/auth/register"): PUBLIC,
    ("POST", f"{V1}/auth/login"): PUBLIC,
    ("POST", f"{V1}/auth/refresh"): PUBLIC,
    ("POST", f"{V1}/auth/logout"): AUTHENTICATED,
    ("GET", f"{V1}/me"): "account:read",
    ("PATCH", f"{V1}/me"): "account:update",
    ("POST", f"{V1}/me/password"): "account:update",
    ("GET", f"{V1}/me/tokens"): "token:manage",
    ("POST", f"{V1}/me/tokens"): "token:manage",
    ("DELETE", f"{V1}/me/tokens/{{token_id}}"): "token:manage",
    # publisher applications
    ("POST", f"{V1}/publisher-applications"): "publisher_application:create",
    ("GET", f"{V1}/me/publisher-applications"): "publisher_application:create",
    ("GET", f"{V1}/admin/publisher-applications"): "publisher_application:review",
    ("POST", f"{V1}/admin/publisher-applications/{{application_id}}/approve"): "publisher_application:review",
    ("POST", f"{V1}/admin/publisher-applications/{{application_id}}/reject"): "publisher_application:review",
    # publishers
    ("POST", f"{V1}/publishers"): "publisher:create",
    ("GET", f"{V1}/publishers/{{slug}}"): PUBLIC,
    ("PATCH", f"{V1}/publishers/{{slug}}"): "publisher:update",
    ("POST", f"{V1}/publishers/{{slug}}/members"): "publisher_member:manage",
    ("DELETE", f"{V1}/publishers/{{slug}}/members"): "publisher_member:manage",
    # administration
    ("GET", f"{V1}/admin/users"): "user:read",
    ("POST", f"{V1}/admin/users"): "user:create",
    ("PATCH", f"{V1}/admin/users/{{user_id}}"): "user:update",
    ("GET", f"{V1}/admin/roles"): "role:read",
    ("GET", f"{V1}/admin/permissions"): "role:read",
    ("PUT", f"{V1}/admin/roles/{{name}}"): "role:update",
    ("GET", f"{V1}/admin/audit"): "audit:read",
    # events (E1, E3) and live events (S3)
    ("GET", f"{V1}/admin/events"): "event:read",
    ("GET", f"{V1}/admin/dead-letters"): "dead_letter:manage",
    ("POST", f"{V1}/admin/dead-letters/{{dead_letter_id}}/replay"): "dead_letter:manage",
    ("GET", f"{V1}/events/stream"): AUTHENTICATED,
    # outgoing webhooks (E2)
    ("GET", f"{V1}/webhooks"): "webhook:manage",
    ("POST", f"{V1}/webhooks"): "webhook:manage",
    ("GET", f"{V1}/webhooks/{{webhook_id}}"): "webhook:manage",
    ("PATCH", f"{V1}/webhooks/{{webhook_id}}"): "webhook:manage",
    ("DELETE", f"{V1}/webhooks/{{webhook_id}}"): "webhook:manage",
    ("POST", f"{V1}/webhooks/{{webhook_id}}/rotate-secret"): "webhook:manage",
    ("POST", f"{V1}/webhooks/{{webhook_id}}/test"): "webhook:manage",
    ("GET", f"{V1}/webhooks/{{webhook_id}}/deliveries"): "webhook:manage",
}


@pytest.fixture(scope="module")
def declared() -> dict[tuple[str, str], str | None]:
    with tempfile.TemporaryDirectory() as directory:
        return route_policies(create_app(Settings(data_dir=Path(directory), testing=True)))


def test_every_route_declares_a_policy(declared: dict[tuple[str, str], str | None]) -> None:
    undeclared = sorted(route for route, policy in declared.items() if policy is None)
    assert undeclared == [], f"routes without requires()/authenticated()/public(): {undeclared}"


def test_every_route_is_listed_in_the_policy_table(declared: dict[tuple[str, str], str | None]) -> None:
    unlisted = sorted(set(declared) - set(POLICY))
    assert unlisted == [], f"add these routes to POLICY with the policy they should have: {unlisted}"


def test_every_policy_row_names_an_existing_route(declared: dict[tuple[str, str], str | None]) -> None:
    stale = sorted(set(POLICY) - set(declared))
    assert stale == [], f"POLICY lists routes the app does not have: {stale}"


def test_every_route_declares_the_expected_policy(declared: dict[tuple[str, str], str | None]) -> None:
    wrong = {route: (declared[route], expected) for route, expected in POLICY.items()
             if route in declared and declared[route] != expected}
    assert wrong == {}, "route: (declared, expected)"


def test_the_policy_table_names_only_known_permissions() -> None:
    known = {p.value for p in Permission} | {PUBLIC, AUTHENTICATED}
    assert {policy for policy in POLICY.values()} <= known


def test_a_route_without_a_declaration_is_reported_as_undeclared() -> None:
    """The guard itself works: a route with no policy dependency shows up as None."""
    app = FastAPI()

    @app.get("/forgotten")
    async def forgotten() -> dict[str, str]:
        return {}

    @app.get("/declared", dependencies=[public()])
    async def declared_route() -> dict[str, str]:
        return {}

    assert route_policies(app) == {("GET", "/forgotten"): None, ("GET", "/declared"): PUBLIC}


async def test_openapi_carries_x_permission_for_every_operation(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    operations = {(method.upper(), path): operation
                  for path, item in response.json()["paths"].items()
                  for method, operation in item.items() if method in ("get", "post", "put", "patch", "delete")}
    assert set(operations) == set(POLICY)
    missing = sorted(route for route, operation in operations.items() if "x-permission" not in operation)
    assert missing == []
    wrong = {route: op["x-permission"] for route, op in operations.items() if op["x-permission"] != POLICY[route]}
    assert wrong == {}


async def test_openapi_documents_401_and_403_for_protected_operations(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/api/v1/openapi.json")).json()["paths"]
    for (method, path), policy in POLICY.items():
        responses = paths[path][method.lower()]["responses"]
        if policy != PUBLIC:
            assert "401" in responses, (method, path)
        if policy not in (PUBLIC, AUTHENTICATED):
            assert "403" in responses, (method, path)


from tests.access.policy_rows_library import POLICY_ROWS  # noqa: E402

POLICY.update(POLICY_ROWS)

from tests.access.policy_rows_catalog import POLICY_ROWS as CATALOG_POLICY_ROWS  # noqa: E402

POLICY.update(CATALOG_POLICY_ROWS)

from tests.access.policy_rows_policies import POLICY_ROWS as POLICIES_POLICY_ROWS  # noqa: E402

POLICY.update(POLICIES_POLICY_ROWS)

from tests.access.policy_rows_wallet import POLICY_ROWS as WALLET_POLICY_ROWS  # noqa: E402

POLICY.update(WALLET_POLICY_ROWS)

from tests.access.policy_rows_payments import POLICY_ROWS as PAYMENTS_POLICY_ROWS  # noqa: E402

POLICY.update(PAYMENTS_POLICY_ROWS)

from tests.access.policy_rows_refunds import POLICY_ROWS as REFUNDS_POLICY_ROWS  # noqa: E402

POLICY.update(REFUNDS_POLICY_ROWS)

from tests.access.policy_rows_licences import POLICY_ROWS as LICENCES_POLICY_ROWS  # noqa: E402

POLICY.update(LICENCES_POLICY_ROWS)

from tests.access.policy_rows_money_payouts import POLICY_ROWS as MONEY_PAYOUTS_POLICY_ROWS  # noqa: E402

POLICY.update(MONEY_PAYOUTS_POLICY_ROWS)

from tests.access.policy_rows_receipts import POLICY_ROWS as RECEIPTS_POLICY_ROWS  # noqa: E402

POLICY.update(RECEIPTS_POLICY_ROWS)

from tests.access.policy_rows_orders import POLICY_ROWS as ORDERS_POLICY_ROWS  # noqa: E402

POLICY.update(ORDERS_POLICY_ROWS)

from tests.access.policy_rows_installs import POLICY_ROWS as INSTALLS_POLICY_ROWS  # noqa: E402

POLICY.update(INSTALLS_POLICY_ROWS)

from tests.access.policy_rows_history import POLICY_ROWS as HISTORY_POLICY_ROWS  # noqa: E402

POLICY.update(HISTORY_POLICY_ROWS)

from tests.access.policy_rows_sync import POLICY_ROWS as SYNC_POLICY_ROWS  # noqa: E402

POLICY.update(SYNC_POLICY_ROWS)

from tests.access.policy_rows_market import POLICY_ROWS as MARKET_POLICY_ROWS  # noqa: E402

POLICY.update(MARKET_POLICY_ROWS)

from tests.access.policy_rows_openvsx import POLICY_ROWS as OPENVSX_POLICY_ROWS  # noqa: E402

POLICY.update(OPENVSX_POLICY_ROWS)
