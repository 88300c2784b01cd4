"""The scheduler of `mailer serve`: it starts each campaign when it is due, goes on with those it
started that were cut short (the process killed, the service stopped), sends the lists' welcome
messages as readers join; on shutdown it lets messages in flight finish and pauses the rest."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mailer.config import Settings
from mailer.db.database import Database
from mailer.errors import CampaignLocked, MailerError
from mailer.schedule import calendar
from mailer.send import service, welcome
from mailer.send.event_loop import runner
from mailer.send.sessions import Session
from mailer.send.types import Control, StopReason
from mailer.times import span

log = logging.getLogger("mailer.schedule")


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

    def stop(self) -> None:
        with self.lock:  # before its loop runs, the request waits in the Control
            if self.loop is None:
                self.control.stop()
            else:
                self.loop.call_soon_threadsafe(self.control.stop)


class Scheduler:
    """Looks at the calendar every ``[schedule] poll_seconds``; ``clock`` (Unix seconds) says
    what time it is, so tests can move it."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings, self.clock = settings, clock
        self.late_after = span(settings.schedule.late_after)
        self.running: dict[int, _Run] = {}
        self.stopping = False
        self.ticks = 0
        self.wake: asyncio.Event | None = None

    def _database(self) -> Database:
        return Database(self.settings.database_path, self.settings.database.busy_timeout)

    async def run(self) -> None:
        """Tick until stopped; a tick that fails is logged and the next one tries again."""
        self.wake = asyncio.Event()
        while not self.stopping:
            try:
                await self.tick()
            except MailerError as error:
                log.error("scheduler: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.schedule.poll_seconds)
            self.wake.clear()

    async def tick(self) -> list[int]:
        """Start what is due and what was cut short; mark late what fell due too long ago.
        Return the campaigns started."""
        self.ticks += 1
        now = datetime.fromtimestamp(self.clock(), UTC)
        with self._database() as database:
            due = calendar.due(database, now)
            for found in due:
                if now - datetime.fromisoformat(found.at) > self.late_after:
                    calendar.mark_late(database, found.id, found.at,
                                       self.settings.schedule.late_after)  # fmt: skip
                    log.warning("campaign %d was due at %s: waiting for the editor", found.id,
                                found.at)  # fmt: skip
            late = {found.id for found in due if now - datetime.fromisoformat(found.at)
                    > self.late_after}  # fmt: skip
            wanted = [found.id for found in due if found.id not in late]
            wanted += calendar.unfinished(database)
            greetings = welcome.waiting(database)
        started = []
        for campaign_id in dict.fromkeys(wanted + greetings):
            if campaign_id not in self.running and not self.stopping:
                self._start(campaign_id, campaign_id in greetings and campaign_id not in wanted)
                started.append(campaign_id)
        return started

    def _start(self, campaign_id: int, greeting: bool = False) -> None:
        run = _Run(campaign_id, greeting)
        self.running[campaign_id] = run
        run.done = asyncio.ensure_future(asyncio.to_thread(self._send, run))
        run.done.add_done_callback(lambda _: self.running.pop(campaign_id, None))

    def _send(self, run: _Run) -> None:
        """Send one campaign to the end (or until stopped), on this thread's own loop."""

        async def work() -> None:
            with run.lock:
                run.loop = asyncio.get_running_loop()
            with self._database() as database:
                session = Session(self.settings, database, control=run.control)
                if run.greeting:
                    result = await welcome.deliver_welcome(session, run.campaign_id)
                else:
                    result = await service.continue_campaign(session, run.campaign_id)
                if result is None:  # another process sends it
                    return
                stop = result.stop
                if stop is not None and stop.reason is StopReason.USER and self.stopping:
                    calendar.mark_stopped(database, run.campaign_id)
                if stop is not None and stop.reason is not StopReason.USER:
                    log.error("campaign %d paused: %s", run.campaign_id, stop)

        try:
            with runner() as loop:
                loop.run(work())
        except CampaignLocked:
            log.info("campaign %d is being sent by another process", run.campaign_id)
        except MailerError as error:  # its lists are gone, a reader it fails for, ...
            log.error("campaign %d not sent: %s", run.campaign_id, error)
        except Exception:  # keep the service up whatever one campaign does
            log.exception("campaign %d failed", run.campaign_id)

    async def stop(self, timeout: float = 60.0) -> None:
        """Take no new work, let each run finish its messages in flight and pause, then wait
        for them (at most ``timeout`` seconds)."""
        self.stopping = True
        if self.wake is not None:
            self.wake.set()
        runs = list(self.running.values())
        for run in runs:
            run.stop()
        waiting = [run.done for run in runs if run.done is not None]
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)

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
