"""Run the package's Alembic migrations programmatically (``mercato migrate``, start-up, tests)."""

from __future__ import annotations

import asyncio
import functools
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_REVISION = re.compile(r"^revision(?:: str)? = ['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN = re.compile(r"^down_revision(?:: [^=]+)? = (.+)$", re.MULTILINE)


@functools.cache
def _revision_graph() -> tuple[frozenset[str], frozenset[str]]:
    """(every revision, every revision named as a ``down_revision``) of the package's
    migrations, read from the revision files' text once per process (no Alembic, no imports)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found = _REVISION.search(text)
        if found is None:
            continue
        revisions.add(found.group(1))
        down = _DOWN.search(text)
        if down is not None:
            parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    return frozenset(revisions), frozenset(parents)


def head_revisions() -> set[str]:
    """The heads of the package's migrations: every revision no other one names as its parent."""
    revisions, parents = _revision_graph()
    return set(revisions - parents)


async def current_revisions(database_url: str) -> set[str]:
    """What ``alembic_version`` holds (empty for a new database)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return {row[0] for row in await connection.execute(text("SELECT version_num FROM alembic_version"))}
    except DBAPIError:  # no such table yet
        return set()
    finally:
        await engine.dispose()


def is_current(database_url: str) -> bool:
    """Whether the database is at the package's heads: one small query, so a restart on a
    current schema costs no Alembic environment, no script loading, no migration work."""
    heads = head_revisions()
    if not heads:
        return False
    current: list[set[str]] = []
    _off_the_loop(lambda: current.append(asyncio.run(current_revisions(database_url))))
    return current[0] == heads


def alembic_config(database_url: str) -> Config:
    # Alembic only when a migration runs (start-up time)
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url)
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Upgrade to ``revision``. Safe to call from inside a running event loop."""

    def run() -> None:
        # Alembic only when a migration runs (start-up time)
        from alembic import command

        command.upgrade(alembic_config(database_url), revision)

    _off_the_loop(run)  # env.py drives its own event loop


def _off_the_loop(run: Callable[[], None]) -> None:
    """Run ``run`` (which drives an event loop of its own) here, or in a thread of its own
    when this thread already runs one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        run()
        return
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            run()
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=guarded)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def known_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """(heads, every revision) of the migrations shipped with this code."""
    revisions, _parents = _revision_graph()
    return frozenset(head_revisions()), revisions


def schema_state(applied: frozenset[str]) -> str:
    """``current``; ``newer`` (a later release migrated it: still served, migrations only add
    before they remove); or ``pending`` (this code's migrations are not all applied)."""
    heads, known = known_revisions()
    if applied == heads:
        return "current"
    if applied and not applied <= known:
        return "newer"
    return "pending"
