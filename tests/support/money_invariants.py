"""Every money test that ran the store (an app with its bus) ends with the invariants of
QUALITY.md checked on what it left: the bus drained (INV-7), then INV-1/2/3/5, INV-4's
entitlements and INV-7's "nothing owed, nothing open past its deadline". A test that
breaks one fails in its teardown, naming the invariant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mercato.app.runtime import Runtime
from tests.money.invariants import assert_entitlements_follow_orders, assert_money_invariants, assert_quiescent
from tests.money.orders_support import quiet

HERE = Path(__file__).resolve().parent


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
        if names is not None and "client" in names and HERE in Path(str(item.path)).resolve().parents:
            names.append("money_invariants")
