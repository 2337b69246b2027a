"""Rate limiting with the ``limits`` library: memory when embedded, Redis when scaled.

Used for brute-force protection (T7): failures are counted with ``hit`` and checked with
``test`` before an attempt, so successful logins never use up the budget. When Redis is
configured but unreachable the limiter fails closed (F8): the attempt is refused with
429 rather than allowed without a count.
"""

from __future__ import annotations

import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from mercato.kit.errors import RateLimited
from mercato.kit.logging import log


class RateLimiter:
    def __init__(self, redis_url: str | None = None, *, namespace: str = "mercato") -> None:
        self.storage: Storage = (
            RedisStorage(_limits_redis_uri(redis_url), key_prefix=f"{namespace}-limits") if redis_url else MemoryStorage()
        )
        self.strategy = MovingWindowRateLimiter(self.storage)

    async def check(self, *, name: str, keys: list[str], limit: int, window_seconds: int) -> None:
        """Raise 429 if any of ``keys`` has used up ``limit`` within the window."""
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
            except Exception as exc:  # storage down: fail closed
                log.warning("rate limit storage unavailable", error=str(exc))
                raise RateLimited("Sign-in is briefly unavailable; try again shortly.", retry_after=5) from exc

    async def hit(self, *, name: str, keys: list[str], limit: int, window_seconds: int) -> None:
        item = RateLimitItemPerSecond(limit, window_seconds)
        for key in keys:
            try:
                await self.strategy.hit(item, name, key)
            except Exception as exc:
                log.warning("rate limit storage unavailable", error=str(exc))

    async def reset(self) -> None:
        await self.storage.reset()


def _limits_redis_uri(url: str) -> str:
    # ``limits`` selects its async Redis backend with the "async+" prefix.
    return url if url.startswith("async+") else f"async+{url}"
