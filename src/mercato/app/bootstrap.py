"""Bringing a store's database up to date: migrations, then the role and category seeds."""

from __future__ import annotations

import asyncio

from mercato.access import service as access
from mercato.catalog import service as catalog
from mercato.config import Settings
from mercato.kit import migrate
from mercato.kit.db import Database


def prepare_database(settings: Settings) -> bool:
    """Apply migrations and seed roles. Blocking; call before the event loop starts. A
    database already at the package's heads is left as it is (checked with one query, before
    Alembic is even imported): returns whether any migration ran. The seeds (idempotent, one
    transaction) run either way: they follow the code's roles and categories."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrated = not migrate.is_current(settings.resolved_database_url)
    if migrated:
        migrate.upgrade(settings.resolved_database_url)
    asyncio.run(seed(settings.resolved_database_url))
    return migrated


async def seed(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            await access.seed_roles(session)
            await catalog.seed_categories(session)
    finally:
        await db.dispose()
