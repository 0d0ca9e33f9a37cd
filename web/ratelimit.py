"""A token bucket per API key: a steady rate with room for bursts, answered with Retry-After.

Kept in the serving process's memory: the server is one process, and a limit that resets when it
restarts only lets a platform through once more. Several servers behind a balancer would each
grant the rate (state the limit per server then, or move the buckets to a shared store).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate_per_s``; one request takes one."""

    rate_per_s: float
    burst: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take a token: 0.0 when granted, else the seconds until one will be available."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate_per_s


class RateLimiter:
    """Buckets by key id, created full on a key's first request."""

    def __init__(
        self, rate_per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate_per_minute <= 0 or burst < 1:
            raise ValueError(
                f"rate limit needs a positive rate and a burst >= 1, got {rate_per_minute}/min, "
                f"burst {burst}"
            )
        self._rate = rate_per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """0.0 if ``key`` may go on now, else the seconds it must wait."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self._rate, self._burst, self._burst, now)
            return bucket.take(now)


def retry_after_header(wait_seconds: float) -> str:
    """Retry-After takes whole seconds; rounding up keeps a client that obeys it from a 429."""
    return str(max(1, math.ceil(wait_seconds)))
