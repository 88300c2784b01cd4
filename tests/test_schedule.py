"""Sending at a set time: `send --at` checks now and stores; the scheduler starts what is due on
its clock, leaves late campaigns to the editor; cancel and reschedule."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailer import config, times
from mailer.db.campaign_lock import one_sender
from mailer.errors import InputError
from mailer.schedule import calendar
from mailer.schedule.scheduler import Scheduler
from mailer.send.types import StopReason
from tests.conftest import EXAMPLE_CSV, EXAMPLE_REPORT, Invoke, store
from tests.smtp_servers import LoopbackController, Recorder
from tests.test_send_cli import smtp_env

SOON = datetime.now(UTC) + timedelta(days=2)
AT = SOON.astimezone().strftime("%Y-%m-%d %H:%M:%S")  # the editor's wall clock
DUE = times.at(AT, "", now=datetime(2000, 1, 1, tzinfo=UTC))  # AT as the scheduler reads it


@pytest.fixture
def example(mailer: Invoke) -> str:
    imported = mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    assert imported.exit_code == 0, imported.output
    return "example"


def db(workspace: Path) -> sqlite3.Connection:
    return sqlite3.connect(workspace / "subscribers" / "mailer.db", isolation_level=None)


def campaign_row(workspace: Path, campaign_id: int = 1) -> tuple[str, str | None, str, int]:
    row = (
        db(workspace)
        .execute(
            "SELECT status, scheduled_at, reason, (SELECT COUNT(*) FROM deliveries WHERE"
            " campaign_id = c.id) FROM campaigns c WHERE id = ?",
            (campaign_id,),
        )
        .fetchone()
    )
    return row[0], row[1], row[2], row[3]


def scheduled(mailer: Invoke, example: str, env: dict[str, str]) -> datetime:
    """The example report scheduled for AT on the list ``example``; the moment it is due."""
    done = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--at", AT, "--yes", env=env)
    assert done.exit_code == 0, done.output
    return DUE


def tick(workspace: Path, env: dict[str, str], at: datetime) -> list[int]:
    """One tick of the scheduler with its clock at ``at``; waits for what it started."""
    settings = config.load(workspace, env)

    async def go() -> list[int]:
        scheduler = Scheduler(settings, clock=at.timestamp)
        started = await scheduler.tick()
        runs = [run.done for run in scheduler.running.values() if run.done is not None]
        await asyncio.gather(*runs)
        return started

    return asyncio.run(go())


def test_at_reads_a_wall_clock_in_a_zone_and_refuses_the_past() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert times.at("2026-12-01 07:00", "Europe/Paris", now=now) == datetime(
        2026, 12, 1, 6, 0, tzinfo=UTC
    )
    assert times.at("2026-12-01T07:00:30", "UTC", now=now) == datetime(
        2026, 12, 1, 7, 0, 30, tzinfo=UTC
    )
    assert times.at("2027-07-01 07:00", "Europe/Paris", now=now).hour == 5  # summer time
    assert times.at("2026-12-01T07:00+09:00", "Europe/Paris", now=now).hour == 22  # its own
    for text, zone, said in [
        ("tomorrow", "", "invalid --at 'tomorrow': expected a date and time such as"),
        ("2026-12-01", "", "invalid --at '2026-12-01': give the time too"),
        ("2026-11-27 12:59", "Europe/Paris", "is in the past (2026-11-27 12:59:00+01:00)"),
        ("2026-12-01 07:00", "Mars/Olympus", "invalid time zone 'Mars/Olympus': give an IANA"),
        ("2026-12-01 07:00", "../etc/passwd", "invalid time zone '../etc/passwd'"),
        ("2027-03-28 02:30", "Europe/Paris", "does not exist in Europe/Paris: the clocks go"),
        ("2027-10-31 02:30", "Europe/Paris", "happens twice in Europe/Paris (the clocks go back)"),
    ]:
        with pytest.raises(InputError) as raised:
            times.at(text, zone, now=now)
        assert said in str(raised.value), str(raised.value)


def test_send_at_checks_every_message_now_and_stores_the_campaign_scheduled(
    mailer: Invoke, workspace: Path, example: str
) -> None:
    broken = workspace / "broken.md"
    broken.write_text("---\nsubject: Broken\n---\n# Hello {{ subscriber.city }}\n")
    refused = mailer("send", str(broken), "--list", example, "--at", AT, "--yes")
    assert refused.exit_code == 1 and "city" in refused.stderr
    assert "Traceback" not in refused.output and len(refused.stderr.splitlines()) == 1
    assert db(workspace).execute("SELECT COUNT(*) FROM campaigns").fetchone()[0] == 0

    done = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--at", AT, "--tz", "UTC",
                  "--rate", "5", "--yes")  # fmt: skip
    assert done.exit_code == 0, done.output
    status, at, reason, readers = campaign_row(workspace)
    expected = times.at(AT, "UTC")
    assert (status, at, reason, readers) == ("scheduled", times.stamp(expected), "", 0)
    assert f"campaign 1 scheduled for {AT} UTC (UTC)" in done.stdout
    assert list((workspace / "outbox").glob("*/*")) == []  # nothing sent
    settings, copy = (
        db(workspace).execute("SELECT settings, archive_html FROM campaigns").fetchone()
    )
    assert json.loads(settings)["rate"] == 5.0
    assert f'<time datetime="{AT[:10]}">' in copy  # the archive dates it the day it goes out
    listed = json.loads(mailer("campaigns", "ls", "--json").stdout)
    assert listed[0]["status"] == "scheduled" and listed[0]["scheduled_at"] == at
    table = mailer("campaigns", "ls").stdout.splitlines()
    local = expected.astimezone().strftime("%Y-%m-%d %H:%M")
    assert table[1].split("\t")[3] == f"scheduled {at}", table  # piped: UTC, ISO 8601
    assert f"at:       {local}" in mailer("campaigns", "show", "1").stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--at", "2001-01-01 07:00"], "is in the past"),
        (["--at", "soon"], "invalid --at 'soon': expected a date and time such as"),
        (["--at", "2030-01-01 07:00", "--tz", "Nowhere/Town"], "invalid time zone 'Nowhere/Town'"),
        (["--tz", "Europe/Paris"], "--tz says how to read --at: give --at TIME too"),
        (["--at", "2030-01-01 07:00", "--test", "a@example.org"], "--at cannot be used with"),
        (["--at", "2030-01-01 07:00", "--limit", "3"], "--at cannot be used with --limit"),
    ],
)
def test_bad_times_are_one_line(
    mailer: Invoke, workspace: Path, example: str, args: list[str], said: str
) -> None:
    result = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes", *args)
    assert result.exit_code == 1 and said in result.stderr, result.output
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output


def test_the_scheduler_starts_it_on_time_with_the_readers_of_that_moment(
    mailer: Invoke, workspace: Path, example: str, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    env = smtp_env(controller.port)
    scheduled(mailer, example, env)
    # Between scheduling and sending, one reader leaves and one joins: the moment it starts counts.
    assert mailer("subscribers", "rm", example, "zoe.bronte@example.org").exit_code == 0
    assert mailer("subscribers", "add", example, "late@example.org").exit_code == 0
    due = DUE
    assert tick(workspace, env, due - timedelta(seconds=1)) == []
    assert recorder.received == [] and campaign_row(workspace)[0] == "scheduled"
    assert tick(workspace, env, due) == [1]
    counts = recorder.counts()
    assert len(counts) == 20 and set(counts.values()) == {1}
    assert "late@example.org" in counts and "zoe.bronte@example.org" not in counts
    assert campaign_row(workspace)[0] == "done"
    assert tick(workspace, env, due + timedelta(minutes=1)) == []  # nothing twice
    assert len(recorder.received) == 20


def test_a_campaign_due_longer_ago_than_late_after_waits_for_the_editor(
    mailer: Invoke, workspace: Path, example: str, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    env = smtp_env(controller.port)
    due = scheduled(mailer, example, env)
    assert tick(workspace, env, due + timedelta(hours=7)) == []  # the service was down
    status, _, reason, _ = campaign_row(workspace)
    assert status == "scheduled" and reason.startswith("late: due at")
    assert "mailer campaigns resume 1" in reason and recorder.received == []
    assert tick(workspace, env, due + timedelta(hours=8)) == []  # it keeps waiting
    shown = mailer("campaigns", "show", "1").stdout
    assert "status:   scheduled (late: due at" in shown
    # Within late_after it would have started: 5 h late, with the default of 6 h.
    resumed = mailer("campaigns", "resume", "1", env=env)
    assert resumed.exit_code == 0, resumed.output
    assert len(recorder.counts()) == 20 and campaign_row(workspace)[0] == "done"


def test_within_late_after_a_campaign_starts_when_the_service_is_back(
    mailer: Invoke, workspace: Path, example: str, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    env = {**smtp_env(controller.port), "MAILER_SCHEDULE_LATE_AFTER": "30m"}
    due = scheduled(mailer, example, env)
    assert tick(workspace, env, due + timedelta(minutes=29)) == [1]
    assert len(recorder.counts()) == 20


def test_cancel_and_reschedule(mailer: Invoke, workspace: Path, example: str) -> None:
    for _ in range(2):
        sent = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--at", AT, "--yes",
                      "--again")  # fmt: skip
        assert sent.exit_code == 0, sent.output
    later = (SOON + timedelta(days=1)).astimezone().strftime("%Y-%m-%d %H:%M")
    moved = mailer("campaigns", "reschedule", "1", "--at", later)
    assert moved.exit_code == 0, moved.output
    assert campaign_row(workspace, 1)[1] == times.stamp(times.at(later))
    assert mailer("campaigns", "reschedule", "1", "--at", "2001-01-01 07:00").exit_code == 1
    cancelled = mailer("campaigns", "cancel", "2")
    assert cancelled.exit_code == 0 and campaign_row(workspace, 2)[0] == "cancelled"
    again = mailer("campaigns", "cancel", "2")
    assert again.exit_code == 1
    assert again.stderr.strip() == "error: campaign 2 is cancelled: there is nothing to cancel"
    moved_back = mailer("campaigns", "reschedule", "2", "--at", later)
    assert moved_back.exit_code == 1 and "is cancelled, not scheduled" in moved_back.stderr
    now = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes", "--again")
    assert now.exit_code == 0, now.output
    finished = mailer("campaigns", "cancel", "3")
    assert finished.exit_code == 1
    assert finished.stderr.strip() == "error: campaign 3 is done: there is nothing to cancel"
    assert mailer("campaigns", "cancel", "99").exit_code == 1


def test_a_campaign_another_process_is_sending_cannot_be_cancelled(
    mailer: Invoke, workspace: Path, example: str
) -> None:
    assert (
        mailer("send", str(EXAMPLE_REPORT), "--list", example, "--at", AT, "--yes").exit_code == 0
    )
    with one_sender(workspace / "subscribers" / "mailer.db", 1):  # as `mailer serve` holds it
        refused = mailer("campaigns", "cancel", "1")
    assert refused.exit_code == 1
    assert refused.stderr.strip() == "error: campaign 1 is being sent by another mailer process"
    assert campaign_row(workspace)[0] == "scheduled"


def test_a_campaign_the_scheduler_cannot_start_is_left_to_the_editor_once(
    mailer: Invoke, workspace: Path, example: str, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    env = smtp_env(controller.port)
    scheduled(mailer, example, env)
    # A reader the report now fails for: it cannot start, and must not be tried every second.
    db(workspace).execute("UPDATE campaign_editions SET source = REPLACE(source,"
                          " 'Dear {{', '{{ subscriber.attributes.shoe_size }} {{')")  # fmt: skip
    db(workspace).execute("UPDATE campaigns SET source = REPLACE(source,"
                          " 'Dear {{', '{{ subscriber.attributes.shoe_size }} {{')")  # fmt: skip
    due = DUE
    assert tick(workspace, env, due) == [1]
    status, _, reason, _ = campaign_row(workspace)
    assert status == "paused" and reason.startswith("could not start:"), reason
    assert "shoe_size" in reason and "mailer campaigns resume 1" in reason
    assert tick(workspace, env, due + timedelta(seconds=5)) == []  # left alone
    assert recorder.received == []


def test_a_campaign_paused_with_the_service_and_nothing_left_is_finished_once(
    mailer: Invoke, workspace: Path, example: str, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    env = smtp_env(controller.port)
    due = scheduled(mailer, example, env)
    assert tick(workspace, env, due) == [1]
    # As if SIGTERM came while its last messages were recorded: paused, nothing left.
    db(workspace).execute(
        "UPDATE campaigns SET status = 'paused', reason ="
        " 'service stopped; it goes on when `mailer serve` starts again'"
    )
    assert tick(workspace, env, due + timedelta(minutes=1)) == [1]
    assert campaign_row(workspace)[0] == "done" and len(recorder.received) == 20
    assert tick(workspace, env, due + timedelta(minutes=2)) == []


def ticks(workspace: Path, env: dict[str, str], *moments: datetime) -> list[list[int]]:
    """One scheduler ticking at each of ``moments`` in turn (waiting for what it started)."""
    settings = config.load(workspace, env)
    now = [moments[0]]

    async def go() -> list[list[int]]:
        scheduler = Scheduler(settings, clock=lambda: now[0].timestamp())
        started = []
        for moment in moments:
            now[0] = moment
            started.append(await scheduler.tick())
            await asyncio.gather(*[r.done for r in scheduler.running.values() if r.done])
        return started

    return asyncio.run(go())


def test_what_stops_this_serve_only_leaves_the_campaign_for_another_or_later(
    mailer: Invoke, workspace: Path, example: str, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    env = smtp_env(controller.port)
    due = scheduled(mailer, example, env)
    unfit = {**env, "MAILER_NEWSLETTER_BASE_URL": "http://news.example.org"}
    with socket.socket() as closed:  # a relay that is down: nothing listens on its port
        closed.bind(("127.0.0.1", 0))
        down = {**env, "MAILER_SMTP_PORT": str(closed.getsockname()[1])}
    for here in (unfit, down):  # before: paused "could not start", for every serve
        assert ticks(workspace, here, due, due + timedelta(seconds=10)) == [[1], []]
        assert campaign_row(workspace)[:3] == ("scheduled", campaign_row(workspace)[1], ""), here
        assert ticks(workspace, here, due, due + timedelta(seconds=31)) == [[1], [1]]
    assert ticks(workspace, env, due + timedelta(seconds=40)) == [[1]]  # another serve, or mended
    assert campaign_row(workspace)[0] == "done" and len(recorder.received) == 20


def test_a_campaign_another_process_sends_is_never_marked_failed(
    mailer: Invoke, workspace: Path, example: str
) -> None:
    assert mailer("send", str(EXAMPLE_REPORT), "--list", example, "--at", AT,
                  "--yes").exit_code == 0  # fmt: skip
    settings = config.load(workspace)
    with one_sender(settings.database_path, 1), store(workspace) as database:
        calendar.mark_failed(database, 1, "this serve's own trouble")
    assert campaign_row(workspace)[0] == "scheduled"


def test_a_database_error_of_the_campaigns_own_still_pauses_it_once(
    mailer: Invoke,
    workspace: Path,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    smtp_server: tuple[LoopbackController, Recorder],
) -> None:
    controller, recorder = smtp_server
    env = {**smtp_env(controller.port), "MAILER_DATABASE_URL": postgres_url}
    monkeypatch.setenv("MAILER_DATABASE_URL", postgres_url)
    readers = workspace / "scores.csv"
    readers.write_text("email,score\na@example.org,6\nb@example.org,7\n")
    assert mailer("subscribers", "import", "s", str(readers), "--create-list").exit_code == 0
    assert mailer("send", str(EXAMPLE_REPORT), "--list", "s", "--where", "score > 5", "--at", AT,
                  "--yes", env=env).exit_code == 0  # fmt: skip
    readers.write_text("email,score\nc@example.org,1e400\n")  # joins before it starts
    assert mailer("subscribers", "import", "s", str(readers)).exit_code == 0
    due = DUE
    assert ticks(workspace, env, due, due + timedelta(seconds=31)) == [[1], []]  # not again
    with store(workspace) as database:
        status, reason = database.query_one("SELECT status, reason FROM campaigns WHERE id = 1")
    assert status == "paused" and reason.startswith("could not start: database "), reason
    assert "a number too large to store" in reason and recorder.received == []


def test_a_campaign_whose_relay_went_down_mid_send_goes_on_when_it_is_back(
    mailer: Invoke, workspace: Path, example: str, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    """Paused as unreachable (every failure in a row a connection lost or never made), a
    scheduled campaign is this serve's to go on with, once it has rested: not the editor's."""
    controller, recorder = smtp_server
    env = smtp_env(controller.port)
    due = scheduled(mailer, example, env)
    assert tick(workspace, env, due) == [1] and len(recorder.received) == 20

    def paused_with_five_left(reason: str) -> None:
        store = db(workspace)
        store.execute("UPDATE deliveries SET status = 'queued' WHERE subscriber_id <= 5")
        store.execute("UPDATE campaigns SET status = 'paused', reason = ?", (reason,))

    paused_with_five_left(f"{StopReason.UNREACHABLE.value} 50 failures in a row")
    assert ticks(workspace, env, due + timedelta(minutes=1)) == [[1]]
    assert campaign_row(workspace)[0] == "done" and len(recorder.received) == 25
    paused_with_five_left(f"{StopReason.FAILURES.value} 50 failures in a row")  # refused: the
    assert ticks(workspace, env, due + timedelta(minutes=2)) == [[]]  # editor's to look at
    assert campaign_row(workspace)[0] == "paused"
