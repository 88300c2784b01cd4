"""Many senders on one campaign (`campaigns work`, `send --workers`), on each engine: claims,
a dead worker's batch taken again after its lease, the shared rate, the workers listed."""

from __future__ import annotations

import bisect
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailer.send.campaign_workers import settle
from mailer.send.workers import Workers
from tests.conftest import EXAMPLE_REPORT, store
from tests.smtp_servers import LoopbackController, Recorder, start
from tests.test_send_cli import cli, command, environment, populate, smtp_env, wait_for

pytestmark = pytest.mark.usefixtures("engine")  # each test on SQLite, then PostgreSQL


@dataclass
class Timed(Recorder):
    """A recorder that notes when each message arrived."""

    times: list[float] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.times.append(time.monotonic())
        return await super().handle_DATA(server, session, envelope)


Relay = tuple[Recorder, dict[str, str]]  # the recording relay, and the settings naming it


@pytest.fixture
def relay(smtp_server: tuple[LoopbackController, Recorder]) -> Relay:
    controller, recorder = smtp_server
    return recorder, smtp_env(controller.port)


def work(workspace: Path, name: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`mailer campaigns work 1 --name NAME` as its own process."""
    return subprocess.Popen(command(workspace, "campaigns", "work", "1", "--name", name),
                            env=environment(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def run(workspace: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(workspace, *args), env=environment(env), capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def stored(workspace: Path, env: dict[str, str]) -> None:
    """Campaign 1 stored with its readers and one message sent: the rest wait for workers."""
    cli(workspace, "send", str(EXAMPLE_REPORT), "--list", "big", "--yes", "--limit", "1", env=env)


def test_send_with_workers_reaches_each_reader_once_and_lists_the_workers(
    tmp_path: Path,
    relay: Relay,
) -> None:
    emails = populate(tmp_path, 1200)
    recorder, env = relay
    said = cli(tmp_path, "send", str(EXAMPLE_REPORT), "--list", "big", "--yes",
               "--workers", "3", env=env)  # fmt: skip
    assert recorder.counts() == dict.fromkeys(emails, 1)
    assert "campaign 1: done; 1200 sent" in said and "by 3 workers" in said
    shown = cli(tmp_path, "campaigns", "show", "1")
    # Each worker's connections and unrecorded batch (8 + 16) may all go twice if all die.
    assert "in flight at most: 72 (what a crash may send twice)" in shown
    lines = shown[shown.index("workers:") :].splitlines()[1:]
    assert len(lines) == 3
    assert sum(int(line.split()[1]) for line in lines) == 1200  # "  NAME  N sent; finished …"
    with store(tmp_path) as db:
        per = db.query("SELECT claimed_by, COUNT(*) FROM deliveries GROUP BY claimed_by")
    assert len(per) == 3 and all(count > 0 for _, count in per)


def test_a_killed_workers_batch_is_sent_by_the_others_after_its_lease(
    tmp_path: Path, relay: Relay
) -> None:
    emails = populate(tmp_path, 3000)
    recorder, env = relay
    stored(tmp_path, env)
    a, b, c = (work(tmp_path, name, env) for name in ("a", "b", "c"))
    wait_for(lambda: len(recorder.received) >= 600, a)
    a.send_signal(signal.SIGKILL)
    a.wait()
    with store(tmp_path) as db:
        held = db.query_one("SELECT COUNT(*) FROM deliveries WHERE claimed_by = 'a'"
                            " AND status = 'queued'")  # fmt: skip
        assert held is not None
        # a's lease runs out: the clock moved on (lease_seconds is 60 by default)
        with db.transaction() as tx:
            tx.execute("UPDATE deliveries SET lease_until = '' WHERE claimed_by = 'a'")
    for survivor in (b, c):
        out, err = survivor.communicate(timeout=120)
        assert survivor.returncode == 0, out + err
    counts = recorder.counts()
    assert set(counts) == set(emails)  # nobody missed
    with store(tmp_path) as db:
        [(settings, status)] = db.query("SELECT settings, status FROM campaigns")
        left = db.query("SELECT COUNT(*) FROM deliveries WHERE status != 'sent'")
        taken = db.query_one("SELECT COUNT(*) FROM deliveries WHERE claimed_by IN ('b', 'c')")
    assert sum(n - 1 for n in counts.values()) <= json.loads(settings)["in_flight_limit"]
    assert status == "done" and left == [(0,)]
    assert taken is not None and taken[0] > 0
    shown = cli(tmp_path, "campaigns", "show", "1")
    assert all(f"  {name}  " in shown for name in ("a", "b", "c"))
    record = json.loads(cli(tmp_path, "campaigns", "show", "1", "--json"))
    assert sorted(w["name"] for w in record["workers"]) == ["a", "b", "c"]
    assert sum(w["counts"].get("sent", 0) for w in record["workers"]) == 2999  # 1 by --limit
    ended = {w["name"]: bool(w["finished_at"]) for w in record["workers"]}
    assert ended == {"a": False, "b": True, "c": True}  # b and c ended, a was killed


def test_the_rate_is_shared_by_the_workers(tmp_path: Path) -> None:
    populate(tmp_path, 1000)
    recorder = Timed()
    controller = start(recorder)
    env = smtp_env(controller.port)
    try:
        cli(tmp_path, "send", str(EXAMPLE_REPORT), "--list", "big", "--yes", "--limit", "1",
            "--rate", "200", env=env)  # fmt: skip
        workers = [work(tmp_path, name, env) for name in ("a", "b", "c")]
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, out + err
    finally:
        controller.stop()
    times = recorder.times[1:]  # the one --limit sent came first, alone
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert 180 <= rate <= 220, rate  # 200/s for all three together, within 10 %
    # From the start too: a worker counts those just started (before, each went at the whole
    # rate until it heard of the others, up to a second later).
    busiest = max(bisect.bisect_right(times, t + 1.0) - i for i, t in enumerate(times))
    assert busiest <= 230, busiest


def test_a_resume_waits_for_the_workers_and_a_worker_for_a_resume(
    tmp_path: Path, relay: Relay
) -> None:
    populate(tmp_path, 50)
    recorder, env = relay
    stored(tmp_path, env)
    with store(tmp_path) as db, db.campaign_lock(1, shared=True):  # a worker at work
        resumed = run(tmp_path, env, "campaigns", "resume", "1")
    with store(tmp_path) as db, db.campaign_lock(1):  # a resume at work
        worked = run(tmp_path, env, "campaigns", "work", "1")
    for done in (resumed, worked):
        assert done.returncode == 1
        assert done.stderr == "error: campaign 1 is being sent by another mailer process\n"
    assert len(recorder.received) == 1


def test_ctrl_c_stops_the_workers_gracefully_and_a_resume_sends_exactly_the_rest(
    tmp_path: Path,
    relay: Relay,
) -> None:
    emails = populate(tmp_path, 1500)
    recorder, env = relay
    parent = subprocess.Popen(
        command(tmp_path, "send", str(EXAMPLE_REPORT), "--list", "big", "--yes",
                "--workers", "2"),
        env=environment(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(lambda: len(recorder.received) >= 300, parent)
    parent.send_signal(signal.SIGINT)  # as a terminal's Ctrl-C reaches the parent only
    out, err = parent.communicate(timeout=120)
    assert parent.returncode == 130, out + err  # as for one send stopped
    assert "the workers finish the messages in flight" in err and "Traceback" not in err
    assert "resume with: mailer campaigns resume 1" in out
    assert len(recorder.received) < 1500
    cli(tmp_path, "campaigns", "resume", "1", env=env)
    counts = recorder.counts()
    assert set(counts) == set(emails) and set(counts.values()) == {1}  # each exactly once


def test_a_machines_dead_workers_are_settled_and_the_campaign_paused(
    tmp_path: Path, relay: Relay
) -> None:
    populate(tmp_path, 20)
    stored(tmp_path, relay[1])
    with store(tmp_path) as db:
        with db.transaction() as tx:  # a worker of this machine that was killed mid-send
            tx.execute("UPDATE campaigns SET status = 'sending', reason = ''")
            tx.execute(
                "INSERT INTO campaign_workers (campaign_id, worker, host, pid, started_at,"
                " seen_at) VALUES (1, 'here:999999-ab12', 'here', 999999, ?, ?)",
                ("2026-11-27T10:00:00+00:00", "2026-11-27T10:00:05+00:00"),
            )
        assert settle(db, 1, "elsewhere", [999999]) == "sending"  # not this machine's
        assert settle(db, 1, "here", [999999]) == "paused"
        [(status, reason)] = db.query("SELECT status, reason FROM campaigns")
        [(finished,)] = db.query("SELECT finished_at FROM campaign_workers")
    assert (status, reason) == ("paused", "19 not sent yet (its workers ended)") and finished


def workers_of(workspace: Path) -> list[str]:
    """The `campaigns work` processes of ``workspace`` still alive."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:  # it ended while we looked
            continue
        if str(workspace).encode() in words and b"work" in words:
            found.append(b" ".join(words).decode())
    return found


def test_workers_started_for_a_send_that_stops_first_end_without_a_word(
    tmp_path: Path, relay: Relay
) -> None:
    """`send --workers` starts its workers while it checks every reader: a check that fails,
    or a send not confirmed, leaves no campaign, and the workers end with it."""
    populate(tmp_path, 30)
    report = tmp_path / "weather.md"
    report.write_text("---\nsubject: Weather\n---\nRain in {{ subscriber.attributes.city }}.\n")
    recorder, env = relay
    failed = run(tmp_path, env, "send", str(report), "--list", "big", "--yes",
                 "--workers", "2")  # fmt: skip
    unconfirmed = run(tmp_path, env, "send", str(EXAMPLE_REPORT), "--list", "big",
                      "--workers", "2")  # fmt: skip
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"error: {report}:4: 'dict object' has no attribute 'city'")
    assert unconfirmed.returncode != 0 and "without --yes" in unconfirmed.stderr
    assert recorder.received == [] and workers_of(tmp_path) == []
    assert "no campaigns yet" in run(tmp_path, env, "campaigns", "ls").stderr


def test_a_worker_told_nothing_ends_quietly_and_a_bad_id_is_one_line(tmp_path: Path) -> None:
    populate(tmp_path, 3)
    told = subprocess.run(command(tmp_path, "campaigns", "work", "-"), input="", text=True,
                          capture_output=True, env=environment({}), timeout=120)  # fmt: skip
    assert (told.returncode, told.stdout, told.stderr) == (0, "", "")
    for given in ("three", "²"):  # a word, a digit that int() refuses
        wrong = run(tmp_path, {}, "campaigns", "work", given)
        assert wrong.returncode == 1
        said = f"error: campaign id {given!r}: a number, or - to read it from stdin\n"
        assert wrong.stderr == said
    long = run(tmp_path, {}, "campaigns", "work", "9" * 30)  # a number, as show says of it
    assert long.returncode == 1 and "no campaign" in long.stderr


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "polled"])
def test_send_is_back_as_soon_as_its_last_worker_exits(
    monkeypatch: pytest.MonkeyPatch, pidfd: bool
) -> None:
    """Not at the next look at the counts: told by a pidfd on Linux, else by polling."""
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    waiting = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                               stdin=subprocess.PIPE)  # fmt: skip
    looks: list[float] = []

    def watch() -> None:
        looks.append(time.monotonic())
        if len(looks) == 1 and waiting.stdin is not None:
            waiting.stdin.close()  # the worker ends

    Workers(processes=[waiting]).wait(watch, interval=30)
    assert len(looks) == 2 and looks[1] - looks[0] < 20  # the next look was 30 s away
    assert waiting.returncode == 0


@dataclass
class Refusing(Recorder):
    """Refuses, with 550 5.1.1, every recipient whose address holds a 7."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if "7" in address:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_the_workers_progress_counts_refusals_as_failed_not_sent(tmp_path: Path) -> None:
    """What `send --workers` shows while it runs comes from the store: a refused reader is
    failed there, and so in the progress line, never counted as sent."""
    from mailer.cli.workers import tally
    from mailer.send.campaign_workers import ended_otherwise, queued
    from mailer.send.types import Progress

    emails = populate(tmp_path, 300)
    refusing = Refusing()
    controller = start(refusing)
    try:
        env = {**smtp_env(controller.port), "MAILER_SEND_MAX_CONSECUTIVE_FAILURES": "1000"}
        said = cli(tmp_path, "send", str(EXAMPLE_REPORT), "--list", "big", "--yes",
                   "--workers", "2", env=env)  # fmt: skip
    finally:
        controller.stop()
    refused = sum("7" in email for email in emails)
    assert f"{300 - refused} sent, 0 deferred, {refused} failed" in said
    progress = Progress(300)
    with store(tmp_path) as db:
        tally(progress, 300 - queued(db, 1), ended_otherwise(db, 1))
    assert (progress.counts["sent"], progress.counts["failed"]) == (300 - refused, refused)
    assert progress.done == 300
