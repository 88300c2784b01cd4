"""The shared rate limit: sends spaced ``1/rate`` seconds apart across all connections."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    """Spaces sends ``1/rate`` seconds apart across all workers; 0 means no limit."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = time.monotonic()

    async def acquire(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(self.next, now)
        self.next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)
