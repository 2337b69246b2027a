"""Every money test that ran the store (an app with its bus) ends with the invariants of
QUALITY.md checked on what it left: the bus drained (INV-7), then INV-1/2/3/5, INV-4's
entitlements and INV-7's "nothing owed, nothing open past its deadline". A test that
breaks one fails in its teardown, naming the invariant.

A plugin (``pytest_plugins`` of ``tests/conftest.py``): the money tests live in the folders
of their modules, listed in ``MONEY_TESTS``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mercato.app.runtime import Runtime
from tests.support.invariants import assert_entitlements_follow_orders, assert_money_invariants, assert_quiescent
from tests.support.orders import quiet

TESTS = Path(__file__).resolve().parents[1]
# The folders (and the one file elsewhere) whose tests move money.
MONEY_TESTS = tuple(TESTS / name for name in (
    "coupons", "earnings", "ledger", "licences", "orders", "payments", "receipts", "refunds", "wallet",
    "audit/test_money_audit.py"))


@pytest.fixture
async def money_invariants(client: httpx.AsyncClient, runtime: Runtime) -> AsyncIterator[None]:
    """Set up after the app (it asks for ``client``), so torn down before it: the bus still
    runs while this waits for it to settle."""
    yield
    await quiet(runtime)
    await assert_money_invariants(runtime.db)
    await assert_entitlements_follow_orders(runtime.db)
    await assert_quiescent(runtime.db)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Only where the store ran: the bus lives in the app's lifespan (the `client` fixture).
    for item in items:
        names = getattr(item, "fixturenames", None)
        if names is not None and "client" in names and _moves_money(Path(str(item.path)).resolve()):
            names.append("money_invariants")


def _moves_money(path: Path) -> bool:
    return any(path == money or money in path.parents for money in MONEY_TESTS)
