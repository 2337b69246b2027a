"""The running bus of one process: transport, relay, deliverer, observers and scheduler, wired by role.

| role | relay | step deliveries | observers | scheduler |
| --- | --- | --- | --- | --- |
| ``embedded`` (``mercato serve``, no broker URL) | yes | in-process | yes | yes |
| ``api`` (``mercato serve`` with a broker URL) | no | no | no | no |
| ``worker`` (``mercato worker``) | yes | from the broker | yes | yes (leases keep one per sweep) |
| ``scheduler`` (``mercato scheduler``) | no | no | no | yes |

Three lanes keep the saga quick: step deliveries of the saga have their own slots; steps
whose effect leaves the database (e-mail) have others; observers run in batches beside
them and give way to saga deliveries in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from mercato.bus import repository, watch
from mercato.bus.delivery import Deliverer, RecentEvents, RetryPolicy
from mercato.bus.metrics import DEAD_LETTERS, OUTBOX_BACKLOG, PENDING
from mercato.bus.observers import Observers, types_of
from mercato.bus.outbox import register_wakeup, unregister_wakeup
from mercato.bus.registry import Registry
from mercato.bus.relay import Relay, Relayed
from mercato.bus.scheduler import SWEEPS, Scheduler, Sweep
from mercato.bus.transport import Transport
from mercato.config import Settings
from mercato.kit.clock import utcnow
from mercato.kit.db import Database, is_database_unavailable
from mercato.kit.foreground import Foreground
from mercato.kit.logging import log
from mercato.kit.tasks import cancel_and_wait
from mercato.kit.waiting import poll_until
from mercato.models import OutboxEvent, SweepLease
from mercato.platform import idempotency
from mercato.platform.runtime import Runtime

if TYPE_CHECKING:
    # the type only: the composition root hands the bus the live hub
    from mercato.live.hub import LiveHub

ROLES = ("embedded", "api", "worker", "scheduler")
# The longest pause between relay passes while they fail (a database outage).
RELAY_BACKOFF_LIMIT_SECONDS = 5.0

# Set whenever a bus in this process finished a piece of work (tests and ``wait_idle``
# wait on it instead of polling); one per event loop.
_progress: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = weakref.WeakKeyDictionary()


def _progress_signal() -> asyncio.Event:
    loop = asyncio.get_running_loop()
    signal = _progress.get(loop)
    if signal is None:
        signal = _progress[loop] = asyncio.Event()
    return signal


def _progressed() -> None:
    _progress_signal().set()


class Bus:
    def __init__(self, settings: Settings, db: Database, registry: Registry, *, role: str,
                 transport: Transport | None = None, sweeps: list[Sweep] | None = None,
                 live: LiveHub | None = None, runtime: Runtime | None = None) -> None:
        assert role in ROLES, role
        self.live = live
        # The store's long-lived objects (cache, artifact store, keys) for handlers that need them.
        self.runtime = runtime
        self.settings = settings
        self.db = db
        self.registry = registry
        self.role = role
        concurrency = settings.bus_worker_concurrency
        # The one port chosen outside Runtime.from_settings: the broker (broker_url, else in process),
        # since the transport calls back into this bus; the bus itself is built from the runtime.
        self.transport = transport or Transport(
            settings.broker_url, queue=settings.bus_queue, on_job=self._on_job, concurrency=concurrency,
            lanes={"saga": concurrency, "slow": max(1, concurrency // 2)}, lane_of=self._lane_of)
        self.redelivery_timeout = timedelta(seconds=settings.bus_redelivery_timeout_seconds)
        retry = RetryPolicy(max_attempts=settings.bus_max_attempts, base_delay=settings.bus_retry_base_seconds,
                            max_delay=settings.bus_retry_max_seconds)
        recent = RecentEvents()
        self.deliverer = Deliverer(db, registry, retry, self.transport.kick, context=self, recent=recent)
        self.relay = Relay(db, registry, self.transport.kick, redelivery_timeout=self.redelivery_timeout,
                           remember=recent.remember)
        self.traffic = Foreground()  # this process's saga deliveries in flight: observers give way to them
        self.observers = Observers(db, registry, retry, context=self, traffic=self.traffic,
                                   poll=settings.bus_observer_poll_seconds, on_progress=_progressed)
        builtin = [Sweep("bus.redeliver", settings.bus_sweep_interval_seconds, _redeliver),
                   Sweep("bus.gauges", 15.0, _gauges),
                   Sweep("idempotency.purge", 3600.0, _purge_idempotency)]
        self.scheduler = Scheduler(db, self, sweeps if sweeps is not None else builtin + list(SWEEPS.values()))
        self._wakeup = asyncio.Event()
        self._relay_task: asyncio.Task[None] | None = None
        self._observing = False

    @property
    def runs_relay(self) -> bool:
        return self.role in ("embedded", "worker")

    def _lane_of(self, subscriber_name: str) -> str:
        subscriber = self.registry.get(subscriber_name)
        return subscriber.lane if subscriber is not None else "saga"

    async def _on_job(self, subscriber: str, event_id: uuid.UUID) -> None:
        if self._lane_of(subscriber) == "saga":
            with self.traffic.serving():
                await self.deliverer.deliver(subscriber, event_id)
        else:
            await self.deliverer.deliver(subscriber, event_id)
        _progressed()

    async def start(self) -> None:
        await self.transport.start(consume=self.role == "worker")
        if self.runs_relay:
            await self.observers.start()
            self._observing = True
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
        if self._observing:
            await self.observers.stop()
            self._observing = False
        await self.transport.stop()

    def _relayed(self, relayed: Relayed) -> None:
        if relayed.observers:
            self.observers.wake(relayed.observers)
        watch.relayed(relayed.subjects)
        _progressed()

    async def relay_now(self) -> int:
        """Relay everything committed so far and wake the observers it concerns."""
        return await self.relay.drain(self._relayed)

    async def _relay_loop(self) -> None:
        poll = self.settings.bus_relay_poll_seconds
        wait, outage = poll, False
        while True:
            # Cleared before the pass, not after: a commit that publishes while the pass runs
            # sets it again, and the pause below then returns at once.
            self._wakeup.clear()
            try:
                await self.relay_now()
                if outage:
                    log.info("bus: the database is back; relaying again")
                wait, outage = poll, False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_database_unavailable(exc):
                    log.exception("bus: relay pass failed")
                elif not outage:  # one warning per outage, not one trace every poll
                    log.warning("bus: the database is unavailable; the relay backs off", error=str(exc))
                outage = outage or is_database_unavailable(exc)
                wait = min(wait * 2, RELAY_BACKOFF_LIMIT_SECONDS)  # a failing pass never spins
            await self._pause(wait)

    async def _pause(self, seconds: float) -> None:
        """Until a publish wakes the relay (or woke it during the last pass), or ``seconds`` pass."""
        if self._wakeup.is_set():
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout=seconds)

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

    async def wait_idle(self, timeout: float = 30.0) -> None:
        await wait_idle(self.db, self.registry, timeout=timeout)


def observed_types(registry: Registry) -> dict[str, frozenset[str] | None]:
    return {observer.name: types_of(observer) for observer in registry.observers}


async def owes_anything(db: Database, registry: Registry) -> bool:
    async with db.read_session() as session:
        return await repository.anything_owed(session, observed_types(registry))


def progress_signal() -> asyncio.Event:
    """Set whenever a bus of this process finishes a piece of work: clear it, look, then wait
    on it (work done between the look and the wait is not missed)."""
    return _progress_signal()


async def wait_idle(db: Database, registry: Registry, *, timeout: float = 30.0) -> None:
    """Return once the bus owes nothing: every event relayed, no step delivery pending, every
    observer past every event of its types (INV-7's bus part). Wakes on the buses of this
    process making progress; a bus in another process is asked again every half second."""
    signal = _progress_signal()

    async def idle() -> bool | None:
        signal.clear()  # before looking: progress made after the look wakes the next pause
        return None if await owes_anything(db, registry) else True

    if not await poll_until(idle, deadline=asyncio.get_running_loop().time() + timeout, interval=0.5, wake=signal):
        raise TimeoutError(f"the bus still owes work after {timeout} s")


async def _redeliver(bus: Bus) -> None:
    await bus.relay_now()
    await bus.redrive_due()


async def _gauges(bus: Bus) -> None:
    await refresh_gauges(bus.db, bus.registry)


@dataclass(frozen=True)
class Backlog:
    outbox: int
    pending: dict[str, int] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)

    @property
    def pending_total(self) -> int:
        return sum(self.pending.values())

    @property
    def dead_total(self) -> int:
        return sum(self.dead.values())


async def backlog(session: AsyncSession, registry: Registry) -> Backlog:
    """Events not yet relayed, deliveries still owed per subscriber (an observer owes the relayed
    events of its types beyond its cursor) and dead letters per subscriber."""
    outbox = await repository.unrelayed_count(session)
    counts = await repository.counts_by_state(session)
    owed = await repository.observers_owed(session, observed_types(registry))
    pending, dead = {}, {}
    for subscriber in registry.subscribers.values():
        if subscriber.batch:
            pending[subscriber.name] = owed.get(subscriber.name, 0)
        else:
            pending[subscriber.name] = counts.get((subscriber.name, "pending"), 0)
        dead[subscriber.name] = counts.get((subscriber.name, "dead"), 0)
    return Backlog(outbox=outbox, pending=pending, dead=dead)


async def refresh_gauges(db: Database, registry: Registry) -> None:
    """Set the bus gauges from the database (the truth every process shares)."""
    async with db.read_session() as session:
        owed = await backlog(session, registry)
    OUTBOX_BACKLOG.set(owed.outbox)
    for name, count in owed.pending.items():
        PENDING.labels(name).set(count)
    for name, count in owed.dead.items():
        DEAD_LETTERS.labels(name).set(count)


async def _purge_idempotency(bus: Bus) -> None:
    async with bus.db.transaction() as session:
        await idempotency.purge_expired(session)


# --- reads and leases for other modules (they reach the bus's tables only through here) ---------

async def event(session: AsyncSession, event_id: uuid.UUID) -> OutboxEvent | None:
    """One event of the outbox by id (a webhook delivery reads the event it sends)."""
    return await repository.event(session, event_id)


async def search_events(session: AsyncSession, *, event_type: str | None, subject: str | None,
                        since: datetime | None, until: datetime | None, before_sequence: int | None,
                        limit: int) -> list[OutboxEvent]:
    """Events newest first, filtered; ``before_sequence`` continues a previous page."""
    return await repository.search_events(session, event_type=event_type, subject=subject, since=since,
                                          until=until, before_sequence=before_sequence, limit=limit)


async def latest_sequence(session: AsyncSession) -> int:
    """The highest sequence number handed out so far (0 for an empty outbox)."""
    return await repository.latest_sequence(session)


async def events_for_user_after(session: AsyncSession, user_id: uuid.UUID, after_sequence: int, *,
                                limit: int) -> list[OutboxEvent]:
    """A user's events after ``after_sequence``, oldest first (the live stream's replay)."""
    return await repository.events_for_user_after(session, user_id, after_sequence, limit=limit)


async def take_lease(session: AsyncSession, name: str, holder: str, now: datetime, until: datetime) -> bool:
    """Take the sweep lease ``name`` until ``until`` when it is free or already ``holder``'s."""
    return await repository.take_lease(session, name, holder, now, until)


async def finish_lease(session: AsyncSession, name: str, holder: str, *, at: datetime, next_at: datetime,
                       ok: bool, error: str | None) -> None:
    """Record a sweep's run; nobody runs it again before ``next_at``."""
    await repository.finish_lease(session, name, holder, at=at, next_at=next_at, ok=ok, error=error)


async def leases(session: AsyncSession) -> list[SweepLease]:
    """Every sweep's lease row, by name: its last run and health."""
    return await repository.leases(session)
