"""Shared pieces of the bus tests: a test registry whose handlers record their effects in
a scratch table, and helpers to publish and wait."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus.events import CloudEvent, declare_event_type
from mercato.bus.outbox import publish
from mercato.bus.registry import Registry
from mercato.kit.db import Database
from mercato.kit.failpoints import failpoint

declare_event_type("test.ping", source="tests", data="{n}")
declare_event_type("test.poison", source="tests", data="{}")

EFFECTS_TABLE = "bus_test_effects"
# Set by a test to make the poison handler succeed (the "fix" before a replay).
POISON_FIXED = {"value": False}


async def create_effects_table(db: Database) -> None:
    # ``position`` records the order effects committed in (per-subject order checks).
    position = "INTEGER PRIMARY KEY" if db.is_sqlite else "BIGSERIAL PRIMARY KEY"
    async with db.transaction() as session:
        await session.execute(text(
            f"CREATE TABLE IF NOT EXISTS {EFFECTS_TABLE} (position {position}, subscriber VARCHAR(100), "
            "event_id VARCHAR(36), subject VARCHAR(128), n INTEGER, pid INTEGER)"))


async def _record(session: AsyncSession, subscriber: str, event: CloudEvent) -> None:
    await session.execute(text(
        f"INSERT INTO {EFFECTS_TABLE} (subscriber, event_id, subject, n, pid) VALUES (:s, :e, :subject, :n, :pid)"), {
        "s": subscriber, "e": str(event.id), "subject": event.subject, "n": int(event.json_data.get("n", 0)),
        "pid": os.getpid()})


def test_registry() -> Registry:
    registry = Registry()

    @registry.subscribe("test.ping", name="tests.first")
    async def first(session: AsyncSession, event: CloudEvent) -> None:
        await _record(session, "tests.first", event)

    @registry.subscribe("test.ping", name="tests.second")
    async def second(session: AsyncSession, event: CloudEvent) -> None:
        await _record(session, "tests.second", event)

    @registry.subscribe("test.poison", name="tests.poison")
    async def poison(session: AsyncSession, event: CloudEvent) -> None:
        if not POISON_FIXED["value"]:
            raise ValueError("poison event")
        await _record(session, "tests.poison", event)

    # An observer: takes its events in batches and follows the relay with a cursor.
    @registry.observe("test.ping", name="tests.watch")
    async def watch(session: AsyncSession, events: list[CloudEvent]) -> None:
        for event in events:
            await _record(session, "tests.watch", event)
        await failpoint("tests.watch.after_effect")

    @registry.observe("test.ping", "test.poison", name="tests.poison_watch")
    async def poison_watch(session: AsyncSession, events: list[CloudEvent]) -> None:
        for event in events:
            if event.type == "test.poison":
                if not POISON_FIXED["value"]:
                    raise ValueError("poison event")
                await _record(session, "tests.poison_watch", event)

    return registry


async def publish_pings(db: Database, count: int, *, subjects: int = 10, start: int = 0) -> list[uuid.UUID]:
    ids = []
    async with db.transaction() as session:
        for n in range(start, start + count):
            event = CloudEvent(type="test.ping", subject=f"subject-{n % subjects}", data={"n": n})
            await publish(session, event)
            ids.append(event.id)
    return ids


async def effects(db: Database) -> list[tuple[str, str, str, int, int]]:
    async with db.read_session() as session:
        rows = await session.execute(text(
            f"SELECT subscriber, event_id, subject, n, pid FROM {EFFECTS_TABLE} ORDER BY position"))
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def wait_for_effects(db: Database, expected: int, *, timeout: float = 60) -> list[tuple]:  # type: ignore[type-arg]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with db.read_session() as session:
            count = await session.scalar(text(f"SELECT count(*) FROM {EFFECTS_TABLE}"))
        if count >= expected:
            return await effects(db)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"only {count} of {expected} effects after {timeout}s")
        await asyncio.sleep(0.05)


def assert_exactly_once(rows: list[tuple], subscribers: tuple[str, ...], event_ids: list[uuid.UUID]) -> None:  # type: ignore[type-arg]
    counts = Counter((row[0], row[1]) for row in rows)
    expected = {(s, str(e)) for s in subscribers for e in event_ids}
    assert set(counts) == expected
    duplicated = {key: n for key, n in counts.items() if n != 1}
    assert not duplicated, f"effects repeated: {list(duplicated.items())[:5]}"


def assert_in_order_per_subject(rows: list[tuple], subscriber: str) -> None:  # type: ignore[type-arg]
    """rows come in commit order: within a subject, n must increase."""
    last: dict[str, int] = {}
    for row in rows:
        if row[0] != subscriber:
            continue
        subject, n = row[2], row[3]
        assert n > last.get(subject, -1), f"{subscriber} handled {subject} #{n} after #{last[subject]}"
        last[subject] = n
