"""The running bus of one process: transport, relay, deliverer and scheduler, wired by role.

| role | relay | consumes jobs | scheduler |
| --- | --- | --- | --- |
| ``embedded`` (``mercato serve``, no broker URL) | yes | in-process | yes |
| ``api`` (``mercato serve`` with a broker URL) | no | no | no |
| ``worker`` (``mercato worker``) | yes | yes | yes (leases keep one per sweep) |
| ``scheduler`` (``mercato scheduler``) | no | no | yes |
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta
from typing import Any

from mercato.bus import repository
from mercato.kit.tasks import cancel_and_wait
from mercato.bus.delivery import Deliverer, RetryPolicy
from mercato.bus.metrics import DEAD_LETTERS, OUTBOX_BACKLOG, PENDING
from mercato.bus.outbox import register_wakeup, unregister_wakeup
from mercato.bus.registry import Registry
from mercato.bus.relay import Relay
from mercato.bus.scheduler import SWEEPS, Scheduler, Sweep
from mercato.bus.transport import Transport
from mercato.config import Settings
from mercato.kit import idempotency
from mercato.kit.clock import utcnow
from mercato.kit.db import Database
from mercato.kit.logging import log
from mercato.live.hub import LiveHub

ROLES = ("embedded", "api", "worker", "scheduler")


class Bus:
    def __init__(self, settings: Settings, db: Database, registry: Registry, *, role: str,
                 transport: Transport | None = None, sweeps: list[Sweep] | None = None,
                 live: LiveHub | None = None, runtime: Any = None) -> None:
        assert role in ROLES, role
        self.live = live
        # The store's long-lived objects (cache, artifact store, keys) for handlers that need them.
        self.runtime = runtime
        self.settings = settings
        self.db = db
        self.registry = registry
        self.role = role
        self.transport = transport or Transport(settings.broker_url, queue=settings.bus_queue, on_job=self._on_job,
                                                    concurrency=settings.bus_worker_concurrency)
        self.redelivery_timeout = timedelta(seconds=settings.bus_redelivery_timeout_seconds)
        self.deliverer = Deliverer(db, registry, RetryPolicy(max_attempts=settings.bus_max_attempts,
                                                             base_delay=settings.bus_retry_base_seconds,
                                                             max_delay=settings.bus_retry_max_seconds),
                                   self.transport.kick, context=self)
        self.relay = Relay(db, registry, self.transport.kick, redelivery_timeout=self.redelivery_timeout)
        builtin = [Sweep("bus.redeliver", settings.bus_sweep_interval_seconds, _redeliver),
                   Sweep("bus.gauges", 15.0, _gauges),
                   Sweep("idempotency.purge", 3600.0, _purge_idempotency)]
        self.scheduler = Scheduler(db, self, sweeps if sweeps is not None else builtin + list(SWEEPS.values()))
        self._wakeup = asyncio.Event()
        self._relay_task: asyncio.Task[None] | None = None

    @property
    def runs_relay(self) -> bool:
        return self.role in ("embedded", "worker")

    async def _on_job(self, subscriber: str, event_id: uuid.UUID) -> None:
        await self.deliverer.deliver(subscriber, event_id)

    async def start(self) -> None:
        await self.transport.start(consume=self.role == "worker")
        if self.runs_relay:
            register_wakeup(self._wakeup)
            self._relay_task = asyncio.create_task(self._relay_loop(), name="bus:relay")
        if self.role == "embedded":
            # The in-process broker kept nothing across a restart: re-drive what is owed now.
            await self.redrive_all_pending()
        if self.role in ("embedded", "worker", "scheduler"):
            self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        if self._relay_task is not None:
            unregister_wakeup(self._wakeup)
            await cancel_and_wait([self._relay_task], what="bus relay")
            self._relay_task = None
        await self.transport.stop()

    async def _relay_loop(self) -> None:
        poll = self.settings.bus_relay_poll_seconds
        while True:
            try:
                await self.relay.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("bus: relay pass failed")
            self._wakeup.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=poll)

    async def redrive_due(self) -> int:
        """Hand every due pending delivery to the broker again (retries and lost messages)."""
        count = 0
        while True:
            now = utcnow()
            async with self.db.transaction() as session:
                due = await repository.take_due(session, now=now, lease_until=now + self.redelivery_timeout, limit=500)
            for subscriber, event_id in due:
                await self.transport.kick(subscriber, event_id)
            count += len(due)
            if len(due) < 500:
                return count

    async def redrive_all_pending(self) -> int:
        async with self.db.read_session() as session:
            pending = await repository.all_pending(session, limit=10_000)
        for row in pending:
            await self.transport.kick(row.subscriber, row.event_id)
        return len(pending)

    async def ping(self) -> None:
        await self.transport.ping()


async def _redeliver(bus: Bus) -> None:
    await bus.relay.drain()
    await bus.redrive_due()


async def _gauges(bus: Bus) -> None:
    async with bus.db.read_session() as session:
        OUTBOX_BACKLOG.set(await repository.unrelayed_count(session))
        counts = await repository.counts_by_state(session)
    for subscriber in bus.registry.subscribers:
        PENDING.labels(subscriber).set(counts.get((subscriber, "pending"), 0))
        DEAD_LETTERS.labels(subscriber).set(counts.get((subscriber, "dead"), 0))


async def _purge_idempotency(bus: Bus) -> None:
    async with bus.db.transaction() as session:
        await idempotency.purge_expired(session)
