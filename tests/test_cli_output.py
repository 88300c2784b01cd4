"""What `ls` and `show` print: --json with the README's stable keys on every one of them, a table
with headers on a terminal, tab-separated rows with a header row when piped, and `--since`."""

from __future__ import annotations

import json
import os
import pty
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailer import times
from mailer.errors import InputError
from tests.conftest import EXAMPLE_CSV, EXAMPLE_REPORT, PUBLICATION, Invoke
from tests.smtp_servers import FaultyServer, start

LIST_KEYS = {"slug", "name", "opt_in", "public_archive", "public_form", "created_at", "counts",
             "welcome_campaign"}  # fmt: skip
LIST_COUNTS = {"confirmed", "unconfirmed", "unsubscribed", "bounced", "blocklisted"}
MEMBER_KEYS = {"email", "name", "status", "subscriber_status", "attributes", "joined_at",
               "changed_at"}  # fmt: skip
CAMPAIGN_KEYS = {"id", "list", "lists", "segment", "subject", "status", "reason", "report",
                 "rate", "concurrency", "in_flight_limit", "created_at", "started_at",
                 "finished_at", "scheduled_at", "counts", "kind"}  # fmt: skip
DELIVERY_COUNTS = {"queued", "sent", "deferred", "failed", "skipped"}
HEADER = "address\tname\tstatus\tjoined\tlast change"


def parsed(mailer: Invoke, *args: str) -> object:
    result = mailer(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def weekly(mailer: Invoke) -> str:
    assert mailer("lists", "create", "weekly", "--name", "Weekly report").exit_code == 0
    mailer(
        "subscribers", "add", "weekly", "ada@example.org", "--name", "Ada", "--attr", "city=Oslo"
    )
    mailer("subscribers", "add", "weekly", "bob@example.org")
    mailer("subscribers", "rm", "weekly", "bob@example.org")
    return "weekly"


def test_lists_ls_json(mailer: Invoke, weekly: str) -> None:
    [record] = parsed(mailer, "lists", "ls")
    assert set(record) == LIST_KEYS and set(record["counts"]) == LIST_COUNTS
    assert record["slug"] == "weekly" and record["name"] == "Weekly report"
    assert record["opt_in"] == "single" and record["public_form"] is False
    assert record["counts"] == {"confirmed": 1, "unconfirmed": 0, "unsubscribed": 1,
                                "bounced": 0, "blocklisted": 0}  # fmt: skip
    assert datetime.fromisoformat(record["created_at"]).tzinfo is not None


def test_lists_show_json_and_text(mailer: Invoke, weekly: str) -> None:
    record = parsed(mailer, "lists", "show", "weekly")
    assert record == parsed(mailer, "lists", "ls")[0]  # type: ignore[index]
    text = mailer("lists", "show", "weekly").stdout
    assert "list weekly: Weekly report" in text
    assert "members:  1 confirmed, 0 unconfirmed, 1 unsubscribed" in text
    missing = mailer("lists", "show", "nope", "--json")
    assert missing.exit_code == 1 and missing.stdout == ""
    assert "no list 'nope'" in missing.stderr


def test_subscribers_ls_json(mailer: Invoke, weekly: str) -> None:
    ada, bob = parsed(mailer, "subscribers", "ls", "weekly")  # type: ignore[misc]
    assert set(ada) == set(bob) == MEMBER_KEYS
    assert (ada["email"], ada["name"], ada["status"]) == ("ada@example.org", "Ada", "confirmed")
    assert ada["attributes"] == {"city": "Oslo"} and ada["subscriber_status"] == "active"
    assert bob["status"] == "unsubscribed"
    assert bob["changed_at"] >= bob["joined_at"]


def test_subscribers_ls_piped_is_tab_separated_with_a_header(mailer: Invoke, weekly: str) -> None:
    mailer("subscribers", "add", "weekly", "cy@example.org", "--name", "Cy\tTab")
    header, *lines = mailer("subscribers", "ls", "weekly").stdout.splitlines()
    assert header == HEADER
    rows = [line.split("\t") for line in lines]
    assert [r[:3] for r in rows] == [["ada@example.org", "Ada", "confirmed"],
                                     ["bob@example.org", "", "unsubscribed"],
                                     ["cy@example.org", "Cy Tab", "confirmed"]]  # fmt: skip
    assert all(len(r) == 5 and datetime.fromisoformat(r[3]).tzinfo for r in rows)


def test_subscribers_ls_on_a_terminal_is_a_table(workspace: Path, weekly: str) -> None:
    """The real CLI with a pseudo-terminal as its output, as an editor runs it."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm", "NO_COLOR": "1"}
    command = [sys.executable, "-m", "mailer", "-w", str(workspace), "subscribers", "ls", "weekly"]
    process = subprocess.run(command, stdout=follower, stderr=follower, env=env, timeout=60)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal's other end closed: everything was read
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert process.returncode == 0
    text = re.sub(r"\x1b\[[0-9;]*m", "", shown.decode())  # bold headers
    lines = [line.split() for line in text.splitlines() if line.strip()]
    assert lines[0] == ["address", "name", "status", "joined", "last", "change"]
    assert lines[1][:3] == ["ada@example.org", "Ada", "confirmed"]
    assert lines[2][:2] == ["bob@example.org", "unsubscribed"]
    joined = " ".join(lines[1][3:5])  # local time, to the minute
    assert datetime.strptime(joined, "%Y-%m-%d %H:%M")
    assert "\t" not in text


def test_subscribers_ls_since(mailer: Invoke, workspace: Path, weekly: str) -> None:
    """Who unsubscribed this week: the last change is the membership's, or the reader's own
    when they bounced or were blocked."""
    mailer("subscribers", "add", "weekly", "cy@example.org")
    db = sqlite3.connect(workspace / "subscribers" / "mailer.db", isolation_level=None)
    db.execute("UPDATE memberships SET updated_at = '2026-01-05T10:00:00+00:00'")
    db.execute(
        "UPDATE subscribers SET status = 'bounced', updated_at = '2026-03-01T10:00:00+00:00'"
        " WHERE email = 'cy@example.org'"
    )

    def since(text: str, *more: str) -> list[str]:
        return [m["email"] for m in parsed(mailer, "subscribers", "ls", "weekly", "--since",
                                           text, *more)]  # type: ignore[union-attr]  # fmt: skip

    assert since("2026-01-01T00:00+00:00") == ["ada@example.org", "bob@example.org",
                                               "cy@example.org"]  # fmt: skip
    assert since("2026-02-01T00:00+00:00") == ["cy@example.org"]
    assert since("2026-02-01T00:00+00:00", "--status", "unsubscribed") == []
    assert since("2025-12-01", "--status", "unsubscribed") == ["bob@example.org"]
    assert since("2026-03-02") == []
    assert since("1000w") == ["ada@example.org", "bob@example.org", "cy@example.org"]
    wrong = mailer("subscribers", "ls", "weekly", "--since", "last tuesday")
    assert wrong.exit_code == 1 and wrong.stdout == ""
    assert wrong.stderr.startswith("error: invalid --since 'last tuesday': expected a date")
    assert len(wrong.stderr.splitlines()) == 1


def test_since_reads_dates_times_and_ages() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert times.since("7d", now=now) == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert times.since("12h", now=now) == datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
    assert times.since("2w", now=now) == datetime(2026, 11, 13, 12, 0, tzinfo=UTC)
    assert times.since("2026-11-23T08:00+01:00") == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    local_midnight = datetime(2026, 11, 23).astimezone()
    assert times.since("2026-11-23") == local_midnight
    for bad in ("", "7", "d7", "2026-13-01", "-3d", "0001-01-01T00:00:00+01:00"):
        with pytest.raises(InputError, match="invalid --since"):
            times.since(bad)


def test_campaigns_ls_and_show_json(mailer: Invoke, workspace: Path) -> None:
    mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    gone = "jose.alvarez@example.com"
    server = FaultyServer(rule=lambda rcpt, attempt: "550" if rcpt == gone else None)
    controller = start(server)
    try:
        env = {"MAILER_SMTP_HOST": "127.0.0.1", "MAILER_SMTP_PORT": str(controller.port),
               "MAILER_SMTP_SECURITY": "none", **PUBLICATION}  # fmt: skip
        sent = mailer("send", str(EXAMPLE_REPORT), "--list", "example", "--yes", "--rate", "0",
                      env=env)  # fmt: skip
    finally:
        controller.stop()
    assert sent.exit_code in (0, 1), sent.output
    mailer("subscribers", "rm", "example", "zoe.bronte@example.org")
    [record] = parsed(mailer, "campaigns", "ls")  # type: ignore[misc]
    assert set(record) == CAMPAIGN_KEYS and set(record["counts"]) == DELIVERY_COUNTS
    assert record["id"] == 1 and record["list"] == "example" and record["status"] == "done"
    assert record["counts"]["failed"] == 1 and record["counts"]["sent"] == 19
    assert record["report"] == str(EXAMPLE_REPORT)
    shown = parsed(mailer, "campaigns", "show", "1")
    assert isinstance(shown, dict)
    assert set(shown) == CAMPAIGN_KEYS | {"failures", "fallout", "editions", "workers"}
    assert shown["workers"] == []  # one process sent it, not `campaigns work`
    assert {k: shown[k] for k in CAMPAIGN_KEYS} == record
    [failure] = shown["failures"]
    assert set(failure) == {"email", "status", "code", "attempts", "error"}
    assert (failure["email"], failure["status"], failure["code"]) == (gone, "failed", 550)
    kinds = {(e["kind"], e["email"]) for e in shown["fallout"]}
    assert ("unsubscribed", "zoe.bronte@example.org") in kinds
    assert all(set(e) == {"at", "kind", "email", "detail"} for e in shown["fallout"])
    header = mailer("campaigns", "ls").stdout.splitlines()[0]
    assert header.split("\t") == ["id", "list", "kind", "status", "queued", "sent", "deferred",
                                  "failed", "skipped", "created", "subject"]  # fmt: skip


def test_empty_ls_say_so_on_stderr_and_keep_stdout_parseable(mailer: Invoke) -> None:
    mailer("lists", "create", "weekly")
    campaigns = mailer("campaigns", "ls")
    assert "no campaigns yet" in campaigns.stderr
    assert campaigns.stdout.count("\n") == 1  # the header row only
    assert parsed(mailer, "campaigns", "ls") == []
    assert parsed(mailer, "subscribers", "ls", "weekly") == []
    assert mailer("subscribers", "ls", "weekly").stdout == HEADER + "\n"


def test_joined_is_kept_through_later_changes(mailer: Invoke, workspace: Path) -> None:
    mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    imported = parsed(mailer, "subscribers", "ls", "example")
    assert all(m["joined_at"] and m["joined_at"] == m["changed_at"] for m in imported)  # type: ignore[union-attr, index]
    db = sqlite3.connect(workspace / "subscribers" / "mailer.db", isolation_level=None)
    old = "2025-06-01T09:00:00+00:00"
    db.execute("UPDATE memberships SET joined_at = ?, updated_at = ?", (old, old))
    mailer("subscribers", "rm", "example", "zoe.bronte@example.org")
    back = mailer("subscribers", "add", "example", "zoe.bronte@example.org", "--resubscribe")
    assert back.exit_code == 0, back.output
    members = {m["email"]: m for m in parsed(mailer, "subscribers", "ls", "example")}  # type: ignore[union-attr]
    zoe = members["zoe.bronte@example.org"]
    assert zoe["joined_at"] == old and zoe["changed_at"] > old and zoe["status"] == "confirmed"
    assert members["jose.alvarez@example.com"]["changed_at"] == old


def test_an_imported_departure_is_dated_as_its_source_dates_it(
    mailer: Invoke, workspace: Path
) -> None:
    """Mailchimp's unsubscribed export: who unsubscribed this week is not who was imported."""
    header = ("Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,"
              "CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,UNSUB_TIME,"
              "UNSUB_CAMPAIGN_TITLE,UNSUB_CAMPAIGN_ID,UNSUB_REASON,UNSUB_REASON_OTHER,LEID,EUID,"
              "NOTES,TAGS")  # fmt: skip
    row = ("ann@example.org,Ann,Lee,2,2021-03-01 10:00:00,,2021-03-01 10:05:00,,,,,,,,,"
           "2024-05-02 08:00:00,May issue,abc,NO_LONGER_INTERESTED,,1,e1,,")  # fmt: skip
    export = workspace / "unsubscribed_members_export_1.csv"
    export.write_text(f"{header}\n{row}\n")
    mailer("lists", "create", "weekly")
    assert mailer("subscribers", "import", "weekly", str(export)).exit_code == 0
    [ann] = parsed(mailer, "subscribers", "ls", "weekly")  # type: ignore[misc]
    assert ann["status"] == "unsubscribed"
    assert ann["joined_at"] == "2021-03-01T10:00:00+00:00"
    assert ann["changed_at"] == "2024-05-02T08:00:00+00:00"
    this_week = ("--since", "7d", "--status", "unsubscribed")
    assert parsed(mailer, "subscribers", "ls", "weekly", *this_week) == []
