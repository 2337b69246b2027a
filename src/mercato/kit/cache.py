"""The cache port: rendered responses that are expensive to build and cheap to keep.

``MemoryCache`` serves the embedded default (one process); ``RedisCache`` is shared by
every process of a scaled store, so an eviction made by a worker reaches every API
process. Entries always carry a time to live, so a missed eviction only delays freshness.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from mercato.kit.logging import log
from mercato.kit.metrics import CACHE_REQUESTS

REDIS_TIMEOUT_SECONDS = 1.0  # a cache that answers slower than this is no use
REDIS_COOL_OFF_SECONDS = 1.0


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, *, ttl: float) -> None: ...
    async def delete(self, *keys: str) -> None: ...
    async def close(self) -> None: ...


class MemoryCache:
    """A bounded LRU with per-entry expiry, for one process."""

    def __init__(self, *, name: str = "default", max_entries: int = 10_000) -> None:
        self.name = name
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            if entry is not None:
                del self._entries[key]
            CACHE_REQUESTS.labels(self.name, "miss").inc()
            return None
        self._entries.move_to_end(key)
        CACHE_REQUESTS.labels(self.name, "hit").inc()
        return entry[1]

    async def set(self, key: str, value: bytes, *, ttl: float) -> None:
        if ttl <= 0:
            return
        self._entries[key] = (time.monotonic() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._entries.pop(key, None)

    async def close(self) -> None:
        self._entries.clear()


class RedisCache:
    """Shared by every process. A cache is an optimisation: when Redis fails (down, restarting,
    too slow) a lookup is a miss, a store is skipped and an eviction is lost (the entry's time
    to live bounds the staleness), never an error for the caller. After a failure Redis is
    left alone for ``REDIS_COOL_OFF_SECONDS``, so a dead Redis costs requests nothing."""

    def __init__(self, url: str, *, namespace: str, name: str = "default") -> None:
        # redis only when a Redis URL is configured (start-up time)
        from redis.asyncio import Redis

        self.name = name
        self.prefix = f"{namespace}:cache:{name}:"
        self.redis = Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                                    socket_timeout=REDIS_TIMEOUT_SECONDS)
        self._resting_until = 0.0

    def _available(self) -> bool:
        return time.monotonic() >= self._resting_until

    def _failed(self, action: str, exc: Exception) -> None:
        self._resting_until = time.monotonic() + REDIS_COOL_OFF_SECONDS
        CACHE_REQUESTS.labels(self.name, "error").inc()
        log.warning("cache unavailable; going on without it", cache=self.name, action=action, error=str(exc))

    async def get(self, key: str) -> bytes | None:
        if not self._available():
            CACHE_REQUESTS.labels(self.name, "error").inc()
            return None
        try:
            value = await self.redis.get(self.prefix + key)
        except Exception as exc:
            self._failed("get", exc)
            return None
        CACHE_REQUESTS.labels(self.name, "hit" if value is not None else "miss").inc()
        return value  # type: ignore[no-any-return]

    async def set(self, key: str, value: bytes, *, ttl: float) -> None:
        if ttl > 0 and self._available():
            try:
                await self.redis.set(self.prefix + key, value, px=max(1, int(ttl * 1000)))
            except Exception as exc:
                self._failed("set", exc)

    async def delete(self, *keys: str) -> None:
        # Tried even while resting: a missed eviction serves stale data until the entry expires.
        if keys:
            try:
                await self.redis.delete(*(self.prefix + key for key in keys))
            except Exception as exc:
                self._failed("delete", exc)

    async def close(self) -> None:
        await self.redis.aclose()


T = TypeVar("T")


class SingleFlight:
    """One computation per key at a time in this process: callers that ask for a key while it
    is being computed wait for that computation's result (or error) instead of starting their
    own. Without it, an entry expiring under load is rebuilt by every request that misses it
    at once. The computation runs as its own task, so a caller that goes away (a client
    hanging up) does not cancel it for the others."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[Any]] = {}

    def __len__(self) -> int:
        return len(self._running)

    async def run(self, key: str, compute: Callable[[], Awaitable[T]]) -> T:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(compute())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)  # type: ignore[no-any-return]

    def _finished(self, key: str, task: asyncio.Task[Any]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone away


def make_cache(redis_url: str | None, *, namespace: str, name: str) -> Cache:
    return RedisCache(redis_url, namespace=namespace, name=name) if redis_url else MemoryCache(name=name)


# --- evictions that wait for the commit -----------------------------------------------------------
# A change evicts cached copies only once it is committed: evicting earlier would let a
# concurrent reader cache the old state again. The route that owns the transaction applies
# them right after its commit (read-your-writes in this process); the bus handlers evict
# again for other processes, and entries expire anyway.

EVICTIONS = "mercato_cache_evictions"


def evict_after_commit(session: object, *keys: str) -> None:
    session.info.setdefault(EVICTIONS, set()).update(keys)


async def apply_evictions(session: object, cache: Cache) -> None:
    keys = session.info.pop(EVICTIONS, None)
    if keys:
        await cache.delete(*keys)
