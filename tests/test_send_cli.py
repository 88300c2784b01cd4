"""`mailer send` and `mailer campaigns` end to end: real CLI, real SMTP server, real SQLite."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CSV, EXAMPLE_REPORT, PUBLICATION, Invoke, engine_environ, store
from tests.message_checks import check_paths
from tests.smtp_servers import FaultyServer, LoopbackController, Recorder, closed_port, start


def smtp_env(port: int) -> dict[str, str]:
    return {"MAILER_SMTP_HOST": "127.0.0.1", "MAILER_SMTP_PORT": str(port),
            "MAILER_SMTP_SECURITY": "none", **PUBLICATION}  # fmt: skip


@pytest.fixture
def example(mailer: Invoke) -> str:
    assert (
        mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list").exit_code == 0
    )
    return "example"


def test_send_refuses_without_yes_when_not_a_terminal(
    mailer: Invoke, example: str, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    result = mailer("send", str(EXAMPLE_REPORT), "--list", example, env=smtp_env(controller.port))
    assert result.exit_code == 1
    assert "refusing to send without --yes" in result.stderr
    assert "20 readers" in result.stdout
    assert recorder.received == []
    assert "no campaigns yet" in mailer("campaigns", "ls").stderr


def test_send_delivers_one_copy_to_each_confirmed_active_reader(
    mailer: Invoke, workspace: Path, example: str, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    mailer("subscribers", "rm", example, "zoe.bronte@example.org")
    db = sqlite3.connect(workspace / "subscribers" / "mailer.db", isolation_level=None)
    db.execute("UPDATE subscribers SET status = 'bounced' WHERE email = 'jose.alvarez@example.com'")
    db.execute(
        "UPDATE subscribers SET status = 'blocklisted' WHERE email = 'lukasz.nowak@example.net'"
    )
    result = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes",
                    env=smtp_env(controller.port))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "17 sent, 0 deferred, 0 failed, 0 skipped" in result.stdout
    received = recorder.counts()
    assert len(received) == 17 and set(received.values()) == {1}
    assert not {"zoe.bronte@example.org", "jose.alvarez@example.com"} & set(received)
    shown = mailer("campaigns", "show", "1").stdout
    assert "status:   done" in shown and "17 sent" in shown
    message = recorder.received[0].message
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    rows = db.execute("SELECT message_id, reply FROM deliveries WHERE status = 'sent'").fetchall()
    assert {r[1] for r in rows} == {"2.0.0 OK queued"}
    assert {r.message["Message-ID"] for r in recorder.received} == {r[0] for r in rows}


def test_dry_run_and_test_sends_record_nothing(
    mailer: Invoke, example: str, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    env = smtp_env(controller.port)
    dry = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--dry-run", env=env)
    assert dry.exit_code == 0, dry.output
    assert "20 messages rendered and checked" in dry.stdout
    assert recorder.received == []
    test = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--test", "editor@example.org",
                  "--test", "Zoe.Bronte@example.org", env=env)  # fmt: skip
    assert test.exit_code == 0, test.output
    assert sorted(recorder.counts()) == ["editor@example.org", "zoe.bronte@example.org"]
    assert "no campaigns yet" in mailer("campaigns", "ls").stderr


def test_unreachable_server_is_one_line_and_no_campaign(mailer: Invoke, example: str) -> None:
    port = closed_port()
    result = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes", env=smtp_env(port))
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(f"error: SMTP server 127.0.0.1:{port}: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no campaigns yet" in mailer("campaigns", "ls").stderr


def test_default_transport_is_the_outbox_maildir(
    mailer: Invoke, workspace: Path, example: str
) -> None:
    result = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes")
    assert result.exit_code == 0, result.output
    assert "outbox Maildir" in result.stdout
    assert len(list((workspace / "outbox" / "new").iterdir())) == 20
    assert check_paths([workspace / "outbox"]) == (20, [])


# Subprocess tests: the real `mailer` process, killed or interrupted mid-send.


def populate(workspace: Path, count: int) -> list[str]:
    path = workspace / "readers.csv"
    emails = [f"reader{i}@example.org" for i in range(count)]
    path.write_text("email,name\n" + "".join(f"{e},Reader {i}\n" for i, e in enumerate(emails)))
    cli(workspace, "subscribers", "import", "big", str(path), "--create-list")
    return emails


def cli(workspace: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command(workspace, *args), env=environment(env), capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def command(workspace: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mailer", "--workspace", str(workspace), *args]


def environment(extra: dict[str, str] | None) -> dict[str, str]:
    """The process's environment less its settings, but for the test's engine."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    return {**base, **engine_environ(), **(extra or {})}


def start_send(workspace: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`mailer send` of the example report to the list `big`, as its own process."""
    return subprocess.Popen(
        command(workspace, "send", str(EXAMPLE_REPORT), "--list", "big", "--yes"),
        env=environment(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for(condition: object, child: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and child.poll() is None:  # type: ignore[operator]
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.002)  # polling the server's count, not synchronising on time


def test_a_campaign_paused_by_failures_says_so_on_stderr(mailer: Invoke, example: str) -> None:
    """Exit 1 with the reason as an error line (before, only on stdout, as if all went well)."""
    dropping = FaultyServer(rule=lambda recipient, attempt: "drop")  # each message's reply
    controller = start(dropping)
    env = {**smtp_env(controller.port), "MAILER_SEND_MAX_CONSECUTIVE_FAILURES": "3"}
    try:
        result = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes", env=env)
    finally:
        controller.stop()
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: campaign 1 paused (paused after 3 failures in a row);"
                      " resume with: mailer campaigns resume 1"]  # fmt: skip
    assert "paused" not in result.stdout


@pytest.mark.usefixtures("engine")
def test_a_resume_with_more_connections_widens_the_recorded_bound(tmp_path: Path) -> None:
    """The bound on what a crash may send twice is the run's: before, a resume given 64
    connections kept the first run's 24, and a kill then sent 116 readers twice."""
    populate(tmp_path, 30)
    recorder = Recorder()
    controller = start(recorder)
    env = smtp_env(controller.port)
    try:
        cli(tmp_path, "send", str(EXAMPLE_REPORT), "--list", "big", "--yes", "--limit", "10",
            env=env)  # fmt: skip
        bounds = []
        with store(tmp_path) as db:
            bounds.append(json.loads(db.query("SELECT settings FROM campaigns")[0][0]))
        cli(tmp_path, "campaigns", "resume", "1", "--concurrency", "64", env=env)
        with store(tmp_path) as db:
            bounds.append(json.loads(db.query("SELECT settings FROM campaigns")[0][0]))
    finally:
        controller.stop()
    assert [b["in_flight_limit"] for b in bounds] == [8 + 16, 64 + 128]
    assert bounds[1]["concurrency"] == 8  # the campaign's own setting stays as it was stored
    assert len(recorder.counts()) == 30


@pytest.mark.usefixtures("engine")
def test_sigkill_then_resume_delivers_everyone_with_bounded_duplicates(tmp_path: Path) -> None:
    emails = populate(tmp_path, 3000)
    recorder = Recorder()
    controller = start(recorder)
    env = smtp_env(controller.port)
    try:
        child = start_send(tmp_path, env)
        wait_for(lambda: len(recorder.received) >= 1000, child)
        child.send_signal(signal.SIGKILL)
        child.wait()
        before = len(recorder.received)
        assert before < 3000, "the send finished before the kill: nothing was tested"
        resumed = cli(tmp_path, "campaigns", "resume", "1", env=env)
    finally:
        controller.stop()
    assert "sent" in resumed
    counts = recorder.counts()
    assert set(counts) == set(emails)  # everyone at least once
    duplicates = sum(n - 1 for n in counts.values())
    with store(tmp_path) as db:
        [(settings, status)] = db.query("SELECT settings, status FROM campaigns")
        statuses = dict(db.query("SELECT status, COUNT(*) FROM deliveries GROUP BY status"))
    assert duplicates <= json.loads(settings)["in_flight_limit"]
    assert status == "done"
    assert statuses == {"sent": 3000}


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_finishes_in_flight_and_prints_the_resume_command(
    tmp_path: Path, stop: signal.Signals
) -> None:
    emails = populate(tmp_path, 1500)
    recorder = Recorder()
    controller = start(recorder)
    env = smtp_env(controller.port)
    try:
        child = start_send(tmp_path, env)
        wait_for(lambda: len(recorder.received) >= 300, child)
        child.send_signal(stop)
        stdout, stderr = child.communicate(timeout=60)
        assert child.returncode == 130, stdout + stderr
        assert "resume with: mailer campaigns resume 1" in stdout
        assert "Traceback" not in stderr
        first = len(recorder.received)
        assert first < 1500
        cli(tmp_path, "campaigns", "resume", "1", env=env)
    finally:
        controller.stop()
    counts = recorder.counts()
    # A graceful stop records every message it sent: the resume sends exactly the rest.
    assert set(counts) == set(emails) and set(counts.values()) == {1}


def test_verp_return_path_names_reader_and_campaign(
    mailer: Invoke, workspace: Path, example: str, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    from mailer.tokens import Signer, load_secret, parse_verp

    controller, recorder = smtp_server
    env = {**smtp_env(controller.port), "MAILER_BOUNCES_VERP": "true"}
    assert mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes", env=env).exit_code == 0
    signer = Signer(load_secret(workspace))
    db = sqlite3.connect(workspace / "subscribers" / "mailer.db")
    ids = dict(db.execute("SELECT email, id FROM subscribers").fetchall())
    for received in recorder.received:
        assert received.sender.endswith("@example.org")
        assert parse_verp(signer, received.sender) == (ids[received.recipient], 1)


def test_campaigns_show_lists_the_bounces_it_caused(mailer: Invoke, example: str) -> None:
    from tests.smtp_servers import FaultyServer

    dead = "zoe.bronte@example.org"
    faulty = FaultyServer(rule=lambda recipient, attempt: "550" if recipient == dead else None)
    controller = start(faulty)
    try:
        result = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes",
                        env=smtp_env(controller.port))  # fmt: skip
    finally:
        controller.stop()
    assert "19 sent, 0 deferred, 1 failed" in result.stdout
    shown = mailer("campaigns", "show", "1").stdout
    failures = shown.split("failures:")[1].split("bounces and unsubscribes:")
    assert re.search(rf"{dead}\s+failed\s+550\s+1 attempt\s+5\.1\.1 no such", failures[0])
    assert re.search(rf"\sbounced\s+{dead}\s+550 5\.1\.1 no such user here", failures[1])
    assert (
        "zoe.bronte@example.org\tZoë Brontë\tbounced" in mailer("subscribers", "ls", example).stdout
    )


def test_limit_pauses_and_says_how_to_resume(
    mailer: Invoke, example: str, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    env = smtp_env(controller.port)
    first = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes", "--limit", "5", env=env)
    assert first.exit_code == 0, first.output
    assert "15 not sent yet (--limit); resume with: mailer campaigns resume 1" in first.stdout
    resumed = mailer("campaigns", "resume", "1", env=env)
    assert "15 sent" in resumed.stdout
    assert len(recorder.counts()) == 20 and set(recorder.counts().values()) == {1}


@pytest.mark.parametrize("sender", ["Bounces <bounces@example.org>", "not an address"])
def test_a_bad_envelope_sender_is_one_line_before_anything_is_sent(
    mailer: Invoke, example: str, smtp_server: tuple[LoopbackController, Recorder], sender: str
) -> None:
    controller, recorder = smtp_server
    env = {**smtp_env(controller.port), "MAILER_SMTP_ENVELOPE_SENDER": sender}
    result = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes", env=env)
    assert result.exit_code == 1
    # checked when the settings load, before anything else: one line naming where and what
    assert result.stderr.startswith("error: MAILER_SMTP_ENVELOPE_SENDER: smtp.envelope_sender: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert recorder.received == []


def test_one_process_at_a_time_per_campaign(
    mailer: Invoke, workspace: Path, example: str, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    import fcntl

    controller, recorder = smtp_server
    env = smtp_env(controller.port)
    assert mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes", "--limit", "5",
                  env=env).exit_code == 0  # fmt: skip
    with (workspace / "subscribers" / ".campaign-1.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a resume running elsewhere would
        blocked = mailer("campaigns", "resume", "1", env=env)
    assert blocked.exit_code == 1
    assert "campaign 1 is being sent by another mailer process" in blocked.stderr
    assert len(recorder.received) == 5
    assert mailer("campaigns", "resume", "1", env=env).exit_code == 0
    assert len(recorder.received) == 20


CITY_REPORT = "---\nsubject: Weather\n---\n# Weather\n\nRain in {{ subscriber.attributes.city }}.\n"


def test_a_reader_the_report_fails_for_stops_send_before_anything_is_stored(
    mailer: Invoke, workspace: Path, example: str, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    report = workspace / "weather.md"
    report.write_text(CITY_REPORT, encoding="utf-8")
    db = sqlite3.connect(workspace / "subscribers" / "mailer.db", isolation_level=None)
    db.execute("UPDATE subscribers SET attributes = '{}' WHERE email = 'lukasz.nowak@example.net'")
    line = (f"error: {report}:6: 'dict object' has no attribute 'city'"
            " (for lukasz.nowak@example.net)\n")  # fmt: skip
    for flag in ("--yes", "--dry-run"):  # a send checks every reader as a dry run does
        result = mailer("send", str(report), "--list", example, flag, env=smtp_env(controller.port))
        assert (result.exit_code, result.stderr) == (1, line), result.output
    assert recorder.received == []
    assert "no campaigns yet" in mailer("campaigns", "ls").stderr


def test_resume_checks_the_readers_left_before_it_sends_again(
    mailer: Invoke, workspace: Path, example: str, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    env = smtp_env(controller.port)
    report = workspace / "weather.md"
    report.write_text(CITY_REPORT, encoding="utf-8")
    first = mailer("send", str(report), "--list", example, "--yes", "--limit", "5", env=env)
    assert first.exit_code == 0, first.output
    db = sqlite3.connect(workspace / "subscribers" / "mailer.db", isolation_level=None)
    left = db.execute("SELECT s.email, s.attributes FROM deliveries d JOIN subscribers s"
                      " ON s.id = d.subscriber_id WHERE d.status = 'queued'"
                      " ORDER BY s.id DESC").fetchone()  # fmt: skip
    db.execute("UPDATE subscribers SET attributes = '{}' WHERE email = ?", (left[0],))
    resumed = mailer("campaigns", "resume", "1", env=env)
    assert resumed.exit_code == 1
    assert resumed.stderr == (
        f"error: {report}:6: 'dict object' has no attribute 'city' (for {left[0]})\n"
    )
    assert len(recorder.received) == 5
    queued = db.execute("SELECT COUNT(*) FROM deliveries WHERE status = 'queued'").fetchone()
    assert queued == (15,)
    db.execute("UPDATE subscribers SET attributes = ? WHERE email = ?", (left[1], left[0]))
    assert mailer("campaigns", "resume", "1", env=env).exit_code == 0
    assert len(recorder.counts()) == 20 and set(recorder.counts().values()) == {1}


def test_control_characters_in_reader_values_stop_nothing_and_splice_nothing(
    mailer: Invoke, workspace: Path, example: str, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    from tests.message_checks import check_message

    controller, recorder = smtp_server
    report = workspace / "controls.md"
    report.write_text(
        "---\nsubject: Controls\n---\n# Controls\n\nHello {{ subscriber.name|e }} in"
        " {{ subscriber.attributes.city }} ({{ subscriber.attributes.city|e }}).\n",
        encoding="utf-8",
    )
    db = sqlite3.connect(workspace / "subscribers" / "mailer.db", isolation_level=None)
    values = {"zoe.bronte@example.org": ("Zoë", "b.\x03\n"),
              "jose.alvarez@example.com": ("\x000\x00", "\x000\x00")}  # fmt: skip
    for email, (name, city) in values.items():
        db.execute("UPDATE subscribers SET name = ?, attributes = ? WHERE email = ?",
                   (name, json.dumps({"city": city}), email))  # fmt: skip
    result = mailer("send", str(report), "--list", example, "--yes", env=smtp_env(controller.port))
    assert result.exit_code == 0, result.output
    assert "20 sent, 0 deferred, 0 failed, 0 skipped" in result.stdout
    assert len(recorder.counts()) == 20 and set(recorder.counts().values()) == {1}
    for received in recorder.received:
        assert check_message(received.data) == [], received.recipient
        html = received.message.get_body(("html",))
        assert html is not None and html.get_content().count("<!DOCTYPE html>") == 1
    mine = {r.recipient: r.message.get_body(("plain",)) for r in recorder.received}
    shown = {email: " ".join(str(part.get_content()).split()) for email, part in mine.items()}
    assert "Hello Zoë in b. (b. )." in shown["zoe.bronte@example.org"]  # its line break kept
    assert "Hello 0 in 0 (0)." in shown["jose.alvarez@example.com"]
