"""The subscribe form's limits: a sliding window per client and per address (its +tags off)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """At most ``limit`` events per key in any ``period`` seconds (in memory, one process)."""

    def __init__(
        self, limit: int, period: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.period, self.clock = limit, period, clock
        self.hits: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        """Count one event for ``key``; False when it is over the limit (not counted then)."""
        at = self.clock()
        if len(self.hits) > 10_000:
            self.hits = {k: q for k, q in self.hits.items() if q and q[-1] > at - self.period}
        window = self.hits.setdefault(key, deque())
        while window and window[0] <= at - self.period:
            window.popleft()
        if len(window) >= self.limit:
            return False
        window.append(at)
        return True


def address_key(email: str) -> str:
    """The per-address limit's key: lower-cased, any +tag dropped, so that a+1@x, a+2@x and
    A@X, which reach one mailbox, share one quota."""
    local, _, domain = email.rpartition("@")
    return f"{local.partition('+')[0]}@{domain}".lower()
