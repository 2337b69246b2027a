"""The long-lived objects of one running store, built once from the settings.

Every port (ARCHITECTURE "Ports": storage, payments, search, cache, live fan-out, mail) is
chosen here, in :meth:`Runtime.from_settings`: code reaches an adapter through the runtime it
was given (a request's ``RuntimeDep``, the bus running a handler or sweep) and hands it down.
Two exceptions, each documented where it is: the bus's broker, which :class:`mercato.bus.service.Bus`
picks from ``broker_url`` (the bus is built from the runtime by ``create_app`` and
``mercato worker``), and ``catalog.service.reindex``, which makes a search adapter for its
session's dialect. Four adapters live in modules above the platform (the live hub in ``live``,
the mailer in ``notifications``, the payment gateway in ``payments``, the listing search in
``catalog``): the composition root (:mod:`mercato.app.runtime`) wires their factories in with
:func:`wire`, so the platform imports none of those modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from mercato.config import Settings
from mercato.kit.cache import Cache, make_cache
from mercato.kit.db import Database
from mercato.kit.foreground import Foreground
from mercato.kit.keys import StoreKeys
from mercato.kit.passwords import PasswordHashing
from mercato.kit.ratelimit import RateLimiter
from mercato.kit.security import TokenSigner
from mercato.kit.storage import ArtifactStore, open_store

if TYPE_CHECKING:
    from mercato.catalog.search.query import ListingSearch
    from mercato.live.hub import LiveHub
    from mercato.notifications.email import Mailer
    from mercato.payments.providers import Gateway


@dataclass
class Wiring:
    """Factories of the adapters that live above the platform."""

    live_hub: Callable[..., LiveHub] | None = None
    mailer: Callable[[Settings], Mailer | None] | None = None
    payments: Callable[[Settings], Gateway] | None = None
    # The listing search adapter for a database dialect ("sqlite", "postgresql").
    listing_search: Callable[[str], ListingSearch] | None = None


WIRING = Wiring()


def wire(*, live_hub: Callable[..., LiveHub], mailer: Callable[[Settings], Mailer | None],
         payments: Callable[[Settings], Gateway], listing_search: Callable[[str], ListingSearch]) -> None:
    """Hand the platform the factories of the adapters above it (the composition root does, once)."""
    WIRING.live_hub = live_hub
    WIRING.mailer = mailer
    WIRING.payments = payments
    WIRING.listing_search = listing_search


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
    # The payment providers the settings enable (sandbox, Stripe) and the default one.
    payments: Gateway
    # The listing search adapter for the database's dialect, with its cache of computed answers
    # (one per runtime: a process normally has one).
    search: ListingSearch
    # Sends notification e-mails; None when no SMTP server is configured (e-mail off).
    mailer: Mailer | None = None
    # The requests this process is answering; background work gives way to them.
    foreground: Foreground = field(default_factory=Foreground)

    def __post_init__(self) -> None:
        self.db.cache = self.cache  # evictions recorded in transactions outside requests

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        wiring = WIRING
        if wiring.live_hub is None or wiring.mailer is None or wiring.payments is None \
                or wiring.listing_search is None:
            raise RuntimeError("Runtime.from_settings needs the factories of the adapters above the platform: "
                               "import mercato.app.runtime (the composition root), which wires them in.")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.resolved_database_url, read_url=settings.database_read_url,
                      statement_timeout=settings.database_statement_timeout_seconds)
        return cls(
            settings=settings,
            db=db,
            passwords=PasswordHashing(**settings.password_hash_parameters),
            tokens=TokenSigner(key=settings.resolved_secret_key, issuer=settings.jwt_issuer,
                               audience=settings.jwt_audience,
                               access_lifetime=timedelta(minutes=settings.access_token_minutes)),
            limiter=RateLimiter(settings.redis_url, namespace=settings.redis_namespace),
            live=wiring.live_hub(settings.redis_url, namespace=settings.redis_namespace),
            cache=make_cache(settings.redis_url, namespace=settings.redis_namespace, name="catalog"),
            artifacts=open_store(settings),
            keys=StoreKeys.from_settings(settings),
            payments=wiring.payments(settings),
            search=wiring.listing_search(db.writer.dialect.name),
            mailer=wiring.mailer(settings),
        )

    async def close(self) -> None:
        # First the gateway: it stops the sandbox's pending webhook deliveries, which use the database.
        await self.payments.close()
        await self.live.close()
        await self.cache.close()
        await self.artifacts.close()
        await self.db.dispose()
