"""How the agent waits between failed calls to the store, and which failures are worth retrying."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from mercato.client.errors import ApiError, ClientError


@dataclass
class Backoff:
    """Exponential backoff with jitter: the n-th wait is uniform in [c/10, c], c = min(cap, base·2ⁿ)."""

    base: float = 0.5
    cap: float = 30.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2 ** self.attempt)
        self.attempt += 1
        return self.rng.uniform(ceiling / 10, ceiling)

    def reset(self) -> None:
        self.attempt = 0

    def fresh(self) -> Backoff:
        """A new backoff with the same base, cap and random source, from its first wait."""
        return Backoff(base=self.base, cap=self.cap, rng=self.rng)


def transient(error: Exception) -> bool:
    """A network failure, a 5xx, or an answer that says "later" (408, 425, 429)."""
    if isinstance(error, ApiError):
        return error.status >= 500 or error.status in (408, 425, 429)
    return isinstance(error, ClientError)
