"""Per-test PostgreSQL databases without waiting for PostgreSQL.

Each test gets a database of its own, in the state of the migrated template. Cloning the
template costs PostgreSQL ~0.5 s of CPU (CREATE DATABASE writes the whole template, system
catalogs included, through the WAL), which made cloning the largest single cost of the
PostgreSQL pass. ``Clones`` keeps a few clones per test worker and, on a thread of its own
beside the tests, puts a used one back in the template's state instead of dropping it:
every table emptied, the template's rows written back and the sequences restarted, in one
transaction (~20 ms). A used clone whose schema no longer matches the template's (a test
created a table), or that cannot be reset, is dropped and replaced by a fresh clone.
``close()`` (end of the session) drops every one it made, so nothing is left behind.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

AHEAD = 2  # clones kept ready for the next tests of this worker
LOCK_TIMEOUT = "5s"  # a reset that waits longer on a lock gives up, and the clone is dropped instead

# What a test could change besides the rows: relations and their columns, constraints,
# triggers, functions, schemas and the database's own settings. Equal to the template's, the
# clone is reset by its rows alone.
_SCHEMA_FINGERPRINT = """
SELECT md5(string_agg(part, ',' ORDER BY part)) FROM (
    SELECT 'r:' || n.nspname || '.' || c.relname || ':' || c.relkind::text
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
    UNION ALL
    SELECT 'a:' || c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod) || ':'
           || a.attnotnull::text || ':' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'k:' || conrelid::regclass::text || '.' || conname || ':' || pg_get_constraintdef(oid)
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL
    SELECT 't:' || tgrelid::regclass::text || '.' || tgname || ':' || tgenabled::text
      FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL
    SELECT 'f:' || p.oid::regprocedure::text || ':' || md5(p.prosrc)
      FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'n:' || nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%'
    UNION ALL
    SELECT 's:' || array_to_string(setconfig, ';') FROM pg_db_role_setting
     WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
) AS parts(part)
"""


@dataclass(frozen=True)
class TemplateState:
    """What a clone holds before its test: the template's schema fingerprint, its tables, the
    rows it was seeded with, and its sequences' state."""

    fingerprint: str
    tables: list[str]
    rows: dict[str, tuple[list[str], list[Any]]]  # table: (columns, records)
    sequences: list[tuple[str, int | None]]  # (name, last value; None: never used)

    @classmethod
    async def read(cls, connection: asyncpg.Connection) -> TemplateState:
        tables = [row["tablename"] for row in await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        rows: dict[str, tuple[list[str], list[Any]]] = {}
        for table in tables:
            columns = [row["attname"] for row in await connection.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 "
                "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum", f"public.{_quoted(table)}")]
            selected = ", ".join(_quoted(column) for column in columns)
            records = await connection.fetch(f"SELECT {selected} FROM public.{_quoted(table)}")
            if records:
                rows[table] = (columns, [tuple(record) for record in records])
        sequences = [(row["sequencename"], row["last_value"]) for row in await connection.fetch(
            "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'")]
        return cls(await connection.fetchval(_SCHEMA_FINGERPRINT), tables, rows, sequences)

    async def restore(self, connection: asyncpg.Connection) -> bool:
        """Put a used clone back in this state; False when its schema differs (drop it instead)."""
        if await connection.fetchval(_SCHEMA_FINGERPRINT) != self.fingerprint:
            return False
        async with connection.transaction():
            await connection.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            # Neither foreign keys nor the tables' own triggers (the stored documents') act
            # while the rows are put back: the state written is the template's, as it was.
            await connection.execute("SET LOCAL session_replication_role = replica")
            for table in self.tables:
                await connection.execute(f"DELETE FROM public.{_quoted(table)}")
            for table, (columns, records) in self.rows.items():
                await connection.copy_records_to_table(table, records=records, columns=columns, schema_name="public")
            for name, last_value in self.sequences:
                if last_value is None:
                    await connection.execute(f"ALTER SEQUENCE public.{_quoted(name)} RESTART")
                else:
                    await connection.execute("SELECT setval($1::regclass, $2, true)", f"public.{_quoted(name)}",
                                             last_value)
        return True


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class Clones:
    def __init__(self, template: str, admin: Callable[[str], Awaitable[None]], dsn: Callable[[str], str]) -> None:
        """``admin`` runs CREATE/DROP DATABASE; ``dsn`` is the asyncpg DSN of a database by name."""
        self.template = template
        self._admin = admin
        self._dsn = dsn
        self._state: TemplateState | None = None
        self._ready: queue.Queue[str | BaseException] = queue.Queue()
        self._work: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self.made: set[str] = set()
        self.failed_drops: list[str] = []
        self.reset_errors: list[str] = []  # resets that failed (the clone was replaced): for a look, not a failure
        self._thread = threading.Thread(target=self._run, name="test-database-clones", daemon=True)
        self._thread.start()
        for _ in range(AHEAD + 1):  # one for the test running, the others ready behind it
            self._work.put(("create", f"mercato_t_{uuid.uuid4().hex[:12]}"))

    def take(self) -> str:
        """A clone in the template's state (made or reset ahead)."""
        made = self._ready.get(timeout=120)
        if isinstance(made, BaseException):
            raise made
        return made

    def give_back(self, name: str) -> None:
        """Reset ``name`` in the background (the test is done with it); it is taken again later."""
        self._work.put(("reset", name))

    def close(self) -> None:
        """Drop every clone made; wait until done."""
        self._work.put(None)
        self._thread.join(timeout=600)
        assert not self._thread.is_alive(), "test databases were still being dropped after 10 minutes"
        for name in sorted(self.made):
            try:
                asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except Exception as error:
                self.failed_drops.append(f"{name}: {error}")
        assert not self.failed_drops, f"test databases could not be dropped: {self.failed_drops}"

    def _run(self) -> None:
        # In order: a used clone is reset before the next job, so a test never waits behind a drop.
        while (job := self._work.get()) is not None:
            action, name = job
            if action == "create":
                self._create(name)
            elif asyncio.run(self._reset(name)):
                self._ready.put(name)
            else:  # dropped: a fresh clone in its place
                self._drop(name)
                self._create(f"mercato_t_{uuid.uuid4().hex[:12]}")

    def _create(self, name: str) -> None:
        try:
            asyncio.run(self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        except BaseException as error:  # handed to the test that waits for this clone
            self._ready.put(error)
        else:
            self.made.add(name)
            self._ready.put(name)

    def _drop(self, name: str) -> None:
        try:
            asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception as error:  # reported by close(): a database left behind fails the run
            self.failed_drops.append(f"{name}: {error}")
        else:
            self.made.discard(name)

    async def _reset(self, name: str) -> bool:
        try:
            if self._state is None:
                template = await asyncpg.connect(self._dsn(self.template))
                try:
                    self._state = await TemplateState.read(template)
                finally:
                    await template.close()
            connection = await asyncpg.connect(self._dsn(name))
            try:
                # what the test left connected (as DROP DATABASE … WITH (FORCE) would)
                await connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                         "WHERE datname = current_database() AND pid <> pg_backend_pid()")
                return await self._state.restore(connection)
            finally:
                await connection.close()
        except Exception as error:
            self.reset_errors.append(f"{name}: {type(error).__name__}: {error}")
            return False
