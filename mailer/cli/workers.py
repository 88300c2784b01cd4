"""`send --workers N`: start the campaign's worker processes and follow them to the end."""

from __future__ import annotations

import contextlib
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import typer

from mailer.cli.common import err, out, settings
from mailer.cli.progress import Reporter, retry_hint
from mailer.db.database import Database
from mailer.errors import StoreError
from mailer.send.campaign_workers import ended_otherwise, queued, settle, workers
from mailer.send.campaigns import Campaigns
from mailer.send.types import Progress
from mailer.send.workers import Workers

RECOUNT = 2.0  # seconds between counts of the deliveries that ended other than sent


def tally(progress: Progress, done: int, others: dict[str, int]) -> None:
    """The workers' progress from the store: ``done`` deliveries no longer queued, ``others``
    of them failed, deferred or skipped (a deferral is final unless a worker retries it); the
    rest were sent."""
    progress.counts.update(others)
    progress.final_deferred = others["deferred"]
    progress.counts["sent"] = max(0, done - sum(others.values()))


@contextmanager
def waiting_workers(count: int) -> Iterator[Workers | None]:
    """``count`` workers started now (None for none): they load mailer while this process
    checks every reader and stores the campaign. Unless ``follow_workers`` gave them their
    campaign, they are told there is none when the block ends (a failed check, a refusal,
    Ctrl-C), and end without a word."""
    if not count:
        yield None
        return
    started = Workers.start(settings().workspace, count)
    try:
        yield started
    finally:
        if not started.begun:
            started.cancel()


def follow_workers(database: Database, campaign_id: int, started: Workers) -> None:
    """Give the started workers the stored campaign, show its progress until they end (Ctrl-C
    or SIGTERM stops them as it stops one send), and print what each did."""
    campaigns = Campaigns(database)
    total = sum(campaigns.get(campaign_id).counts.values())
    progress, reporter = Progress(total), Reporter()
    count = len(started.processes)
    started.begin(campaign_id)

    others, counted = ended_otherwise(database, campaign_id), time.monotonic()

    def watch() -> None:
        """The queued ones every tick, by their index (a million need no full count); those
        failed, deferred or skipped every RECOUNT seconds; sent is what is left."""
        nonlocal others, counted
        with contextlib.suppress(StoreError):  # gone for now: the workers say what it cost them
            done = total - queued(database, campaign_id)
            if time.monotonic() - counted >= RECOUNT:
                others, counted = ended_otherwise(database, campaign_id), time.monotonic()
            tally(progress, done, others)
        reporter(progress)

    presses = 0

    def stop(_: int, __: FrameType | None) -> None:
        nonlocal presses
        presses += 1
        started.stop()  # a second time: the workers abandon what is in flight
        if presses == 1:
            err.print("stopping: the workers finish the messages in flight (Ctrl-C again to abort)")

    before = [signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)]
    try:
        started.wait(watch)
    except BaseException:
        started.end()
        raise
    finally:
        for kind, handler in zip((signal.SIGINT, signal.SIGTERM), before, strict=True):
            signal.signal(kind, handler)
        reporter.close()
        failures = started.failures()
        started.close()
        pids = [process.pid for process in started.processes]
        try:
            settle(database, campaign_id, socket.gethostname(), pids)  # those killed, if any
            info = campaigns.get(campaign_id)
        except StoreError as error:  # the database went away: each worker's line says why
            for failure in failures:
                err.print(f"error: {failure}", markup=False)
            hint = f"campaign {campaign_id}: once it answers, mailer campaigns resume {campaign_id}"
            raise StoreError(error.path, f"{error.reason}; {hint}") from None
    c = info.counts
    out.print(f"campaign {campaign_id}: {info.status}; {c['sent']} sent, {c['deferred']} deferred,"
              f" {c['failed']} failed, {c['skipped']} skipped, {c['queued']} queued"
              f" by {count} workers in {progress.elapsed:.1f} s", markup=False)  # fmt: skip
    for worker in workers(database, campaign_id):
        out.print(f"  {worker.name}: {worker.counts.get('sent', 0)} sent", markup=False)
    for failure in failures:
        err.print(f"error: {failure}", markup=False)
    if info.status != "done":
        out.print(f"resume with: mailer campaigns resume {campaign_id}", markup=False)
    elif c["deferred"]:
        out.print(retry_hint(campaign_id), markup=False)
    if presses:  # the editor's own stop, as Ctrl-C is for one send
        raise typer.Exit(130)
    if failures or info.status != "done":
        raise typer.Exit(1)
