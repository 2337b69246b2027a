"""Market test fixtures: the store under test may reach 127.0.0.1 (the SSRF allowlist, as in
the webhook tests), and its ``market.sync`` sweep is left out of the embedded bus so the
tests drive syncing themselves (``sweep.sync_due`` / ``POST …/sync``) and nothing races them."""

from __future__ import annotations

import pytest

from mercato.bus import scheduler
from mercato.config import Settings
from mercato.market import handlers  # noqa: F401  (declares the sweep taken out below)
from tests.support.receivers import feed_server  # noqa: F401  (fixture)


@pytest.fixture(autouse=True)
def _no_background_market_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(scheduler.SWEEPS, "market.sync")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"outbound_allowed_hosts": ["127.0.0.1"], "market_timeout_seconds": 3.0,
                                       "market_sync_interval_seconds": 60.0})
