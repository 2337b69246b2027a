"""The long-lived objects of one running store, built once from the settings.

Two of them have their adapters in modules above the platform (the live hub in ``live``,
the mailer in ``notifications``): the composition root (:mod:`mercato.app.runtime`) wires their
factories in with :func:`wire`, so the platform imports neither module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from mercato.config import Settings
from mercato.kit.cache import Cache, make_cache
from mercato.kit.db import Database
from mercato.kit.keys import StoreKeys
from mercato.kit.passwords import PasswordHashing
from mercato.kit.ratelimit import RateLimiter
from mercato.kit.security import TokenSigner
from mercato.kit.storage import ArtifactStore, open_store

if TYPE_CHECKING:
    from mercato.live.hub import LiveHub
    from mercato.notifications.email import Mailer


@dataclass
class Wiring:
    """Factories of the adapters that live above the platform."""

    live_hub: Callable[..., LiveHub] | None = None
    mailer: Callable[[Settings], Mailer | None] | None = None


WIRING = Wiring()


def wire(*, live_hub: Callable[..., LiveHub], mailer: Callable[[Settings], Mailer | None]) -> None:
    """Hand the platform the live hub's and the mailer's factories (the composition root does, once)."""
    WIRING.live_hub = live_hub
    WIRING.mailer = mailer


@dataclass
class Runtime:
    settings: Settings
    db: Database
    passwords: PasswordHashing
    tokens: TokenSigner
    limiter: RateLimiter
    live: LiveHub
    cache: Cache
    artifacts: ArtifactStore
    keys: StoreKeys
    # Sends notification e-mails; None when no SMTP server is configured (e-mail off).
    mailer: Mailer | None = None

    def __post_init__(self) -> None:
        self.db.cache = self.cache  # evictions recorded in transactions outside requests

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        if WIRING.live_hub is None or WIRING.mailer is None:
            raise RuntimeError("Runtime.from_settings needs the live hub and mailer factories: import "
                               "mercato.app.runtime (the composition root), which wires them in.")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url, read_url=settings.database_read_url,
                        statement_timeout=settings.database_statement_timeout_seconds),
            passwords=PasswordHashing(**settings.password_hash_parameters),
            tokens=TokenSigner(key=settings.resolved_secret_key, issuer=settings.jwt_issuer,
                               audience=settings.jwt_audience,
                               access_lifetime=timedelta(minutes=settings.access_token_minutes)),
            limiter=RateLimiter(settings.redis_url, namespace=settings.redis_namespace),
            live=WIRING.live_hub(settings.redis_url, namespace=settings.redis_namespace),
            cache=make_cache(settings.redis_url, namespace=settings.redis_namespace, name="catalog"),
            artifacts=open_store(settings),
            keys=StoreKeys.from_settings(settings),
            mailer=WIRING.mailer(settings),
        )

    async def close(self) -> None:
        await self.live.close()
        await self.cache.close()
        await self.artifacts.close()
        await self.db.dispose()
