"""What the send pipeline passes around and talks to: deliveries, results, stops, protocols."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from mailer.models import Reader, Reply


@dataclass(frozen=True, slots=True)
class Delivery:
    """One queued delivery: the reader, the attempts so far, and whether the reader is still
    confirmed and active now that its turn came."""

    reader: Reader
    attempts: int = 0
    eligible: bool = True


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
    async def send(
        self, sender: str, recipient: str, message: Message, smtputf8: bool
    ) -> Reply: ...
    async def close(self) -> None: ...


class Transport(Protocol):
    @property
    def description(self) -> str: ...
    async def connect(self) -> Connection: ...


class StopReason(StrEnum):
    """Why a run ended before everything pending was delivered."""

    USER = "stopped by the user"  # Ctrl-C, SIGTERM: drained, nothing in flight lost
    # `mailer serve` stopping (SIGTERM): drained; the scheduler goes on with it at its next start
    SHUTDOWN = "service stopped; it goes on when `mailer serve` starts again"
    ABORTED = "aborted by the user"  # a second Ctrl-C: in-flight work cancelled
    FAILURES = "paused after"  # ... N failures in a row
    # ... N failures in a row, each a connection that could not be made: `mailer serve` goes on
    # with it once the relay answers again
    UNREACHABLE = "the SMTP server cannot be reached: paused after"
    ERROR = "stopped by an error:"  # the store, a worker
    DISK_FULL = "disk full:"  # ... where; free space, then resume

    @property
    def exit_code(self) -> int:
        return 130 if self in (StopReason.USER, StopReason.ABORTED, StopReason.SHUTDOWN) else 1


@dataclass(frozen=True, slots=True)
class Stop:
    reason: StopReason
    detail: str = ""

    def __str__(self) -> str:
        if not self.detail:
            return str(self.reason.value)
        joint = "; " if self.reason in (StopReason.USER, StopReason.ABORTED) else " "
        return f"{self.reason.value}{joint}{self.detail}"


class DeliveryLog(Protocol):
    @property
    def where(self) -> str: ...  # what a full disk is named by
    def start(self) -> None: ...
    def pending(self, after: int, limit: int) -> list[Delivery]: ...
    def record(self, results: Sequence[Result]) -> bool: ...  # True: out of space, stop
    # ``waiting``: deferrals whose retry a stop cut short; they are queued again
    def finish(self, stop: Stop | None, waiting: Sequence[int] = ()) -> None: ...
    # When pending() has nothing: seconds until more may come (a dead worker's claims end),
    # or None when nothing more will.
    def more(self) -> float | None: ...
    def rate(self) -> float | None: ...  # this process's share of a shared rate; None: its own
    def left(self, reader_id: int) -> bool: ...  # the reader left since being read: skip them


# A message as chunks in order: the ones every reader shares are the same objects each time,
# joined only where they are written (the socket, the outbox), never copied per reader.
Message = Sequence[bytes]
Render = Callable[[Reader], tuple[Message, str]]  # -> message chunks, Message-ID
# Called when the reader is queued, so a message can be signed in another process while
# earlier ones are sent; the awaitable gives the finished message.
Build = Callable[[Reader], tuple[Awaitable[Message], str]]


class Ready:
    """A message finished at build time, for a Build that has nothing left to wait for."""

    __slots__ = ("message",)

    def __init__(self, message: Message) -> None:
        self.message = message

    def __await__(self) -> Generator[Any, None, Message]:
        yield from ()  # a generator that never suspends
        return self.message


Queued = tuple[Delivery, Awaitable[Message], str]  # the delivery, its message, its Message-ID


@dataclass(frozen=True)
class SendOptions:
    sender: str
    sender_for: Callable[[Reader], str] | None = None  # a per-reader return path (VERP)
    concurrency: int = 8
    rate: float = 0.0
    max_per_connection: int = 1000
    max_attempts: int = 4
    retry_delay: float = 30.0
    max_consecutive_failures: int = 50
    limit: int = 0  # stop after this many deliveries (0: all)
    stop_on_render: bool = False  # a reader whose message cannot be made stops the run

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
    stop: Stop | None = None
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


class Control:
    """How a caller (a Ctrl-C handler, SIGTERM, the scheduler) stops a run: ``stop()`` drains,
    ``abort()`` cancels the work in flight. A run that has not started yet stops at once."""

    def __init__(self) -> None:
        self.requested: StopReason | None = None
        self.listeners: list[Callable[[StopReason], None]] = []

    def stop(self) -> None:
        self._request(StopReason.USER)

    def abort(self) -> None:
        self._request(StopReason.ABORTED)

    def shutdown(self) -> None:
        """As stop(), for the service going down: the campaign is taken up again after."""
        self._request(StopReason.SHUTDOWN)

    def _request(self, reason: StopReason) -> None:
        if self.requested is not StopReason.ABORTED:
            self.requested = reason
        for listener in list(self.listeners):
            listener(reason)
