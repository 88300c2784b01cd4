"""Spam complaints: ARF feedback reports (RFC 5965) around messages mailer sent block their
reader on every list, found by VERP, the report's fields or the quoted headers; other feedback,
unknown readers and a second run change nothing."""

from __future__ import annotations

import itertools
import mailbox
from email import message_from_bytes, policy
from email.message import Message
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import pytest

from mailer.bounces.fallout import campaign_fallout
from mailer.bounces.parse import read_message
from mailer.tokens import Signer
from tests.conftest import EXAMPLE_REPORT, Invoke
from tests.test_bounces import open_store, postfix_bounce, seed, snapshot, status_of
from tests.test_suppression import send, statuses

READERS = ("ada", "bob", "cy", "dee", "eve")
_serial = itertools.count(1)


def arf(
    original: bytes,
    feedback_type: str = "abuse",
    *,
    rcpt_to: str = "",
    headers_only: bool = False,
    drop: tuple[str, ...] = (),
    redact: bool = False,
) -> bytes:
    """A feedback report as a mailbox provider's loop sends it: a human part, the
    message/feedback-report fields, and the original (whole, or its headers), without the
    headers in ``drop`` and with its recipient redacted if asked."""
    quoted = message_from_bytes(original, policy=policy.compat32)
    for name in drop:
        del quoted[name]
    if redact:
        for name in ("To", "Delivered-To"):
            quoted.replace_header(name, "redacted@mx.example.net")
    fields = Message()
    fields["Feedback-Type"] = feedback_type
    fields["User-Agent"] = "ExampleFBL/1.0"
    fields["Version"] = "1"
    fields["Original-Mail-From"] = "<bulletin@example.org>"
    if rcpt_to:
        fields["Original-Rcpt-To"] = f"<{rcpt_to}>"
    fields["Arrival-Date"] = "Sat, 28 Nov 2026 10:30:00 +0000"
    fields["Reporting-MTA"] = "dns; mx.example.net"
    fields["Source-IP"] = "192.0.2.25"
    report = MIMEMultipart("report")
    report.set_param("report-type", "feedback-report")
    report["From"] = "Feedback Loop <fbl@mx.example.net>"
    report["To"] = "fbl@example.org"
    report["Subject"] = "FW: Lower Vale Water Survey"
    report["Message-ID"] = f"<arf{next(_serial)}@mx.example.net>"
    report.attach(MIMEText("This is an email abuse report for a message received from you.\n"))
    report.attach(MIMEMessage(fields, "feedback-report"))
    if headers_only:
        head = quoted.as_string(policy=policy.compat32).split("\n\n", 1)[0]
        report.attach(MIMEText(head + "\n", "rfc822-headers"))
    else:
        report.attach(MIMEMessage(quoted))
    return report.as_bytes(policy=policy.SMTP)


def sent(workspace: Path) -> dict[str, bytes]:
    """The messages in the outbox Maildir, by their reader (the Delivered-To line)."""
    found = {}
    for path in (workspace / "outbox" / "new").glob("*"):
        data = path.read_bytes()
        found[data.split(b"\r\n", 2)[1].removeprefix(b"Delivered-To: ").decode()] = data
    return found


def deliver(workspace: Path, messages: list[bytes]) -> Path:
    folder = mailbox.Maildir(workspace / "fbl")
    for data in messages:
        folder.add(data)
    folder.close()
    return workspace / "fbl"


def complaints(workspace: Path) -> list[tuple[str, int | None, int | None, str]]:
    with open_store(workspace) as store:
        rows = store.query(
            "SELECT s.email, e.campaign_id, e.list_id, e.detail FROM events e"
            " JOIN subscribers s ON s.id = e.subscriber_id WHERE e.kind = 'complaint'"
            " ORDER BY s.email"
        )
    return [(str(r[0]), r[1], r[2], str(r[3])) for r in rows]


@pytest.mark.usefixtures("engine")  # on SQLite, then PostgreSQL
def test_a_complaint_blocks_its_reader_everywhere_and_only_once(
    mailer: Invoke, workspace: Path
) -> None:
    assert mailer("lists", "create", "weekly").exit_code == 0
    assert mailer("lists", "create", "letters").exit_code == 0
    for name in READERS:
        assert mailer("subscribers", "add", "weekly", f"{name}@example.org").exit_code == 0
    assert mailer("subscribers", "add", "letters", "ada@example.org").exit_code == 0
    verp = {"MAILER_BOUNCES_VERP": "true"}
    first = mailer("send", str(EXAMPLE_REPORT), "--list", "weekly", "--yes", env=verp)
    assert first.exit_code == 0, first.output
    issue = sent(workspace)
    assert issue["ada@example.org"].startswith(b"Return-Path: <bounces+")

    def of(name: str) -> bytes:
        return issue[f"{name}@example.org"]

    reports = [
        # The recipient redacted and no Message-ID: only our signed return path names ada.
        arf(of("ada"), redact=True, drop=("Message-ID",)),
        # Phishing, the report's Original-Rcpt-To names bob; his Message-ID, the campaign.
        arf(of("bob"), "fraud", rcpt_to="bob@example.org", headers_only=True, redact=True,
            drop=("Return-Path",)),
        # Nothing but the quoted Message-ID, which mailer makes per reader.
        arf(of("cy"), headers_only=True, redact=True, drop=("Return-Path",)),
        # Nothing but the quoted To.
        arf(of("dee"), headers_only=True, drop=("Return-Path", "Message-ID")),
        # "This is not spam": nothing to do.
        arf(of("eve"), "not-spam", rcpt_to="eve@example.org"),
        # Someone we never mailed.
        arf(of("eve").replace(b"eve@example.org", b"stranger@example.net").replace(
            b"Message-ID: <", b"Message-ID: <x"), rcpt_to="stranger@example.net",
            headers_only=True, drop=("Return-Path",)),
    ]  # fmt: skip
    folder = deliver(workspace, reports)

    result = mailer("bounces", "process", str(folder))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "6 messages read: 0 hard, 0 soft, 0 unsubscribed, 4 complaints, 0 unmatched,"
        " 2 unrecognised, 0 already processed; 0 readers now bounced"
    )
    notes = result.stderr.strip().splitlines()
    assert len(notes) == 2, result.stderr
    assert any(n.endswith(": feedback report (not-spam): not a complaint") for n in notes)
    assert any(
        n.endswith(": abuse report from mx.example.net about stranger@example.net: names no"
                   " reader we know") for n in notes
    )  # fmt: skip

    with open_store(workspace) as store:
        [(campaign, weekly)] = store.query("SELECT id, list_id FROM campaigns")
        fallout = {(f.kind, f.email) for f in campaign_fallout(store, campaign)}
    assert complaints(workspace) == [
        ("ada@example.org", campaign, weekly, "abuse report from mx.example.net"),
        ("bob@example.org", campaign, weekly, "fraud report from mx.example.net"),
        ("cy@example.org", campaign, weekly, "abuse report from mx.example.net"),
        ("dee@example.org", None, None, "abuse report from mx.example.net"),
    ]
    assert {("complaint", f"{n}@example.org") for n in ("ada", "bob", "cy")} <= fallout
    assert statuses(workspace, "ada@example.org") == (
        "blocklisted",
        {"weekly": "confirmed", "letters": "confirmed"},
    )  # memberships kept: `unblock` gives them back
    for name in ("bob", "cy", "dee"):
        assert statuses(workspace, f"{name}@example.org") == (
            "blocklisted",
            {"weekly": "confirmed"},
        )
    assert statuses(workspace, "eve@example.org") == ("active", {"weekly": "confirmed"})
    assert send(mailer, workspace, "weekly") == {"eve@example.org": 1}
    letters = mailer("send", str(EXAMPLE_REPORT), "--list", "letters", "--yes")
    assert letters.exit_code == 1 and "letters: no confirmed, active readers" in letters.output

    with open_store(workspace) as store:
        before = snapshot(store)
    again = mailer("bounces", "process", str(folder))
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("0 messages read: 0 hard, 0 soft, 0 unsubscribed, 0 unmatched")
    # The same reports delivered again (a provider resends them): read, and nothing done.
    deliver(workspace, reports)
    resent = mailer("bounces", "process", str(folder))
    assert resent.exit_code == 0, resent.output
    assert resent.stdout.strip() == (
        "6 messages read: 0 hard, 0 soft, 0 unsubscribed, 0 unmatched, 0 unrecognised,"
        " 6 already processed; 0 readers now bounced"
    )
    with open_store(workspace) as store:
        assert snapshot(store) == before

    unblocked = mailer("subscribers", "unblock", "ada@example.org")
    assert unblocked.exit_code == 0, unblocked.output
    assert unblocked.stdout.startswith("unblocked ada@example.org (blocked after a complaint):")


@pytest.mark.usefixtures("engine")  # on SQLite, then PostgreSQL
def test_a_bounced_reader_who_complains_is_blocked_and_stays_unmailed_after_unblock(
    mailer: Invoke, workspace: Path
) -> None:
    """A complaint about an earlier issue, read after the address bounced: blocked, and an
    unblock leaves them bounced. A second complaint about them writes no second event."""
    message_id = "<c1.1.0ada@example.org>"
    with open_store(workspace) as store:
        seed(store, {"ada@example.org": message_id, "bob@example.org": ""})
    original = (
        f"Return-Path: <bulletin@example.org>\r\nFrom: The Example Bulletin"
        f" <bulletin@example.org>\r\nTo: ada@example.org\r\nSubject: This week\r\n"
        f"Message-ID: {message_id}\r\n\r\nHello\r\n"
    ).encode()
    bounce = postfix_bounce("ada@example.org", "bulletin@example.org", message_id=message_id)
    folder = deliver(workspace, [bounce, arf(original), arf(original, rcpt_to="ada@example.org")])
    result = mailer("bounces", "process", str(folder))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("3 messages read: 1 hard, 0 soft, 0 unsubscribed, 2 complaints")
    assert [kind for kind, _ in _events(workspace)] == ["bounced", "complaint"]
    assert status_of_reader(workspace) == "blocklisted"
    unblocked = mailer("subscribers", "unblock", "ada@example.org")
    assert unblocked.exit_code == 0, unblocked.output
    assert "(blocked after a complaint), but their address bounced" in unblocked.stdout
    assert status_of_reader(workspace) == "bounced"


def _events(workspace: Path) -> list[tuple[str, str]]:
    with open_store(workspace) as store:
        rows = store.query(
            "SELECT kind, detail FROM events e JOIN subscribers s ON s.id = e.subscriber_id"
            " WHERE s.email = 'ada@example.org' AND kind != 'subscribed' ORDER BY e.id"
        )
    return [(str(r[0]), str(r[1])) for r in rows]


def status_of_reader(workspace: Path) -> str:
    with open_store(workspace) as store:
        return status_of(store, "ada@example.org")


ORIGINAL = (
    b"Return-Path: <bulletin@example.org>\r\nFrom: bulletin@example.org\r\n"
    b"To: ada@example.org\r\nSubject: This week\r\nMessage-ID: <k.1.0@example.org>\r\n\r\nHi\r\n"
)


@pytest.mark.parametrize(
    ("feedback_type", "kind"),
    [("abuse", "complaint"), ("fraud", "complaint"), ("Abuse", "complaint"),
     ("virus", "other"), ("not-spam", "other"), ("other", "other"), ("auth-failure", "other")],
)  # fmt: skip
def test_only_abuse_and_fraud_are_complaints(feedback_type: str, kind: str) -> None:
    reading = read_message(arf(ORIGINAL, feedback_type), Signer(b"k" * 32))
    assert reading.kind == kind
    assert reading.failures == ()  # never taken for a bounce
    if kind == "other":
        assert reading.reason == f"feedback report ({feedback_type}): not a complaint"
    else:
        assert reading.complaint is not None
        assert reading.complaint.addresses == ("ada@example.org",)
        assert reading.original_message_id == "<k.1.0@example.org>"
