"""Run the package's Alembic migrations programmatically (``mercato migrate``, start-up, tests)."""

from __future__ import annotations

import asyncio
import functools
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url)
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Upgrade to ``revision``. Safe to call from inside a running event loop."""

    def run() -> None:
        command.upgrade(alembic_config(database_url), revision)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        run()
        return
    # env.py drives its own event loop; give it a thread of its own.
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


@functools.cache
def known_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """(heads, every revision) of the migrations shipped with this code; read once per process."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return frozenset(script.get_heads()), frozenset(rev.revision for rev in script.walk_revisions())


def schema_state(applied: frozenset[str]) -> str:
    """``current``; ``newer`` (a later release migrated it: still served, migrations only add
    before they remove); or ``pending`` (this code's migrations are not all applied)."""
    heads, known = known_revisions()
    if applied == heads:
        return "current"
    if applied and not applied <= known:
        return "newer"
    return "pending"
