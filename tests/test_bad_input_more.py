"""More bad input, each one clear line and exit 1: unreadable templates, a closed stdin,
times past the calendar's edge, numbers too large for the store, front matter's controls."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path

import pytest

from mailer import config, times
from mailer.audience.segments import SegmentError, compile_segment
from mailer.cli.output import local
from mailer.compose.templates import packaged_templates
from mailer.compose.transactional import build_notice
from mailer.errors import FileInputError, InputError
from tests.conftest import PUBLICATION, Invoke
from tests.test_web import http, start_web

REPORT = "# T\n\nhello\n"
COMMAND = [sys.executable, "-m", "mailer"]


def one_clean_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.fixture
def weekly(mailer: Invoke, workspace: Path) -> Path:
    """A workspace with the list weekly, one reader, and a report; the report's path."""
    assert mailer("init").exit_code == 0
    assert mailer("lists", "create", "weekly").exit_code == 0
    assert mailer("subscribers", "add", "weekly", "ada@example.org").exit_code == 0
    report = workspace / "rep.md"
    report.write_text(REPORT)
    (workspace / "templates").mkdir()
    return report


@pytest.fixture
def in_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's zone for this test is the TZ it sets (put back afterwards)."""
    yield
    monkeypatch.undo()
    time.tzset()


def set_zone(monkeypatch: pytest.MonkeyPatch, zone: str) -> None:
    monkeypatch.setenv("TZ", zone)
    time.tzset()


def no_campaigns(mailer: Invoke) -> bool:
    return bool(json.loads(mailer("campaigns", "ls", "--json").stdout) == [])


# 1. Templates that cannot be read


@pytest.mark.parametrize(
    ("name", "data", "said"),
    [
        ("newsletter.html.j2", b"ok\nCaf\xe9 {{ report.html }}\n", ":2: not UTF-8 text ("),
        ("notes.j2", b"\xff", ":1: not UTF-8 text (invalid start byte)"),
    ],
)
def test_a_template_that_is_not_utf8_is_named(
    mailer: Invoke, workspace: Path, weekly: Path, name: str, data: bytes, said: str
) -> None:
    (workspace / "templates" / name).write_bytes(data)
    for args in (["render", str(weekly), "--out", str(workspace / "D")],
                 ["send", str(weekly), "--list", "weekly", "--yes"]):  # fmt: skip
        result = mailer(*args)
        assert result.exit_code == 1, result.output
        line = one_clean_line(result.stderr)
        assert line.startswith(f"error: {workspace / 'templates' / name}{said}"), line
    assert no_campaigns(mailer)
    assert not (workspace / "D").exists()


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("foo.j2", "a link to /nonexistent, which does not exist"),
        ("newsletter.txt.j2", "a link to /nonexistent, which does not exist"),
        ("pipe.j2", "not a regular file"),
    ],
)
def test_a_template_that_is_no_file_is_named(
    mailer: Invoke, workspace: Path, weekly: Path, name: str, said: str
) -> None:
    path = workspace / "templates" / name
    if said.startswith("a link"):
        path.symlink_to("/nonexistent")
    else:
        os.mkfifo(path)
    result = mailer("send", str(weekly), "--list", "weekly", "--yes")
    assert result.exit_code == 1, result.output
    assert one_clean_line(result.stderr) == f"error: {path}: {said}"
    assert no_campaigns(mailer)


def test_a_notice_template_that_is_not_utf8_is_named(workspace: Path) -> None:
    own = workspace / "templates"
    own.mkdir()
    (own / "confirm.txt.j2").write_bytes(b"Hello\n\xe9\n")
    newsletter = config.load(workspace, PUBLICATION).newsletter
    with pytest.raises(FileInputError) as raised:
        build_notice(newsletter, "ada@example.org", False, ("confirm.txt.j2", "confirm.html.j2"),
                     "Confirm", {"lang": "en"}, [own, packaged_templates()], "confirm")  # fmt: skip
    assert str(raised.value).startswith(f"{own / 'confirm.txt.j2'}:2: not UTF-8 text (")


# 2. Standard input closed


def closed_stdin(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    shell = ["sh", "-c", 'exec "$@" <&-', "sh", *COMMAND, "-w", str(workspace), *args]
    return subprocess.run(shell, capture_output=True, text=True, timeout=60)


def test_a_closed_stdin_is_no_terminal_to_ask(
    mailer: Invoke, workspace: Path, weekly: Path
) -> None:
    for args, said in [
        (["lists", "rm", "weekly"], "refusing to delete list 'weekly' without --yes"),
        (["subscribers", "forget", "ada@example.org"], "refusing to erase ada@example.org"),
        (["send", str(weekly), "--list", "weekly"], "refusing to send without --yes"),
    ]:
        result = closed_stdin(workspace, *args)
        assert result.returncode == 1, result.stderr
        line = one_clean_line(result.stderr)
        assert line.startswith(f"error: {said}") and line.endswith("(no terminal to ask)"), line
    assert no_campaigns(mailer)
    assert "ada@example.org" in mailer("subscribers", "ls", "weekly").stdout


def test_work_with_a_closed_stdin_has_nothing_to_do(workspace: Path, weekly: Path) -> None:
    result = closed_stdin(workspace, "campaigns", "work", "-")
    assert (result.returncode, result.stderr) == (0, "")


def test_a_closed_stdout_is_one_line(workspace: Path, weekly: Path) -> None:
    shell = ["sh", "-c", 'exec "$@" >&-', "sh", *COMMAND, "-w", str(workspace), "lists", "ls"]
    result = subprocess.run(shell, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert one_clean_line(result.stderr).startswith("error: standard output is closed")


# 3. and 4. Times at the calendar's edge


def test_since_before_year_one_on_the_clock(
    mailer: Invoke, weekly: Path, monkeypatch: pytest.MonkeyPatch, in_zone: None
) -> None:
    for zone in ("UTC", "Europe/Paris", "America/New_York"):
        set_zone(monkeypatch, zone)
        with pytest.raises(InputError, match="outside the years 1 to 9999"):
            times.since("0001-01-01")
        result = mailer("subscribers", "ls", "weekly", "--since", "0001-01-01")
        assert result.exit_code == 1
        assert one_clean_line(result.stderr) == (
            "error: invalid --since '0001-01-01': outside the years 1 to 9999"
        )


def test_local_shows_a_stamp_past_the_edge_as_stored(
    monkeypatch: pytest.MonkeyPatch, in_zone: None
) -> None:
    set_zone(monkeypatch, "Europe/Paris")
    assert local("9999-12-31T23:59:00+00:00") == "9999-12-31T23:59:00+00:00"
    assert local("not a time") == "not a time"
    edge = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    assert times.localised(edge, "Pacific/Kiritimati") == edge


def test_a_campaign_stored_at_the_edge_still_lists(
    mailer: Invoke, workspace: Path, weekly: Path
) -> None:
    soon = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    at = mailer("send", str(weekly), "--list", "weekly", "--at", soon, "--tz", "UTC", "--yes")
    assert at.exit_code == 0, at.output
    with sqlite3.connect(workspace / "subscribers" / "mailer.db") as database:
        database.execute("UPDATE campaigns SET scheduled_at = '9999-12-31T23:59:00+00:00'")
    env = {**os.environ, "TZ": "Europe/Paris", "COLUMNS": "300"}
    main, terminal = os.openpty()  # on a terminal, `ls` shows local times
    with os.fdopen(main, "rb") as screen:
        for args in (["campaigns", "ls"], ["campaigns", "show", "1"]):
            shown = subprocess.run([*COMMAND, "-w", str(workspace), *args], env=env,
                                   stdout=terminal, stderr=subprocess.PIPE, text=True,
                                   timeout=60)  # fmt: skip
            assert (shown.returncode, shown.stderr) == (0, ""), shown.stderr
            assert b"9999-12-31T23:59:00+00:00" in screen.read1(65536)
        os.close(terminal)


def test_at_more_than_a_year_ahead_is_refused(mailer: Invoke, weekly: Path) -> None:
    result = mailer("send", str(weekly), "--list", "weekly", "--at", "9999-12-31 23:59",
                    "--tz", "UTC", "--yes")  # fmt: skip
    assert result.exit_code == 1
    assert one_clean_line(result.stderr) == (
        "error: --at '9999-12-31 23:59' is more than a year ahead (9999-12-31 23:59:00+00:00):"
        " a typo? give a time within a year"
    )
    assert no_campaigns(mailer)
    ahead = datetime.now(UTC) + times.AHEAD
    for days, fine in ((-1, True), (1, False)):
        text = (ahead + timedelta(days=days)).strftime("%Y-%m-%d %H:%M")
        if fine:
            assert times.at(text, "UTC") > datetime.now(UTC)
        else:
            with pytest.raises(InputError, match="more than a year ahead"):
                times.at(text, "UTC")


# 5. --where numbers the store cannot hold


def test_a_where_number_too_large_is_the_expressions_error(mailer: Invoke, weekly: Path) -> None:
    assert (
        mailer("subscribers", "add", "weekly", "bob@example.org", "--attr", "age=30").exit_code == 0
    )
    where = "age > 9223372036854775808"
    result = mailer("send", str(weekly), "--list", "weekly", "--dry-run", "--where", where)
    assert result.exit_code == 1
    assert one_clean_line(result.stderr) == (
        "error: --where: column 7: the number 9223372036854775808 is out of range"
        f' (-9223372036854775807 to 9223372036854775807) in "{where}"'
    )
    for text, column in [(f"age in (1, {'9' * 5000})", 12), (f"age < -{'1' * 400}.5", 7)]:
        with pytest.raises(SegmentError, match="is out of range") as raised:
            compile_segment(text, {"age"})
        assert raised.value.column == column
    fits = compile_segment("age in (9223372036854775807, -9223372036854775807, 1.5)", {"age"})
    assert fits.params == [9223372036854775807, -9223372036854775807, 1.5]
    near = "age < 9223372036854775807"
    done = mailer("send", str(weekly), "--list", "weekly", "--dry-run", "--where", near)
    assert done.exit_code == 0, done.output


# 6. and 8. Front matter


def test_a_bad_lang_names_its_line(mailer: Invoke, workspace: Path) -> None:
    report = workspace / "l.md"
    report.write_text("---\nsubject: S\nlang: 5\n---\n# T\n")
    result = mailer("render", str(report))
    assert result.exit_code == 1
    assert one_clean_line(result.stderr) == (
        f"error: {report}:3: lang '5' is not a language tag such as en or de-CH"
    )


CONTROLLED = (
    '---\nsubject: "Alert \\e[1m now"\npreheader: "short \\x01 note \\x9b"\n---\n# T\n\nhi\n'
)


def test_front_matter_controls_never_reach_the_subject_or_the_feed(
    mailer: Invoke, workspace: Path
) -> None:
    report = workspace / "alert.md"
    report.write_text(CONTROLLED)
    live = start_web(workspace, PUBLICATION)
    try:
        env = {**PUBLICATION, "MAILER_NEWSLETTER_BASE_URL": live.url}
        assert mailer("lists", "create", "weekly", "--public-archive", env=env).exit_code == 0
        mailer("subscribers", "add", "weekly", "ada@example.org", env=env)
        outbox = workspace / "outbox"
        sent = mailer("send", str(report), "--list", "weekly", "--yes", "--outbox", str(outbox),
                      env=env)  # fmt: skip
        assert sent.exit_code == 0, sent.output
        feed = http("GET", f"{live.url}/archive/feed.xml")
    finally:
        live.stop()
    assert feed.status == 200
    for bad in ("\x1b", "\x01", "\x9b"):
        assert bad not in feed.body
    root = ET.fromstring(feed.body)  # well-formed XML
    entry = root.find("{http://www.w3.org/2005/Atom}entry")
    assert entry is not None
    assert entry.findtext("{http://www.w3.org/2005/Atom}title") == "Alert [1m now"
    assert entry.findtext("{http://www.w3.org/2005/Atom}summary") == "short note"
    (message,) = (outbox / "new").iterdir()
    assert message_from_bytes(message.read_bytes())["Subject"] == "Alert [1m now"
    stored = json.loads(mailer("campaigns", "ls", "--json").stdout)
    assert [campaign["subject"] for campaign in stored] == ["Alert [1m now"]


# 7. A campaign id no campaign can have


def test_work_on_a_number_past_every_id_says_no_campaign(mailer: Invoke, weekly: Path) -> None:
    for number in ("999999999999999999999", "0"):
        said = {
            one_clean_line(mailer("campaigns", command, number).stderr)
            for command in ("work", "show", "resume", "retry")
        }
        assert said == {f"error: no campaign '{number}' (see `mailer campaigns ls`)"}, said
    result = mailer("campaigns", "work", "0" + "9" * 5000)  # int() refuses so many digits
    assert result.exit_code == 1
    assert (
        one_clean_line(result.stderr)
        == f"error: no campaign '{'9' * 5000}' (see `mailer campaigns ls`)"
    )
