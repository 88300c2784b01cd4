"""`mailer serve` as the one long-running service, as its own process: it sends a campaign at its
time, finishes one it was killed in the middle of, pauses on SIGTERM and goes on when started
again; /healthz tells its state."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import EXAMPLE_REPORT
from tests.smtp_servers import LoopbackController, Recorder, start
from tests.test_send_cli import cli, command, environment, populate, smtp_env, wait_for


@dataclass
class Clocked(Recorder):
    """A recorder that notes when each message arrived (this machine's clock)."""

    arrivals: list[float] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.arrivals.append(time.time())
        return await super().handle_DATA(server, session, envelope)


@dataclass
class Service:
    process: subprocess.Popen[str]
    url: str

    def health(self) -> dict[str, object]:
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=20) as answer:
            assert answer.status == 200
            found: dict[str, object] = json.loads(answer.read())
            return found

    def terminate(self) -> int:
        """SIGTERM, as systemd stops it; its exit code. Whatever it said on stderr is kept."""
        self.process.send_signal(signal.SIGTERM)
        _, self.said = self.process.communicate(timeout=60)
        return self.process.returncode

    said: str = ""


def serve(workspace: Path, env: dict[str, str]) -> Service:
    """`mailer serve` on a free loopback port, once it says where it listens."""
    process = subprocess.Popen(
        command(workspace, "serve", "--port", "0"), env=environment(env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until it is listening (or has failed)
    found = re.search(r"serving on (http://\S+)", line)
    assert found is not None, line + (process.stderr.read() if process.stderr else "")
    return Service(process, found.group(1).rstrip(","))


def schedule(workspace: Path, env: dict[str, str], seconds: float, *extra: str) -> float:
    """Schedule the example report to the list `big` ``seconds`` ahead; return when, exactly."""
    moment = (datetime.now() + timedelta(seconds=seconds)).replace(microsecond=0)
    cli(workspace, "send", str(EXAMPLE_REPORT), "--list", "big", "--yes", "--at",
        moment.strftime("%Y-%m-%d %H:%M:%S"), *extra, env=env)  # fmt: skip
    return moment.timestamp()


def settles(condition: Callable[[], bool], child: subprocess.Popen[str]) -> None:
    """Wait for a condition on the database (a poll every 20 ms, not a guess of how long)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert child.poll() is None, "the service ended"
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)


def campaign(workspace: Path) -> tuple[str, str, int]:
    db = sqlite3.connect(workspace / "subscribers" / "mailer.db")
    try:
        row = db.execute("SELECT status, reason, settings FROM campaigns").fetchone()
    finally:
        db.close()
    return row[0], row[1], json.loads(row[2])["in_flight_limit"]


@pytest.fixture
def relay() -> Iterator[tuple[LoopbackController, Clocked]]:
    recorder = Clocked()
    controller = start(recorder)
    yield controller, recorder
    controller.stop()


def test_a_campaign_goes_at_its_time_each_reader_once(
    tmp_path: Path, relay: tuple[LoopbackController, Clocked]
) -> None:
    controller, recorder = relay
    emails = populate(tmp_path, 50)
    env = smtp_env(controller.port)
    service = serve(tmp_path, env)
    try:
        assert service.health()["scheduler"] == "running"
        assert service.health()["next_due"] is None
        due = schedule(tmp_path, env, 3)
        wait_for(lambda: len(recorder.received) >= 50, service.process)
        assert min(recorder.arrivals) >= due  # nothing before its time
        settles(lambda: campaign(tmp_path)[0] == "done", service.process)
        assert service.terminate() == 0
    finally:
        service.process.kill()
    counts = recorder.counts()
    assert set(counts) == set(emails) and set(counts.values()) == {1}
    assert campaign(tmp_path)[0] == "done"


def test_killed_while_sending_it_finishes_when_started_again(
    tmp_path: Path, relay: tuple[LoopbackController, Clocked]
) -> None:
    controller, recorder = relay
    emails = populate(tmp_path, 2000)
    env = smtp_env(controller.port)
    first = serve(tmp_path, env)
    try:
        schedule(tmp_path, env, 4, "--rate", "400")
        wait_for(lambda: len(recorder.received) >= 300, first.process)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    finally:
        first.process.kill()
    before = len(recorder.received)
    assert before < 2000, "the campaign finished before the kill: nothing was tested"
    assert campaign(tmp_path)[0] == "sending"
    again = serve(tmp_path, env)
    try:
        wait_for(lambda: set(recorder.counts()) == set(emails), again.process)
        settles(lambda: campaign(tmp_path)[0] == "done", again.process)
        assert again.terminate() == 0
    finally:
        again.process.kill()
    counts = recorder.counts()
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= campaign(tmp_path)[2]  # the in-flight bound recorded with it


def test_sigterm_pauses_the_campaign_and_the_next_start_goes_on(
    tmp_path: Path, relay: tuple[LoopbackController, Clocked]
) -> None:
    controller, recorder = relay
    emails = populate(tmp_path, 1000)
    env = smtp_env(controller.port)
    first = serve(tmp_path, env)
    try:
        schedule(tmp_path, env, 4, "--rate", "300")
        wait_for(lambda: len(recorder.received) >= 200, first.process)
        assert first.terminate() == 0
        assert "Traceback" not in first.said and "Error" not in first.said, first.said
    finally:
        first.process.kill()
    status, reason, _ = campaign(tmp_path)
    assert status == "paused" and reason.startswith("service stopped"), reason
    stopped_at = len(recorder.received)
    assert stopped_at < 1000
    again = serve(tmp_path, env)
    try:
        wait_for(lambda: len(recorder.received) >= 1000, again.process)
        settles(lambda: campaign(tmp_path)[0] == "done", again.process)
        assert again.terminate() == 0
    finally:
        again.process.kill()
    counts = recorder.counts()
    # A graceful stop records every message it sent: the second start sends exactly the rest.
    assert set(counts) == set(emails) and set(counts.values()) == {1}


def test_a_second_ctrl_c_aborts_what_is_in_flight_and_the_campaign_waits(
    tmp_path: Path, relay: tuple[LoopbackController, Clocked]
) -> None:
    controller, recorder = relay
    populate(tmp_path, 1000)
    env = smtp_env(controller.port)
    service = serve(tmp_path, env)
    try:
        schedule(tmp_path, env, 4, "--rate", "200")
        wait_for(lambda: len(recorder.received) >= 100, service.process)
        signalled = len(recorder.received)
        service.process.send_signal(signal.SIGINT)
        service.process.send_signal(signal.SIGINT)
        service.process.communicate(timeout=60)
    finally:
        service.process.kill()
    stopped_at = len(recorder.received)
    status, _, limit = campaign(tmp_path)
    # Aborted: at most what was in flight went out after the signals, and it is not done.
    assert stopped_at - signalled <= limit and status != "done", (signalled, stopped_at)
