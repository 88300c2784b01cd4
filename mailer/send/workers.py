"""`send --workers N`: N `campaigns work -` processes here, told the campaign once it is stored."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
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
CANCEL_WAIT = 30.0  # seconds a worker told "no campaign" has to end before it is killed
# A worker's exit statuses that are no failure: done; stopped by Ctrl-C (130), or by a SIGINT
# that came while Python was still starting, before mailer's handler was there.
STOPPED = (0, 130, -signal.SIGINT)


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
    """The worker processes of one campaign on this machine, each `mailer campaigns work -`.
    They are started before the campaign exists (while this process checks every reader, they
    load mailer) and wait for its id on their standard input: ``begin`` sends it, ``cancel``
    closes it unsaid and they end without a word."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)
    begun: bool = False

    @classmethod
    def start(cls, workspace: Path, count: int) -> Workers:
        started = cls()
        command = [sys.executable, "-m", "mailer", "--workspace", str(workspace),
                   "campaigns", "work", "-"]  # fmt: skip
        try:
            for _ in range(count):
                log = tempfile.TemporaryFile()  # noqa: SIM115 -- open until close(): what it says
                started.logs.append(log)
                started.processes.append(  # a session of its own: a terminal's Ctrl-C is ours
                    subprocess.Popen(
                        command,
                        stdin=subprocess.PIPE,
                        stdout=log,
                        stderr=log,
                        start_new_session=True,
                    )
                )
        except BaseException:  # no more processes (EMFILE...): those started end unsaid
            started.cancel()
            raise
        return started

    def begin(self, campaign_id: int) -> None:
        """Tell each worker which campaign to send."""
        self.begun = True
        for process in self.processes:
            self._tell(process, f"{campaign_id}\n".encode())

    def cancel(self) -> None:
        """No campaign after all (a failed check, a refusal): each ends with nothing said."""
        for process in self.processes:
            self._tell(process, b"")
        for process in self.processes:
            try:
                process.wait(timeout=CANCEL_WAIT)
            except subprocess.TimeoutExpired:  # stuck before it could read: it told nobody
                process.kill()
                process.wait()
        self.close()

    @staticmethod
    def _tell(process: subprocess.Popen[bytes], line: bytes) -> None:
        if process.stdin is None or process.stdin.closed:
            return
        if line:
            with contextlib.suppress(BrokenPipeError):  # it died; its exit status says why
                process.stdin.write(line)
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()

    def running(self) -> bool:
        return any(process.poll() is None for process in self.processes)

    def wait(self, watch: Callable[[], None], interval: float = WATCH) -> None:
        """Until every worker has ended, call ``watch`` every ``interval`` seconds; back as
        soon as the last one exits, not at the next look."""
        while self.running():
            watch()
            self._any_exit(interval)
        watch()

    def _any_exit(self, timeout: float) -> None:
        """Back when a running worker exits, or after ``timeout`` seconds."""
        running = [process for process in self.processes if process.poll() is None]
        if not running:
            return
        fds = _pidfds(running)
        if fds is None:  # the first one polled, as Popen.wait does: every 50 ms at most
            with contextlib.suppress(subprocess.TimeoutExpired):
                running[0].wait(timeout=timeout)
            return
        try:
            exits = select.poll()  # not select(): a descriptor may be numbered past 1023
            for fd in fds:
                exits.register(fd, select.POLLIN)
            exits.poll(timeout * 1000)
        finally:
            for fd in fds:
                os.close(fd)

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
            if process.wait() not in STOPPED:
                log.seek(0)
                lines = log.read().decode("utf-8", "replace").strip().splitlines()
                said = lines[-1] if lines else "no output"
                if process.returncode < 0:  # its last line is whatever it was doing then
                    said = f"killed by {signal.Signals(-process.returncode).name}"
                found.append(f"worker {process.pid} (exit {process.returncode}): {said}")
        return found

    def close(self) -> None:
        for log in self.logs:
            log.close()


def _pidfds(processes: list[subprocess.Popen[bytes]]) -> list[int] | None:
    """A descriptor for each process that is readable once it has ended (Linux 5.3 and
    later), so that its end is known at once; None where there are none."""
    fds: list[int] = []
    try:
        for process in processes:
            fds.append(os.pidfd_open(process.pid))
    except (AttributeError, OSError):  # another system; or it has ended and been reaped
        for fd in fds:
            os.close(fd)
        return None
    return fds
