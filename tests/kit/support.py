"""Helpers for the kit tests."""

from __future__ import annotations

from typing import Any

from mercato.kit.budget import RequestBudget


def budget_of(app: Any) -> RequestBudget:
    """The app's request budget middleware (built at its first request), to tighten the budget
    after a test's arrangements, which a loaded machine may slow down."""
    layer = app.middleware_stack
    while not isinstance(layer, RequestBudget):
        layer = layer.app
    return layer
