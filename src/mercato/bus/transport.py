"""What carries delivery jobs (``subscriber``, ``event_id``) to the code that delivers them.

- no ``MERCATO_BROKER_URL``: in this process, each job an asyncio task (no broker, no
  serialization: the embedded store does not load taskiq at all);
- through taskiq, to ``mercato worker`` processes:
- ``redis://`` Redis Streams with consumer groups and acknowledgements;
- ``amqp://`` RabbitMQ (aio-pika);
- ``nats://`` NATS JetStream (pull consumers).

Messages carry only ids: the delivery row in the database says what is owed, so a lost,
duplicated or reordered message costs time, never correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mercato.kit.logging import log
from mercato.kit.tasks import cancel_and_wait

if TYPE_CHECKING:
    from taskiq import AsyncBroker

OnJob = Callable[[str, uuid.UUID], Awaitable[Any]]
TASK_NAME = "mercato.bus.deliver"


def make_taskiq_broker(url: str, *, queue: str) -> AsyncBroker:
    """The taskiq broker of a broker URL (only the configured broker's client is imported)."""
    if url.startswith(("redis://", "rediss://")):
        return _redis_streams_broker(url, queue)
    if url.startswith(("amqp://", "amqps://")):
        # the configured broker's client only (start-up time)
        from taskiq_aio_pika import AioPikaBroker
        from taskiq_aio_pika.exchange import Exchange
        from taskiq_aio_pika.queue import Queue, QueueType

        # A quorum queue: replicated and durable. Our own dead letters live in the
        # database; RabbitMQ's only catches messages a worker rejected outright.
        return AioPikaBroker(url, exchange=Exchange(name=f"{queue}-exchange"),
                             task_queues=[Queue(name=queue, type=QueueType.QUORUM)],
                             dead_letter_queue=Queue(name=f"{queue}-rejected", type=QueueType.QUORUM))
    if url.startswith(("nats://", "tls://")):
        return _nats_jetstream_broker(url, queue)
    raise ValueError(f"unsupported broker URL {url!r}: use redis://, amqp:// or nats://")


# How often a NATS listener with nothing to fetch checks that its consumer still exists.
NATS_CONSUMER_CHECK_SECONDS = 5.0


def _nats_jetstream_broker(url: str, queue: str) -> AsyncBroker:
    # the configured broker's client only (start-up time)
    from nats.errors import TimeoutError as NatsTimeoutError
    from nats.js.errors import NoStreamResponseError, NotFoundError
    from taskiq.acks import AckableMessage
    from taskiq_nats import PullBasedJetStreamBroker

    class RecoveringJetStreamBroker(PullBasedJetStreamBroker):
        """JetStream that survives a NATS server restarted empty (or a deleted stream or
        consumer): the client reconnects for ever, the stream and the durable consumer are
        declared again, and sending and listening go on without a restart. Jobs lost with
        the stream are re-driven from the database by the sweep."""

        async def redeclare(self) -> None:
            await self._add_or_reuse_stream()
            previous = getattr(self, "consumer", None)
            await self._startup_consumer()
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous.unsubscribe()

        async def kick(self, message):  # type: ignore[no-untyped-def,override]
            try:
                await super().kick(message)
            except (NoStreamResponseError, NotFoundError):
                log.warning("bus: the NATS stream is gone; declaring it again", stream=self.stream_name)
                await self.redeclare()
                await super().kick(message)

        async def listen(self):  # type: ignore[no-untyped-def,override]
            loop = asyncio.get_running_loop()
            check_at = loop.time() + NATS_CONSUMER_CHECK_SECONDS
            while True:
                try:
                    if loop.time() >= check_at:
                        check_at = loop.time() + NATS_CONSUMER_CHECK_SECONDS
                        # A fetch from a consumer that no longer exists only ever times out.
                        await self.js.consumer_info(self.stream_name, self.durable)
                    messages = await self.consumer.fetch(batch=self.pull_consume_batch, timeout=1.0)
                except NatsTimeoutError:
                    continue
                except Exception as exc:  # gone (NotFoundError), or NATS is still coming back
                    log.warning("bus: NATS consumer unavailable; declaring it again", stream=self.stream_name,
                                error=f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(0.5)
                    with contextlib.suppress(Exception):
                        await self.redeclare()
                        check_at = loop.time() + NATS_CONSUMER_CHECK_SECONDS
                    continue
                for message in messages:
                    yield AckableMessage(data=message.data, ack=message.ack)

    # Reconnect for ever (nats-py gives up after 60 attempts by default, and then the bus is dead).
    return RecoveringJetStreamBroker(servers=[url], subject=f"{queue}.jobs", stream_name=queue.replace(".", "-"),
                                     durable=f"{queue}-workers".replace(".", "-"), max_reconnect_attempts=-1,
                                     reconnect_time_wait=1)


def _redis_streams_broker(url: str, queue: str) -> AsyncBroker:
    # the configured broker's client only (start-up time)
    from redis.exceptions import ResponseError
    from taskiq_redis import RedisStreamBroker

    class RecoveringRedisStreamBroker(RedisStreamBroker):
        """Redis Streams that survive the stream being deleted (a Redis restarted empty,
        or wiped): the consumer group is declared again and listening goes on. Jobs lost
        with the stream are re-driven from the database by the sweep."""

        async def listen(self):  # type: ignore[no-untyped-def,override]
            while True:
                try:
                    async for message in super().listen():
                        yield message
                except ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    log.warning("bus: the Redis stream is gone; declaring it again", stream=self.queue_name)
                    await asyncio.sleep(0.5)
                    await self._declare_consumer_group()

    # consumer_id "0": a group created after jobs were added still reads them.
    return RecoveringRedisStreamBroker(url, queue_name=queue, consumer_group_name=f"{queue}-workers",
                                       consumer_id="0", xread_block=1000, unacknowledged_lock_timeout=30,
                                       idle_timeout=30_000)


class Transport:
    """Delivery jobs: asyncio tasks in this process without a broker URL, else a taskiq broker
    with the delivery task registered on it."""

    def __init__(self, url: str | None, *, queue: str, on_job: OnJob, concurrency: int = 4,
                 lanes: dict[str, int] | None = None, lane_of: Callable[[str], str] | None = None) -> None:
        self.url = url
        self.in_process = not url or url.startswith("memory")
        self._on_job = on_job
        self.concurrency = concurrency
        # In this process a job is a task started at once: without a bound a backlog of
        # thousands would queue for the connection pool ahead of every request. Each lane has
        # its own bound, so slow jobs (an SMTP server taking its time) never take the turn of
        # a saga step.
        slots = {lane: asyncio.Semaphore(size) for lane, size in (lanes or {"default": concurrency}).items()}
        default = next(iter(slots.values()))

        async def deliver(subscriber: str, event_id: str) -> None:
            try:
                async with slots.get(lane_of(subscriber), default) if lane_of is not None else default:
                    await self._on_job(subscriber, uuid.UUID(event_id))
            except asyncio.CancelledError:
                if self._stopping:  # cancelled on purpose by stop(): the delivery stays pending, no trace
                    return
                raise

        self._deliver = deliver
        self.running: set[asyncio.Task[None]] = set()  # in-process jobs not finished yet
        self.broker: AsyncBroker | None = None if self.in_process else make_taskiq_broker(url or "", queue=queue)
        self.task = self.broker.register_task(deliver, task_name=TASK_NAME) if self.broker is not None else None
        self._receiver: asyncio.Task[None] | None = None
        self._started = False
        self._stopping = False

    async def start(self, *, consume: bool) -> None:
        if self.broker is None:
            self._started = True
            return
        # Brokers open their consuming side only in worker processes (taskiq's flag).
        self.broker.is_worker_process = consume
        if consume:
            await self.broker.startup()
        else:
            try:  # an API process keeps answering with the broker down; /readyz says so
                await self.broker.startup()
            except Exception as exc:
                log.warning("bus: broker unreachable at start", error=str(exc))
                return
        self._started = True
        if consume:
            from taskiq.api import run_receiver_task  # with the broker's client (start-up time)

            # taskiq's receiver loop restarts its listener after any error.
            self._receiver = asyncio.create_task(
                run_receiver_task(self.broker, max_async_tasks=50, propagate_exceptions=False), name="bus:receiver")

    async def stop(self) -> None:
        if self._receiver is not None:
            await cancel_and_wait([self._receiver], what="broker receiver")
            self._receiver = None
        if self.in_process:
            # Jobs still queued in this process are cancelled, not awaited: their deliveries stay
            # pending in the database and the next start re-drives them.
            self._stopping = True
            try:
                await cancel_and_wait(list(self.running), what="in-process deliveries")
            finally:
                self._stopping = False
        if self._started and self.broker is not None:
            with contextlib.suppress(Exception):
                await self.broker.shutdown()
        self._started = False

    async def kick(self, subscriber: str, event_id: uuid.UUID) -> None:
        """Hand a job on; failures are logged, the sweep re-drives."""
        if self.task is None:
            job = asyncio.get_running_loop().create_task(self._deliver(subscriber, str(event_id)),
                                                         name=f"bus:deliver:{subscriber}")
            self.running.add(job)
            job.add_done_callback(self._finished)
            return
        try:
            await self.task.kiq(subscriber, str(event_id))
        except Exception as exc:
            log.warning("bus: broker refused a job; the sweep will re-drive it", error=str(exc))

    def _finished(self, job: asyncio.Task[None]) -> None:
        self.running.discard(job)
        if not job.cancelled() and job.exception() is not None:
            # the delivery is still pending in the database: the sweep re-drives it
            log.warning("bus: an in-process delivery job failed", job=job.get_name(), error=str(job.exception()))

    async def ping(self) -> None:
        """Raise if the broker is unreachable (readiness)."""
        if self.broker is None:
            return
        if self.url and self.url.startswith(("redis://", "rediss://")):
            # the configured broker's client only (start-up time)
            from redis.asyncio import Redis

            async with Redis.from_url(self.url) as client:
                await client.ping()
            return
        if self.url and self.url.startswith(("amqp://", "amqps://")):
            connection = getattr(self.broker, "write_conn", None) or getattr(self.broker, "_connection", None)
            if connection is None or getattr(connection, "is_closed", False):
                raise ConnectionError("RabbitMQ connection is closed")
            return
        client = getattr(self.broker, "client", None)
        if client is None or not getattr(client, "is_connected", False):
            raise ConnectionError("NATS is not connected")
        # Connected is not enough: a server restarted empty has no stream until a send or the
        # listener declares it again.
        await self.broker.js.stream_info(self.broker.stream_name)  # type: ignore[attr-defined]
