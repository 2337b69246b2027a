"""The composition root: the app factory (:mod:`.factory`), the runtime with every adapter wired
(:mod:`.runtime`) and bringing a database up to date (:mod:`.bootstrap`).

``create_app`` is looked up lazily so that importing :mod:`mercato.app.runtime` or
:mod:`mercato.app.bootstrap` (the CLI does, before it knows whether it will serve) does not
import every module's routes; ``mercato.app:create_app`` works as before."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mercato.app.factory import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        # lazy: the CLI imports app.runtime and app.bootstrap without every module's routes (start-up time)
        from mercato.app.factory import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
