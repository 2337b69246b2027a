"""Schemathesis as a signed-in user: the first half of the operations (by label),
positive and negative cases; no server error and no answer the OpenAPI document does not
describe (tests/support/fuzz.py)."""

from __future__ import annotations

import pytest

from mercato.config import Settings
from tests.support.actors import Actors
from tests.support.fuzz import run_role

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # ~5 minutes alone, the default timeout is 10 minutes


async def test_user_first_half(settings: Settings, actors: Actors, monkeypatch: pytest.MonkeyPatch) -> None:
    await run_role("user", settings, actors, monkeypatch, share=0, shares=2)
