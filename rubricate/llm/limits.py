"""Client-side rate limits: requests per minute and tokens per minute, as token buckets."""

from __future__ import annotations

import asyncio
import time


class Bucket:
    """Holds up to `per_minute` units, refilled continuously; `take` waits until enough are there.

    A request larger than the whole bucket is let through once the bucket is full, so an odd
    request never deadlocks a run.
    """

    def __init__(self, per_minute: float):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, amount: float) -> None:
        amount = min(amount, self.capacity)
        async with self._lock:  # first come, first served
            self._refill()
            while self.level < amount:
                await asyncio.sleep((amount - self.level) / self.rate)
                self._refill()
            self.level -= amount

    def give_back(self, amount: float) -> None:
        """Correct an estimate once the true count is known (negative to charge more)."""
        self._refill()
        self.level = min(self.capacity, self.level + amount)


class Limits:
    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self.requests = Bucket(rpm) if rpm else None
        self.tokens = Bucket(tpm) if tpm else None

    async def acquire(self, estimated_tokens: int) -> None:
        if self.requests is not None:
            await self.requests.take(1)
        if self.tokens is not None:
            await self.tokens.take(estimated_tokens)

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        if self.tokens is not None and actual_tokens:
            self.tokens.give_back(estimated_tokens - actual_tokens)
