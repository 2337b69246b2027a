"""Live fan-out of events to connected clients (S3): the port and its two adapters.

The bus subscriber ``live.push`` publishes each event that concerns a user; every
process holding that user's stream delivers it. Embedded: in memory. Scaled: Redis
pub/sub, so a worker's publish reaches the API process that holds the connection.
Pub/sub may drop messages (a process restarting); clients resume with ``Last-Event-ID``
from the outbox, which never does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

QUEUE_SIZE = 1000


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


class LiveHub(Protocol):
    async def publish(self, user_id: uuid.UUID, message: LiveMessage) -> None: ...

    def subscribe(self, user_id: uuid.UUID) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[LiveMessage]]: ...

    async def close(self) -> None: ...


class MemoryHub:
    def __init__(self) -> None:
        self._queues: dict[uuid.UUID, set[asyncio.Queue[LiveMessage]]] = {}

    async def publish(self, user_id: uuid.UUID, message: LiveMessage) -> None:
        for queue in list(self._queues.get(user_id, ())):
            with contextlib.suppress(asyncio.QueueFull):  # a stalled client loses live messages, not the store
                queue.put_nowait(message)

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
        self._queues.clear()


class RedisHub:
    def __init__(self, url: str, *, namespace: str) -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(url)
        self.namespace = namespace

    def _channel(self, user_id: uuid.UUID) -> str:
        return f"{self.namespace}:live:user:{user_id}"

    async def publish(self, user_id: uuid.UUID, message: LiveMessage) -> None:
        await self.redis.publish(self._channel(user_id), message.dumps())

    @contextlib.asynccontextmanager
    async def subscribe(self, user_id: uuid.UUID) -> AsyncIterator[asyncio.Queue[LiveMessage]]:
        queue: asyncio.Queue[LiveMessage] = asyncio.Queue(maxsize=QUEUE_SIZE)
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self._channel(user_id))

        async def pump() -> None:
            async for item in pubsub.listen():
                if item.get("type") == "message":
                    with contextlib.suppress(asyncio.QueueFull, ValueError, KeyError):
                        queue.put_nowait(LiveMessage.loads(item["data"]))

        task = asyncio.create_task(pump())
        try:
            yield queue
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe()
                await pubsub.aclose()

    async def close(self) -> None:
        await self.redis.aclose()


def make_hub(redis_url: str | None, *, namespace: str) -> LiveHub:
    return RedisHub(redis_url, namespace=namespace) if redis_url else MemoryHub()
