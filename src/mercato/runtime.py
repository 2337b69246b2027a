"""The long-lived objects of one running store, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from mercato.config import Settings
from mercato.kit.cache import Cache, make_cache
from mercato.kit.db import Database
from mercato.kit.keys import StoreKeys
from mercato.kit.passwords import PasswordHashing
from mercato.kit.ratelimit import RateLimiter
from mercato.kit.security import TokenSigner
from mercato.kit.storage import ArtifactStore, open_store
from mercato.live.hub import LiveHub, make_hub
from mercato.notifications.email import Mailer, make_mailer


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
            live=make_hub(settings.redis_url, namespace=settings.redis_namespace),
            cache=make_cache(settings.redis_url, namespace=settings.redis_namespace, name="catalog"),
            artifacts=open_store(settings),
            keys=StoreKeys.from_settings(settings),
            mailer=make_mailer(settings),
        )

    async def close(self) -> None:
        await self.live.close()
        await self.cache.close()
        await self.artifacts.close()
        await self.db.dispose()
