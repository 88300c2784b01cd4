"""`send --workers N`: the campaign stored, then sent by N `campaigns work` processes here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from mailer.errors import InputError
from mailer.send.campaigns import Campaigns
from mailer.send.connecting import open_first
from mailer.send.plans import Plan, ready_for_readers
from mailer.send.service import store_plan
from mailer.send.sessions import Session

WATCH = 0.5  # seconds between looks at the campaign's counts while the workers send


async def store_for_workers(session: Session, plan: Plan) -> int:
    """Check that the relay answers (one connection, closed again), then store the campaign
    with its readers, for its workers to send."""
    ready_for_readers(session, plan.transport)
    files = plan.factory.files.snapshot()
    first = await open_first(plan.transport, session.control)
    if first is None:
        raise InputError("stopped before the server answered: nothing sent, no campaign created")
    await first.close()
    return store_plan(Campaigns(session.database), plan, files)


@dataclass
class Workers:
    """The worker processes of one campaign on this machine, each `mailer campaigns work`."""

    campaign_id: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)

    @classmethod
    def start(cls, workspace: Path, campaign_id: int, count: int) -> Workers:
        started = cls(campaign_id)
        command = [sys.executable, "-m", "mailer", "--workspace", str(workspace),
                   "campaigns", "work", str(campaign_id)]  # fmt: skip
        for _ in range(count):
            log = tempfile.TemporaryFile()  # noqa: SIM115 -- kept open until close(): what it says
            started.logs.append(log)
            started.processes.append(  # a session of its own: a terminal's Ctrl-C is ours
                subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            )
        return started

    def running(self) -> bool:
        return any(process.poll() is None for process in self.processes)

    def wait(self, watch: Callable[[], None], interval: float = WATCH) -> None:
        """Until every worker has ended, call ``watch`` every ``interval`` seconds."""
        while self.running():
            watch()
            time.sleep(interval)
        watch()

    def stop(self) -> None:
        """Ask each worker to stop as one Ctrl-C does: what is in flight finishes and is
        recorded; asked again, as a second Ctrl-C: what is in flight is abandoned."""
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGINT)

    def end(self) -> None:
        """Stop them all and wait for each (after an error of the caller's own)."""
        self.stop()
        for process in self.processes:
            process.wait()

    def failures(self) -> list[str]:
        """The last line each failed worker wrote, with its exit status."""
        found = []
        for process, log in zip(self.processes, self.logs, strict=True):
            if process.wait() not in (0, 130):
                log.seek(0)
                lines = log.read().decode("utf-8", "replace").strip().splitlines()
                found.append(f"worker {process.pid} (exit {process.returncode}): "
                             + (lines[-1] if lines else "no output"))  # fmt: skip
        return found

    def close(self) -> None:
        for log in self.logs:
            log.close()
