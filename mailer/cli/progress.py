"""Showing a run: a bar or a plain line; Ctrl-C and SIGTERM drain it, a second Ctrl-C aborts."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mailer.cli.common import err
from mailer.send.event_loop import runner
from mailer.send.types import Control
from mailer.send.types import Progress as SendProgress

T = TypeVar("T")


class Reporter:
    """Shows progress: a rich bar on a terminal, otherwise a plain line every few seconds."""

    def __init__(self) -> None:
        self.bar: Progress | None = None
        self.last = 0.0
        if sys.stderr.isatty():
            self.bar = Progress(
                TextColumn("sending"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.0f}/s"), TimeRemainingColumn(), console=err,
            )  # fmt: skip
            self.task = self.bar.add_task("send", total=None, rate=0.0)
            self.bar.start()

    def __call__(self, progress: SendProgress) -> None:
        if self.bar is not None:
            self.bar.update(self.task, total=progress.total, completed=progress.done,
                            rate=progress.rate)  # fmt: skip
        elif time.monotonic() - self.last >= 5:
            self.last = time.monotonic()
            c = progress.counts
            err.print(
                f"{progress.done}/{progress.total} done: {c['sent']} sent, {c['deferred']}"
                f" deferred ({progress.waiting_retry} waiting to retry), {c['failed']} failed,"
                f" {progress.rate:.0f}/s", markup=False,
            )  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def run_stoppable(work: Coroutine[Any, Any, T], control: Control) -> T:
    """Run ``work`` on the event loop: the first Ctrl-C (or a SIGTERM) stops taking new work
    and lets what is in flight finish, a second Ctrl-C aborts."""
    presses = 0

    def interrupt() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            err.print("stopping: finishing messages in flight (Ctrl-C again to abort)")
            control.stop()
        else:
            control.abort()

    def terminate() -> None:
        err.print("stopping on SIGTERM: finishing messages in flight")
        control.stop()

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, interrupt)
        loop.add_signal_handler(signal.SIGTERM, terminate)
        try:
            return await work
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)

    with runner() as loop:
        return loop.run(guarded())


def retry_hint(campaign_id: int) -> str:
    """What a run that ended with deferred readers says next."""
    return f"retry the deferred ones later with: mailer campaigns retry {campaign_id}"
