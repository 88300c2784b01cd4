"""The scheduler of `mailer serve`: due campaigns, those cut short, and the lists' welcome mail."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mailer.config import Settings
from mailer.db.database import Database, NoDatabaseError
from mailer.db.opening import open_database
from mailer.errors import (
    CampaignLocked,
    ConfigError,
    MailerError,
    StoreUnavailable,
    TransportError,
    UnfitForReaders,
)
from mailer.schedule import calendar
from mailer.send import service, welcome
from mailer.send.event_loop import runner
from mailer.send.sessions import RunResult, Session
from mailer.send.types import Control, StopReason
from mailer.times import span

log = logging.getLogger("mailer.schedule")
RUNS = 4  # campaigns sent at once, each on its own thread (not the web side's pool)
RETRY_WELCOME = timedelta(minutes=5)  # a welcome that failed waits this long before a new try
# This host's problems, not the campaign's (the database gone for now, the relay refusing, a
# setting that cannot send): the campaign stays as it is, for another serve to take, or this one
# once RETRY_HERE has passed; only the campaign's own (lists gone, a reader it fails for) pause it.
HERE = (StoreUnavailable, NoDatabaseError, TransportError, ConfigError, UnfitForReaders)
RETRY_HERE = timedelta(seconds=30)


@dataclass
class _Run:
    """One campaign being sent, on its own thread and event loop so that rendering and the
    database never hold up the web pages; stopped across threads through its loop."""

    campaign_id: int
    greeting: bool = False  # the queued welcomes of a list's welcome campaign
    control: Control = field(default_factory=Control)
    loop: asyncio.AbstractEventLoop | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: asyncio.Future[None] | None = None

    def stop(self, abort: bool = False) -> None:
        """Ask the run to drain (or, ``abort``, to cancel what is in flight)."""
        request = self.control.abort if abort else self.control.shutdown
        with self.lock:  # before its loop runs, or after it closed, the Control is enough
            if self.loop is None:
                request()
            else:
                self.loop.call_soon_threadsafe(request)


@dataclass(frozen=True)
class _Look:
    """What one tick finds in the calendar."""

    start: list[int]
    greet: list[int]
    late: list[calendar.Due]


class Scheduler:
    """Looks at the calendar every ``[schedule] poll_seconds``; ``clock`` (Unix seconds) says
    what time it is, so tests can move it."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings, self.clock = settings, clock
        self.late_after = span(settings.schedule.late_after)
        self.running: dict[int, _Run] = {}
        self.resting: dict[int, datetime] = {}  # campaigns not tried again until when
        self.stopping = False
        self.ticks = 0
        self.wake: asyncio.Event | None = None
        self.pool = ThreadPoolExecutor(RUNS, thread_name_prefix="mailer-send")

    def _database(self) -> Database:
        """The workspace's database, made by `mailer serve` as it started: one gone since
        (moved, its volume unmounted) is not made again, empty, under the campaigns."""
        return open_database(self.settings, create=False)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def run(self) -> None:
        """Tick until stopped; a tick that fails is logged and the next one tries again."""
        self.wake = asyncio.Event()
        while not self.stopping:
            try:
                await self.tick()
            except MailerError as error:
                log.error("scheduler: %s", error)
            except Exception:  # the service stays up; the next tick tries again
                log.exception("scheduler: a tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.schedule.poll_seconds)
            self.wake.clear()

    async def tick(self) -> list[int]:
        """Start what is due and what was cut short; mark late what fell due too long ago.
        Return the campaigns started."""
        self.ticks += 1
        now = self._now()
        found = await asyncio.to_thread(self._look, now)  # SQLite stays off the web's loop
        for due in found.late:
            log.warning("campaign %d was due at %s: waiting for the editor", due.id, due.at)
        self.resting = {key: until for key, until in self.resting.items() if until > now}
        started = []
        for campaign_id in dict.fromkeys(found.start + found.greet):
            if campaign_id in self.running or campaign_id in self.resting or self.stopping:
                continue
            greeting = campaign_id in found.greet and campaign_id not in found.start
            self._start(campaign_id, greeting, now)
            started.append(campaign_id)
        return started

    def _look(self, now: datetime) -> _Look:
        with self._database() as database:
            due = calendar.due(database, now)
            late = [d for d in due if now - datetime.fromisoformat(d.at) > self.late_after]
            for found in late:
                calendar.mark_late(database, found.id, found.at, self.settings.schedule.late_after)
            start = [d.id for d in due if d not in late] + calendar.unfinished(database)
            return _Look(start, welcome.waiting(database), late)

    def _start(self, campaign_id: int, greeting: bool, now: datetime) -> None:
        run = _Run(campaign_id, greeting)
        self.running[campaign_id] = run
        loop = asyncio.get_running_loop()
        run.done = asyncio.ensure_future(loop.run_in_executor(self.pool, self._send, run, now))
        run.done.add_done_callback(lambda _: self.running.pop(campaign_id, None))

    def _send(self, run: _Run, now: datetime) -> None:
        """Send one campaign to the end (or until stopped), on this thread's own loop; one
        that cannot be sent is left to the editor with the reason (a welcome rests a while)."""

        async def work() -> RunResult | None:
            with run.lock:
                run.loop = asyncio.get_running_loop()
            try:
                with self._database() as database:
                    session = Session(self.settings, database, control=run.control)
                    if run.greeting:
                        return await welcome.deliver_welcome(session, run.campaign_id)
                    return await service.continue_campaign(
                        session, run.campaign_id, still=lambda info: calendar.still_due(info, now)
                    )
            finally:
                with run.lock:
                    run.loop = None  # from now on a stop goes to the Control alone

        try:
            with runner() as loop:
                result = loop.run(work())
        except CampaignLocked:
            log.info("campaign %d is being sent by another process", run.campaign_id)
            return
        except HERE as error:
            log.error("campaign %d not sent from this serve: %s; tried again in %d s",
                      run.campaign_id, error, RETRY_HERE.total_seconds())  # fmt: skip
            self.resting[run.campaign_id] = self._now() + RETRY_HERE
            return
        except MailerError as error:  # its lists are gone, a reader it fails for, ...
            self._failed(run, str(error))
            return
        except Exception as error:  # the service stays up, whatever one campaign does
            log.exception("campaign %d failed", run.campaign_id)
            self._failed(run, f"{type(error).__name__}: {error}")
            return
        stop = result.stop if result is not None else None
        if stop is not None and stop.reason is StopReason.UNREACHABLE:  # its relay went down
            log.error("campaign %d: %s; tried again in %d s", run.campaign_id, stop,
                      RETRY_HERE.total_seconds())  # fmt: skip
            self.resting[run.campaign_id] = self._now() + RETRY_HERE
        elif stop is not None and stop.reason not in (StopReason.SHUTDOWN, StopReason.ABORTED):
            log.error("campaign %d paused: %s", run.campaign_id, stop)

    def _failed(self, run: _Run, problem: str) -> None:
        log.error("campaign %d not sent: %s", run.campaign_id, problem)
        if run.greeting:  # readers keep joining: try again later, not every second
            self.resting[run.campaign_id] = self._now() + RETRY_WELCOME
            return
        with self._database() as database:
            calendar.mark_failed(database, run.campaign_id, problem)

    def interrupt(self, abort: bool = False) -> None:
        """From a signal handler: take no new work and stop the runs now (``abort``: cancel
        what is in flight too), before the web side finishes shutting down."""
        self.stopping = True
        for run in list(self.running.values()):
            run.stop(abort)

    async def stop(self, timeout: float = 45.0) -> None:
        """Take no new work, let each run finish its messages in flight and pause, then wait
        for them (at most ``timeout`` seconds)."""
        self.interrupt()
        if self.wake is not None:
            self.wake.set()
        waiting = [run.done for run in self.running.values() if run.done is not None]
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)
        self.pool.shutdown(wait=False, cancel_futures=True)

    def state(self) -> dict[str, Any]:
        """What /healthz shows."""
        with self._database() as database:
            upcoming = calendar.next_time(database)
        return {
            "scheduler": "stopping" if self.stopping else "running",
            "sending": sorted(self.running),
            "next_due": upcoming,
            "ticks": self.ticks,
        }
