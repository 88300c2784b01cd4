"""One send to several lists and to a segment: each reader once, the lists and the expression
recorded, and a one-click unsubscribe that leaves every list of the campaign the reader is on."""

from __future__ import annotations

import json
import mailbox
import re
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import EXAMPLE_REPORT, Invoke, store
from tests.test_web import FORM, http, start_web

pytestmark = pytest.mark.usefixtures("engine")  # each test on SQLite, then PostgreSQL


def outbox_messages(folder: Path) -> dict[str, bytes]:
    """Each message in the Maildir, by its To address."""
    found: dict[str, bytes] = {}
    for path in (folder / "new").iterdir():
        raw = path.read_bytes()
        to = str(message_from_bytes(raw, policy=policy.default)["To"])
        assert to not in found, f"two copies for {to}"
        found[to] = raw
    return found


def membership(workspace: Path, slug: str, email: str) -> str | None:
    with store(workspace) as db:
        row = db.query_one(
            "SELECT m.status FROM memberships m JOIN lists l ON l.id = m.list_id"
            " JOIN subscribers s ON s.id = m.subscriber_id WHERE l.slug = ? AND s.email = ?",
            (slug, email),
        )
    return None if row is None else str(row[0])


def two_lists(mailer: Invoke, workspace: Path) -> None:
    """weekly: ada, bob (left), cy; letters (double opt-in): ada, bob, dee, eve (unconfirmed)."""
    mailer("lists", "create", "weekly", "--name", "Weekly")
    mailer("lists", "create", "letters", "--name", "Letters", "--double-opt-in")
    for email, city in (("ada", "Paris"), ("bob", "Oslo"), ("cy", "Paris")):
        mailer("subscribers", "add", "weekly", f"{email}@example.org", "--attr", f"city={city}")
    mailer("subscribers", "rm", "weekly", "bob@example.org")
    rows = "email,city\nada@example.org,Paris\nbob@example.org,Oslo\ndee@example.org,Lyon\n"
    (workspace / "letters.csv").write_text(rows)
    mailer("subscribers", "import", "letters", str(workspace / "letters.csv"), "--confirmed")
    mailer("subscribers", "add", "letters", "eve@example.org")  # asked to confirm, has not


def test_several_lists_send_each_reader_one_copy_and_record_the_lists(
    mailer: Invoke, workspace: Path
) -> None:
    two_lists(mailer, workspace)
    outbox = workspace / "sent"
    dry = mailer("send", str(EXAMPLE_REPORT), "--list", "weekly", "-l", "letters", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "4 messages rendered and checked for weekly + letters" in dry.stdout
    result = mailer("send", str(EXAMPLE_REPORT), "--list", "weekly", "--list", "letters",
                    "--yes", "--outbox", str(outbox))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "lists:     weekly + letters (4 readers)" in result.stdout
    sent = outbox_messages(outbox)
    # bob left weekly but is confirmed on letters; eve never confirmed; ada is on both: once
    assert sorted(sent) == ["ada@example.org", "bob@example.org", "cy@example.org",
                            "dee@example.org"]  # fmt: skip
    [record] = json.loads(mailer("campaigns", "ls", "--json").stdout)
    assert record["lists"] == ["weekly", "letters"] and record["list"] == "weekly"
    assert record["counts"]["sent"] == 4 and record["segment"] == ""
    shown = mailer("campaigns", "show", "1").stdout
    assert "lists:    weekly + letters" in shown
    body = message_from_bytes(sent["dee@example.org"], policy=policy.default)
    assert "Weekly & Letters" in body.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    again = mailer("send", str(EXAMPLE_REPORT), "--list", "letters", "--yes",
                   "--outbox", str(outbox))  # fmt: skip
    assert again.exit_code == 1
    assert "already sent to weekly + letters as campaign 1" in again.stderr


def test_one_click_from_a_several_list_campaign_leaves_each_list_the_reader_is_on(
    mailer: Invoke, workspace: Path
) -> None:
    two_lists(mailer, workspace)
    outbox = workspace / "sent"
    mailer("send", str(EXAMPLE_REPORT), "-l", "weekly", "-l", "letters", "--yes",
           "--outbox", str(outbox))  # fmt: skip
    sent = outbox_messages(outbox)
    live = start_web(workspace, {})
    try:
        links = {}
        for email in ("ada@example.org", "dee@example.org"):
            header = str(message_from_bytes(sent[email], policy=policy.default)["List-Unsubscribe"])
            found = re.search(r"<https?://[^/>]+(/u/[^>]+)>", header)
            assert found is not None, header
            links[email] = live.url + found.group(1)
        page = http("GET", links["ada@example.org"])
        assert page.status == 200 and "Weekly &amp; Letters" in page.body
        assert membership(workspace, "weekly", "ada@example.org") == "confirmed"
        headers = {**FORM, "User-Agent": "Google"}
        done = http("POST", links["ada@example.org"], b"List-Unsubscribe=One-Click", headers)
        assert done.status == 200
        assert membership(workspace, "weekly", "ada@example.org") == "unsubscribed"
        assert membership(workspace, "letters", "ada@example.org") == "unsubscribed"
        # dee is on letters only: the same kind of link leaves letters and joins nothing
        assert http("POST", links["dee@example.org"], b"", FORM).status == 200
        assert membership(workspace, "letters", "dee@example.org") == "unsubscribed"
        assert membership(workspace, "weekly", "dee@example.org") is None
        page = urlsplit(links["ada@example.org"])  # the button of that page: its Origin
        ours = {**FORM, "Origin": f"{page.scheme}://{page.netloc}"}
        back = http("POST", links["ada@example.org"].rstrip("/") + "/resubscribe", b"", ours)
        assert back.status == 200 and "Welcome back" in back.body
        assert membership(workspace, "weekly", "ada@example.org") == "confirmed"
        assert membership(workspace, "letters", "ada@example.org") == "confirmed"
    finally:
        live.stop()
    shown = json.loads(mailer("campaigns", "show", "1", "--json").stdout)
    left = [(e["kind"], e["email"]) for e in shown["fallout"]]
    # ada left both lists in one click: one fallout, not one per list
    assert left.count(("unsubscribed", "ada@example.org")) == 1
    assert ("unsubscribed", "dee@example.org") in left


def test_where_sends_to_a_segment_and_the_campaign_records_it(
    mailer: Invoke, workspace: Path
) -> None:
    two_lists(mailer, workspace)
    outbox = workspace / "sent"
    where = "city = 'Paris'"
    dry = mailer("send", str(EXAMPLE_REPORT), "-l", "weekly", "-l", "letters", "--where", where,
                 "--dry-run")  # fmt: skip
    assert dry.exit_code == 0, dry.output
    assert f"2 messages rendered and checked for weekly + letters where {where}" in dry.stdout
    sent = mailer("send", str(EXAMPLE_REPORT), "-l", "weekly", "-l", "letters", "--where", where,
                  "--yes", "--outbox", str(outbox))  # fmt: skip
    assert sent.exit_code == 0, sent.output
    assert sorted(outbox_messages(outbox)) == ["ada@example.org", "cy@example.org"]
    assert json.loads(mailer("campaigns", "show", "1", "--json").stdout)["segment"] == where
    assert f"segment:  {where}" in mailer("campaigns", "show", "1").stdout
    wrong = mailer("send", str(EXAMPLE_REPORT), "-l", "weekly", "--where", "cty = 'Paris'",
                   "--dry-run")  # fmt: skip
    assert wrong.exit_code == 1 and len(wrong.stderr.splitlines()) == 1
    assert "unknown field 'cty'" in wrong.stderr and "city" in wrong.stderr
    broken = mailer("send", str(EXAMPLE_REPORT), "-l", "weekly", "--where", "city = ",
                    "--dry-run")  # fmt: skip
    assert broken.exit_code == 1 and "column" in broken.stderr
    assert len(broken.stderr.splitlines()) == 1


def test_a_mailed_unsubscribe_from_a_several_list_campaign_leaves_each_of_its_lists(
    mailer: Invoke, workspace: Path
) -> None:
    two_lists(mailer, workspace)
    outbox = workspace / "sent"
    mailer("send", str(EXAMPLE_REPORT), "-l", "weekly", "-l", "letters", "--yes",
           "--outbox", str(outbox))  # fmt: skip
    header = str(message_from_bytes(outbox_messages(outbox)["ada@example.org"],
                                    policy=policy.default)["List-Unsubscribe"])  # fmt: skip
    mailto = re.search(r"<mailto:([^?>]+)", header)
    assert mailto is not None and "+unsubscribe-weekly@" in mailto.group(1)  # the first list
    box = mailbox.mbox(workspace / "unsub.mbox")
    for n, sender in enumerate(("ada@example.org", "dee@example.org", "cy@example.org")):
        box.add(f"From: <{sender}>\r\nTo: {mailto.group(1)}\r\nSubject: unsubscribe\r\n"
                f"Message-ID: <u{n}@mail.example.net>\r\n\r\n\r\n".encode())  # fmt: skip
    box.close()
    result = mailer("bounces", "process", str(workspace / "unsub.mbox"))
    assert result.exit_code == 0, result.output
    assert "3 unsubscribed, 0 unmatched" in result.stdout
    for slug, email in (("weekly", "ada"), ("letters", "ada"), ("letters", "dee"),
                        ("weekly", "cy")):  # fmt: skip
        assert membership(workspace, slug, f"{email}@example.org") == "unsubscribed"
    assert membership(workspace, "weekly", "dee@example.org") is None  # never on it


def test_subscribe_again_rejoins_only_what_the_link_left(mailer: Invoke, workspace: Path) -> None:
    """bob left weekly before the campaign and is confirmed on letters: leaving through the
    campaign's link and coming back must not put him on weekly again."""
    two_lists(mailer, workspace)
    outbox = workspace / "sent"
    mailer("send", str(EXAMPLE_REPORT), "-l", "weekly", "-l", "letters", "--yes",
           "--outbox", str(outbox))  # fmt: skip
    raw = outbox_messages(outbox)["bob@example.org"]
    header = str(message_from_bytes(raw, policy=policy.default)["List-Unsubscribe"])
    found = re.search(r"<https?://[^/>]+(/u/[^>]+)>", header)
    assert found is not None
    live = start_web(workspace, {})
    try:
        done = http("POST", live.url + found.group(1), b"", FORM)
        assert done.status == 200
        assert membership(workspace, "letters", "bob@example.org") == "unsubscribed"
        form = re.search(r'action="([^"]+)".*?name="lists" value="([^"]*)"', done.body, re.S)
        assert form is not None
        body = f"lists={form.group(2)}".encode()
        back = http("POST", live.url + form.group(1), body, {**FORM, "Origin": live.url})
        assert back.status == 200
    finally:
        live.stop()
    assert membership(workspace, "letters", "bob@example.org") == "confirmed"
    assert membership(workspace, "weekly", "bob@example.org") == "unsubscribed"


def test_a_campaign_resumes_after_one_of_its_lists_is_deleted(
    mailer: Invoke, workspace: Path
) -> None:
    two_lists(mailer, workspace)
    outbox = workspace / "sent"
    first = mailer("send", str(EXAMPLE_REPORT), "-l", "weekly", "-l", "letters", "--yes",
                   "--limit", "1", "--outbox", str(outbox))  # fmt: skip
    assert first.exit_code == 0, first.output
    assert mailer("lists", "rm", "weekly", "--yes").exit_code == 0
    more = mailer("campaigns", "resume", "1", "--limit", "1", "--outbox", str(outbox))
    assert more.exit_code == 0, more.output
    assert sorted(outbox_messages(outbox)) == ["ada@example.org", "bob@example.org"]
    assert mailer("lists", "rm", "letters", "--yes").exit_code == 0
    gone = mailer("campaigns", "resume", "1", "--outbox", str(outbox))
    assert gone.exit_code == 1
    assert "campaign 1: its lists were deleted (weekly, letters)" in gone.stderr
