"""Rate limiting with the ``limits`` library: memory when embedded, Redis when scaled.

Used for brute-force protection (T7): failures are counted with ``hit`` and checked with
``test`` before an attempt, so successful logins never use up the budget. A check made
before an attempt cannot see the attempts still running, so a burst of concurrent guesses
would all pass it; :meth:`RateLimiter.attempt` therefore also counts attempts in flight
(an atomic counter in the same storage) against the limit for the keys it guards.

When Redis is configured but unreachable (F8): a sign-in (:meth:`RateLimiter.attempt`)
fails closed, refused with 503 and ``Retry-After`` rather than let through uncounted, so an
outage never opens the door to password guessing; the other limits (:meth:`check`,
:meth:`hit`: sign-up and refresh throttles) fail open, since refusing them would only take
the store down with its cache.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from mercato.kit.errors import RateLimited, ServiceUnavailable
from mercato.kit.logging import log


class RateLimiter:
    def __init__(self, redis_url: str | None = None, *, namespace: str = "mercato") -> None:
        self.storage: Storage = (
            RedisStorage(_limits_redis_uri(redis_url), key_prefix=f"{namespace}-limits") if redis_url
            else MemoryStorage()
        )
        self.strategy = MovingWindowRateLimiter(self.storage)

    async def check(self, *, name: str, keys: list[str], limit: int, window_seconds: int,
                    fail_closed: bool = False) -> None:
        """Raise 429 if any of ``keys`` has used up ``limit`` within the window. With the storage
        down: let the request through, or refuse it with 503 when ``fail_closed``."""
        item = RateLimitItemPerSecond(limit, window_seconds)
        for key in keys:
            try:
                allowed = await self.strategy.test(item, name, key)
                if not allowed:
                    reset, _remaining = await self.strategy.get_window_stats(item, name, key)
                    raise RateLimited("Too many attempts; wait before trying again.",
                                      retry_after=max(1, int(reset - time.time()) + 1))
            except RateLimited:
                raise
            except Exception as exc:
                log.warning("rate limit storage unavailable", limit=name, fail_closed=fail_closed, error=str(exc))
                if fail_closed:
                    raise LimiterUnavailable() from exc
                return

    async def hit(self, *, name: str, keys: list[str], limit: int, window_seconds: int) -> None:
        item = RateLimitItemPerSecond(limit, window_seconds)
        for key in keys:
            try:
                await self.strategy.hit(item, name, key)
            except Exception as exc:
                log.warning("rate limit storage unavailable", error=str(exc))

    @asynccontextmanager
    async def attempt(self, *, name: str, keys: list[str], limit: int, window_seconds: int,
                      guarded: list[str]) -> AsyncIterator[Attempt]:
        """One attempt that may fail (a sign-in): refused with 429 when any of ``keys`` has
        ``limit`` failures within the window, or, for the ``guarded`` keys, when those failures
        plus the attempts on the key still running would exceed ``limit``.

        Call ``failed()`` on the yielded attempt when it failed; successes are not counted.
        """
        item = RateLimitItemPerSecond(limit, window_seconds)
        held: list[str] = []
        try:
            try:
                for key in guarded:
                    counter = _in_flight_key(name, key)
                    running = await self.storage.incr(counter, IN_FLIGHT_TTL_SECONDS, 1)
                    held.append(counter)
                    reset, remaining = await self.strategy.get_window_stats(item, name, key)
                    failures = limit - remaining
                    if failures + max(running, 1) > limit:
                        retry_after = int(reset - time.time()) + 1 if failures >= limit else 1
                        raise RateLimited("Too many attempts; wait before trying again.",
                                          retry_after=max(1, retry_after))
            except RateLimited:
                raise
            except Exception as exc:  # storage down: fail closed
                log.warning("rate limit storage unavailable", limit=name, fail_closed=True, error=str(exc))
                raise LimiterUnavailable() from exc
            await self.check(name=name, keys=[k for k in keys if k not in guarded], limit=limit,
                             window_seconds=window_seconds, fail_closed=True)
            yield Attempt(self, name=name, keys=keys, limit=limit, window_seconds=window_seconds)
        finally:
            for counter in held:
                try:
                    await self.storage.incr(counter, IN_FLIGHT_TTL_SECONDS, -1)
                except Exception as exc:
                    log.warning("rate limit storage unavailable", error=str(exc))

    async def reset(self) -> None:
        await self.storage.reset()


class LimiterUnavailable(ServiceUnavailable):
    """A limit that must hold (sign-in) cannot be checked: refuse rather than skip it."""

    code, title = "rate_limit_unavailable", "Sign-in is briefly unavailable"

    def __init__(self) -> None:
        super().__init__("Sign-in is briefly unavailable; try again shortly.",
                         headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)})


# How long a client refused by a failed limiter storage should wait.
UNAVAILABLE_RETRY_AFTER_SECONDS = 5


class Attempt:
    def __init__(self, limiter: RateLimiter, *, name: str, keys: list[str], limit: int, window_seconds: int) -> None:
        self._limiter, self._name, self._keys = limiter, name, keys
        self._limit, self._window_seconds = limit, window_seconds

    async def failed(self) -> None:
        """Count this attempt as a failure (before its in-flight count is released)."""
        await self._limiter.hit(name=self._name, keys=self._keys, limit=self._limit,
                                window_seconds=self._window_seconds)


# An in-flight counter outlives a crashed process by at most this long.
IN_FLIGHT_TTL_SECONDS = 60


def _in_flight_key(name: str, key: str) -> str:
    return f"{name}/in-flight/{key}"


def _limits_redis_uri(url: str) -> str:
    # ``limits`` selects its async Redis backend with the "async+" prefix.
    return url if url.startswith("async+") else f"async+{url}"
