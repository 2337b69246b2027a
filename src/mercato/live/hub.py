"""Live fan-out of events to connected clients (S3): the port and its two adapters.

The bus subscriber ``live.push`` publishes each event that concerns a user; every
process holding that user's stream delivers it. Embedded: in memory. Scaled: Redis
pub/sub, so a worker's publish reaches the API process that holds the connection.
Pub/sub may drop messages (a process restarting); clients resume with ``Last-Event-ID``
from the outbox, which never does.

A subscription that can no longer promise every message (its queue overflowed because
the client reads too slowly, the Redis connection broke, the hub closed) receives
:data:`RESET`: the stream then ends, and the client's reconnection with
``Last-Event-ID`` replays what it missed from the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from mercato.kit.logging import log

QUEUE_SIZE = 1000
SUBSCRIBE_TIMEOUT = 10.0


@dataclass(frozen=True)
class LiveMessage:
    sequence: int
    type: str
    payload: dict[str, Any]

    def dumps(self) -> str:
        return json.dumps({"sequence": self.sequence, "type": self.type, "payload": self.payload})

    @classmethod
    def loads(cls, raw: str | bytes) -> LiveMessage:
        body = json.loads(raw)
        return cls(sequence=int(body["sequence"]), type=str(body["type"]), payload=dict(body["payload"]))


# The subscription lost (or may have lost) messages: end the stream, the client resumes.
RESET = LiveMessage(sequence=-1, type="", payload={})


def offer(queue: asyncio.Queue[LiveMessage], message: LiveMessage) -> None:
    """Queue a message; on overflow, replace the backlog with :data:`RESET`."""
    try:
        queue.put_nowait(message)
    except asyncio.QueueFull:
        reset(queue)


def reset(queue: asyncio.Queue[LiveMessage]) -> None:
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(RESET)


class LiveHub(Protocol):
    async def publish(self, user_id: uuid.UUID, message: LiveMessage) -> None: ...

    def subscribe(self, user_id: uuid.UUID) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[LiveMessage]]: ...

    async def close(self) -> None: ...


class MemoryHub:
    def __init__(self) -> None:
        self._queues: dict[uuid.UUID, set[asyncio.Queue[LiveMessage]]] = {}

    async def publish(self, user_id: uuid.UUID, message: LiveMessage) -> None:
        for queue in list(self._queues.get(user_id, ())):
            offer(queue, message)

    @contextlib.asynccontextmanager
    async def subscribe(self, user_id: uuid.UUID) -> AsyncIterator[asyncio.Queue[LiveMessage]]:
        queue: asyncio.Queue[LiveMessage] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._queues.setdefault(user_id, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._queues.get(user_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    self._queues.pop(user_id, None)

    async def close(self) -> None:
        for queues in self._queues.values():
            for queue in queues:
                reset(queue)
        self._queues.clear()


class RedisHub:
    def __init__(self, url: str, *, namespace: str) -> None:
        # redis only when a Redis URL is configured (start-up time)
        from redis.asyncio import Redis

        self.redis = Redis.from_url(url)
        self.namespace = namespace

    def _channel(self, user_id: uuid.UUID) -> str:
        return f"{self.namespace}:live:user:{user_id}"

    async def publish(self, user_id: uuid.UUID, message: LiveMessage) -> None:
        await self.redis.publish(self._channel(user_id), message.dumps())

    async def _subscribed(self, pubsub: Any, user_id: uuid.UUID) -> bool:
        """Subscribe; True once Redis has confirmed (only then is a publish sure to reach this
        subscription; the caller replays from the outbox after that)."""
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                await pubsub.subscribe(self._channel(user_id))
                while (await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT) or {}).get("type") != "subscribe":
                    pass
        except Exception as exc:
            log.warning("live: Redis unavailable; the stream replays and ends", user_id=str(user_id), error=str(exc))
            return False
        return True

    @contextlib.asynccontextmanager
    async def subscribe(self, user_id: uuid.UUID) -> AsyncIterator[asyncio.Queue[LiveMessage]]:
        queue: asyncio.Queue[LiveMessage] = asyncio.Queue(maxsize=QUEUE_SIZE)
        pubsub = self.redis.pubsub()
        task: asyncio.Task[None] | None = None
        try:
            if not await self._subscribed(pubsub, user_id):
                # Redis is down: no live messages, but the stream still replays from the outbox,
                # then ends; the client's reconnection replays again (polling until Redis is back).
                reset(queue)
                yield queue
                return

            async def pump() -> None:
                try:
                    async for item in pubsub.listen():
                        if item.get("type") == "message":
                            with contextlib.suppress(ValueError, KeyError, TypeError):
                                offer(queue, LiveMessage.loads(item["data"]))
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning("live: Redis subscription lost", user_id=str(user_id), exc_info=True)
                reset(queue)  # the connection is gone: end the stream, the client resumes

            task = asyncio.create_task(pump(), name=f"live:{user_id}")
            yield queue
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe()
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def close(self) -> None:
        await self.redis.aclose()


def make_hub(redis_url: str | None, *, namespace: str) -> LiveHub:
    return RedisHub(redis_url, namespace=namespace) if redis_url else MemoryHub()
