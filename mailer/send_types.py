"""What the send pipeline passes around and talks to: readers, results, builds, options,
progress, and the transport and delivery-log protocols."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mailer.models import Reply


@dataclass(frozen=True, slots=True)
class Recipient:
    """One queued delivery, with what the message needs to know about the reader."""

    subscriber_id: int
    email: str
    name: str
    attributes: dict[str, Any]
    smtputf8: bool
    attempts: int = 0
    eligible: bool = True  # still confirmed and active when its turn came


@dataclass(frozen=True, slots=True)
class Result:
    """How one delivery ended (for now): the row the writer records."""

    subscriber_id: int
    status: str  # sent | deferred | failed | skipped
    attempts: int
    code: int = 0
    text: str = ""
    message_id: str = ""
    bounced: bool = False


class Connection(Protocol):
    async def send(self, sender: str, recipient: str, message: bytes, smtputf8: bool) -> Reply: ...
    async def close(self) -> None: ...


class Transport(Protocol):
    @property
    def description(self) -> str: ...
    async def connect(self) -> Connection: ...


class DeliveryLog(Protocol):
    def start(self) -> None: ...
    def pending(self, after: int, limit: int) -> list[Recipient]: ...
    def record(self, results: Sequence[Result]) -> None: ...
    def finish(self, stopped: bool, reason: str = "") -> None: ...


Render = Callable[[Recipient], tuple[bytes, str]]  # -> message bytes, Message-ID
# Called when the reader is queued, so a message can be signed in another process while
# earlier ones are sent; the awaitable gives the finished bytes.
Build = Callable[[Recipient], tuple[Awaitable[bytes], str]]


class Ready:
    """A message finished at build time, for a Build that has nothing left to wait for."""

    __slots__ = ("message",)

    def __init__(self, message: bytes) -> None:
        self.message = message

    def __await__(self) -> Generator[Any, None, bytes]:
        yield from ()  # a generator that never suspends
        return self.message


Queued = tuple[Recipient, Awaitable[bytes], str]  # the reader, its message, its Message-ID


@dataclass(frozen=True)
class SendOptions:
    sender: str
    sender_for: Callable[[Recipient], str] | None = None  # a per-reader return path (VERP)
    concurrency: int = 8
    rate: float = 0.0
    max_per_connection: int = 1000
    max_attempts: int = 4
    retry_delay: float = 30.0
    max_consecutive_failures: int = 50
    limit: int = 0  # stop after this many deliveries (0: all)

    @property
    def batch(self) -> int:
        """Results held before a commit; with the connections, bounds duplicates after a crash."""
        return max(8, 2 * self.concurrency)

    @property
    def in_flight_limit(self) -> int:
        return self.concurrency + self.batch


STATES = ("sent", "deferred", "failed", "skipped")


@dataclass
class Progress:
    total: int
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    started: float = field(default_factory=time.monotonic)
    waiting_retry: int = 0
    stopped_reason: str = ""
    final_deferred: int = 0  # deferred for good in this run: no retry left

    @property
    def done(self) -> int:
        return sum(self.counts[s] for s in ("sent", "failed", "skipped")) + self.final_deferred

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.counts["sent"] / self.elapsed if self.elapsed > 0 else 0.0
