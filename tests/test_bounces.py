"""Bounce processing: the DSN corpus, Maildir and mbox sources, VERP, soft-bounce score,
mailto unsubscribes, idempotence, dry runs, bad sources, and a campaign's fallout."""

from __future__ import annotations

import itertools
import mailbox
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailer import config
from mailer.audience import lists, members, subscriptions
from mailer.bounces.apply import process
from mailer.bounces.fallout import campaign_fallout
from mailer.bounces.parse import read_message
from mailer.bounces.sources import MaildirSource, open_source
from mailer.db.database import Database
from mailer.models import Candidate
from mailer.send.campaigns import Campaigns
from mailer.send.deliveries import PENDING, CampaignLog
from mailer.send.recipients import Audience
from mailer.send.types import Result
from mailer.tokens import Signer, load_secret, verp_local_part
from tests.conftest import Invoke, store

DSN = Path(__file__).parent / "data" / "dsn"

# file, reported recipient, hard/soft, status, Message-ID of the message that bounced
CORPUS = [
    ("gmail-hard-5.1.1.eml", "reader.gone@gmail.com", "hard", "5.1.1",
     "<1.42.3f9c0a7b21d4e8aa@example.org>"),
    ("gmail-delay-4.2.2.eml", "quota.full@gmail.com", "soft", "4.2.2",
     "<1.43.77aa01b2c3d4e5f6@example.org>"),
    ("outlook-hard-5.1.10.eml", "nobody.here@outlook.com", "hard", "5.1.10",
     "<1.44.0badc0ffee123456@example.org>"),
    ("yahoo-hard-554.eml", "closed.account@yahoo.com", "hard", "",
     "<1.45.5eed5eed5eed5eed@example.org>"),
    ("exim-hard-550.eml", "old.user@example.net", "hard", "5.1.1",
     "<1.46.abcdef0123456789@example.org>"),
    ("exim-delay-warning.eml", "slow.server@example.net", "soft", "4.0.0",
     "<1.47.fedcba9876543210@example.org>"),
    ("qmail-hard-5.1.1.eml", "no.mailbox@example.com", "hard", "5.1.1",
     "<1.48.0123abcd4567ef89@example.org>"),
    ("postfix-hard-5.1.1.eml", "left.company@example.com", "hard", "5.1.1",
     "<1.49.99aa88bb77cc66dd@example.org>"),
    ("postfix-delayed-4.4.1.eml", "down.host@example.net", "soft", "4.4.1",
     "<1.50.1122334455667788@example.org>"),
    ("postfix-expired-4.2.2.eml", "always.full@example.net", "soft", "4.2.2",
     "<1.51.aabbccddeeff0011@example.org>"),
]  # fmt: skip
NOT_BOUNCES = {
    "vacation-autoreply.eml": "other",
    "relayed-notification.eml": "other",
    "mailto-unsubscribe-gmail.eml": "unsubscribe",
}
HARD = [row[1] for row in CORPUS if row[2] == "hard"]
SOFT = [row[1] for row in CORPUS if row[2] == "soft"]
_serial = itertools.count(1)


# helpers shared with test_bounces_postfix.py and test_bounces_imap.py


def open_store(workspace: Path) -> Database:
    return store(workspace)  # on the test's engine


def seed(
    store: Database, message_ids: dict[str, str], slug: str = "weekly"
) -> tuple[int, dict[str, int]]:
    """A list with these readers (confirmed) and one campaign sent to all of them, each delivery
    with its Message-ID. Returns the campaign id and the subscriber ids by address."""
    mailing_list = lists.find(store, slug) or lists.create(store, slug, slug)
    subscriptions.add(
        store, mailing_list, [Candidate(e, False) for e in message_ids], confirmed=True
    )
    campaign = Campaigns(store).create(
        Audience((mailing_list,)), "This week", "report.md", "# Hi", {}
    )
    log = CampaignLog(store, campaign, PENDING)
    log.start()
    ids = {d.reader.email: d.reader.id for d in log.pending(0, 10_000)}
    log.record(
        [Result(ids[e], "sent", 1, 250, "", message_id=m or f"<{campaign}.{ids[e]}.t@example.org>")
         for e, m in message_ids.items()]
    )  # fmt: skip
    log.finish(None)
    return campaign, ids


def verp_address(
    workspace: Path, subscriber_id: int, campaign_id: int, domain: str = "bounces.example.org"
) -> str:
    signer = Signer(load_secret(workspace))
    return f"{verp_local_part(signer, subscriber_id, campaign_id)}@{domain}"


def postfix_bounce(
    recipient: str,
    envelope_to: str,
    *,
    status: str = "5.1.1",
    action: str = "failed",
    diagnostic: str = "smtp; 550 5.1.1 <{r}>: Recipient address rejected: User unknown",
    message_id: str = "<1.1.0000@example.org>",
) -> bytes:
    """A bounce in the exact shape Postfix 3.7 writes (see test_bounces_postfix.py)."""
    queue = f"4ZQ{next(_serial):07d}"
    return f"""Return-Path: <>
X-Original-To: {envelope_to}
Delivered-To: {envelope_to}
Received: by mx.example.org (Postfix)
\tid {queue}X; Sat,  8 Mar 2025 09:00:03 +0000 (UTC)
Date: Sat,  8 Mar 2025 09:00:03 +0000 (UTC)
From: MAILER-DAEMON@example.org (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {envelope_to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{queue}.1741424403/mx.example.org"
Message-Id: <20250308090003.{queue}X@mx.example.org>

This is a MIME-encapsulated message.

--{queue}.1741424403/mx.example.org
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.org.

<{recipient}>: {diagnostic.format(r=recipient)}

--{queue}.1741424403/mx.example.org
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org
X-Postfix-Queue-ID: {queue}
X-Postfix-Sender: rfc822; {envelope_to}
Arrival-Date: Sat,  8 Mar 2025 09:00:02 +0000 (UTC)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Diagnostic-Code: {diagnostic.format(r=recipient)}

--{queue}.1741424403/mx.example.org
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <{envelope_to}>
From: The Example Bulletin <bulletin@example.org>
To: {recipient}
Subject: This week in the garden
Message-ID: {message_id}

--{queue}.1741424403/mx.example.org--
""".replace("\n", "\r\n").encode()


def snapshot(store: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row a bounce run may touch, to compare two runs."""
    tables = {
        "subscribers": "SELECT id, email, status, updated_at FROM subscribers",
        "memberships": "SELECT list_id, subscriber_id, status, updated_at FROM memberships",
        "events": "SELECT * FROM events",
        "deliveries": "SELECT * FROM deliveries",
        "processed_mail": "SELECT * FROM processed_mail",
    }
    return {name: sorted(store.query(sql), key=repr) for name, sql in tables.items()}


def status_of(store: Database, email: str) -> str:
    row = store.query_one("SELECT status FROM subscribers WHERE email = ?", (email,))
    assert row is not None, email
    return str(row[0])


def kinds(store: Database, email: str) -> list[str]:
    return [kind for _, kind, _ in members.events_for(store, email) if kind != "subscribed"]


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# the corpus


def test_corpus_is_covered() -> None:
    names = {p.name for p in DSN.glob("*.eml")}
    assert names == {row[0] for row in CORPUS} | set(NOT_BOUNCES)


@pytest.mark.parametrize(("name", "address", "kind", "status", "original"), CORPUS)
def test_corpus_bounce(name: str, address: str, kind: str, status: str, original: str) -> None:
    reading = read_message((DSN / name).read_bytes(), Signer(b"k" * 32))
    assert reading.kind == "bounce"
    [failure] = reading.failures
    assert failure.addresses[0] == address
    assert failure.hard is (kind == "hard")
    assert failure.status == status
    assert reading.original_message_id == original
    assert reading.verp is None


@pytest.mark.parametrize(("name", "kind"), sorted(NOT_BOUNCES.items()))
def test_corpus_not_bounces(name: str, kind: str) -> None:
    reading = read_message((DSN / name).read_bytes(), Signer(b"k" * 32))
    assert reading.kind == kind
    assert reading.failures == ()


@pytest.mark.usefixtures("engine")  # on SQLite, then PostgreSQL
def test_corpus_through_mbox(mailer: Invoke, workspace: Path) -> None:
    """Every provider's format, read from an mbox: statuses, events, deliveries, fallout."""
    with open_store(workspace) as store:
        campaign, _ = seed(store, {row[1]: row[4] for row in CORPUS} | {"ada@example.net": ""})
    box = mailbox.mbox(workspace / "bounces.mbox")
    for path in sorted(DSN.glob("*.eml")):
        box.add(path.read_bytes())
    box.flush()
    box.close()

    result = mailer("bounces", "process", str(workspace / "bounces.mbox"))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "13 messages read: 6 hard, 4 soft, 1 unsubscribed, 0 unmatched, 2 unrecognised,"
        " 0 already processed; 6 readers now bounced"
    )
    assert result.stderr.count("unrecognised: #") == 2
    with open_store(workspace) as store:
        for address in HARD:
            assert status_of(store, address) == "bounced"
            assert kinds(store, address) == ["bounced"]
        for address in SOFT:
            assert status_of(store, address) == "active"
            assert kinds(store, address) == ["soft_bounce"]
        deliveries = dict(
            store.query(
                "SELECT s.email, d.status || ' ' || COALESCE(CAST(d.last_code AS TEXT), '-')"
                " FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
            )
        )
        assert deliveries["reader.gone@gmail.com"] == "failed 550"
        assert deliveries["nobody.here@outlook.com"] == "failed 550"
        assert deliveries["always.full@example.net"] == "failed 452"  # gave up: failed, but soft
        assert deliveries["quota.full@gmail.com"] == "sent 250"  # a delay warning changes nothing
        assert deliveries["no.mailbox@example.com"] == "failed -"
        member = members.find(store, lists.get(store, "weekly"), "ada@example.net")
        assert member is not None and member.status == "unsubscribed"
        assert members.events_for(store, "ada@example.net")[-1][1:] == ("unsubscribed", "mailto")
        fallout = campaign_fallout(store, campaign)
        assert sorted((f.kind, f.email) for f in fallout) == sorted(
            [("bounced", a) for a in HARD]
            + [("soft_bounce", a) for a in SOFT]
            + [("unsubscribed", "ada@example.net")]
        )
        gone = next(f for f in fallout if f.email == "reader.gone@gmail.com")
        assert gone.detail.startswith("5.1.1 smtp; 550-5.1.1 The email account")
        before = snapshot(store)

    again = mailer("bounces", "process", str(workspace / "bounces.mbox"))
    assert again.exit_code == 0, again.output
    assert again.stdout.strip().startswith("13 messages read: 0 hard, 0 soft, 0 unsubscribed")
    assert "13 already processed; 0 readers now bounced" in again.stdout
    with open_store(workspace) as store:
        assert snapshot(store) == before


# VERP, Maildir, idempotence, dry run


@pytest.mark.usefixtures("engine")  # on SQLite, then PostgreSQL
def test_verp_maildir_twice_and_dry_run(mailer: Invoke, workspace: Path) -> None:
    with open_store(workspace) as store:
        campaign, ids = seed(store, {"gone@example.com": "", "full@example.com": ""})
    maildir = mailbox.Maildir(workspace / "Maildir")
    # The bounce names a forwarding address: only VERP can tell whose it is.
    gone = verp_address(workspace, ids["gone@example.com"], campaign)
    maildir.add(postfix_bounce("gone@forward.example", gone))
    full = verp_address(workspace, ids["full@example.com"], campaign)
    soft = postfix_bounce(
        "full@example.com", full, status="4.2.2", diagnostic="smtp; 452 4.2.2 full"
    )
    maildir.add(soft)
    maildir.add(b"From: someone@example.net\r\nSubject: hello\r\n\r\njust a note\r\n")
    # Already in cur/ but not seen (a client looked at the folder): still processed.
    key = maildir.add(postfix_bounce("x@nowhere.example", "bulletin@example.org"))
    maildir.close()
    (workspace / "Maildir" / "new" / key).rename(workspace / "Maildir" / "cur" / f"{key}:2,")
    new, cur = workspace / "Maildir" / "new", workspace / "Maildir" / "cur"
    assert (len(list(new.iterdir())), len(list(cur.iterdir()))) == (3, 1)

    with open_store(workspace) as store:
        untouched = snapshot(store)
    dry = mailer("bounces", "process", str(workspace / "Maildir"), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.startswith("dry run, nothing changed: 4 messages read: 1 hard, 1 soft,")
    assert (len(list(new.iterdir())), len(list(cur.iterdir()))) == (3, 1)
    with open_store(workspace) as store:
        assert snapshot(store) == untouched

    result = mailer("bounces", "process", str(workspace / "Maildir"))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "4 messages read: 1 hard, 1 soft, 0 unsubscribed, 1 unmatched, 1 unrecognised,"
        " 0 already processed; 1 reader now bounced"
    )
    assert "unmatched: cur/" in result.stderr and "x@nowhere.example" in result.stderr
    assert list(new.iterdir()) == []
    names = sorted(p.name for p in cur.iterdir())
    assert len(names) == 4 and all(n.endswith(":2,S") for n in names)
    with open_store(workspace) as store:
        assert status_of(store, "gone@example.com") == "bounced"
        assert status_of(store, "full@example.com") == "active"
        events = store.query(
            "SELECT kind, subscriber_id, campaign_id, detail FROM events"
            " WHERE kind IN ('bounced', 'soft_bounce') ORDER BY id"
        )
        assert events == [
            ("bounced", ids["gone@example.com"], campaign,
             "5.1.1 smtp; 550 5.1.1 <gone@forward.example>: Recipient address rejected:"
             " User unknown"),
            ("soft_bounce", ids["full@example.com"], campaign, "4.2.2 smtp; 452 4.2.2 full"),
        ]  # fmt: skip
        before = snapshot(store)

    again = mailer("bounces", "process", str(workspace / "Maildir"))
    assert again.exit_code == 0
    assert again.stdout.startswith("0 messages read")
    assert sorted(p.name for p in cur.iterdir()) == names
    with open_store(workspace) as store:
        assert snapshot(store) == before


@pytest.mark.usefixtures("engine")  # on SQLite, then PostgreSQL
def test_forged_verp_is_not_trusted(workspace: Path) -> None:
    """A VERP tag with a wrong MAC names nobody: the DSN's own recipient counts."""
    with open_store(workspace) as store:
        campaign, ids = seed(store, {"victim@example.com": "", "real@example.com": ""})
        forged = f"bounces+{ids['victim@example.com']}-{campaign}-0123456789ab@example.org"
        box = mailbox.mbox(workspace / "in.mbox")
        box.add(postfix_bounce("real@example.com", forged))
        box.close()
        with open_source(str(workspace / "in.mbox")) as source:
            summary = process(store, source, Signer(load_secret(workspace)), _settings())
        assert summary.counts["hard"] == 1
        assert status_of(store, "victim@example.com") == "active"
        assert status_of(store, "real@example.com") == "bounced"


@pytest.mark.usefixtures("engine")  # on SQLite, then PostgreSQL
def test_a_diagnostic_with_control_characters_and_8bit_bytes_is_stored(workspace: Path) -> None:
    """A report's Diagnostic-Code with a NUL, an escape and a Latin-1 byte: the bounce is
    applied and its detail kept without them (PostgreSQL refuses a NUL in text)."""
    with open_store(workspace) as store:
        seed(store, {"gone@example.com": ""})
        raw = postfix_bounce("gone@example.com", "bulletin@example.org",
                             diagnostic="smtp; 550 5.1.1 Empf@nger unbekannt @[31m")  # fmt: skip
        raw = raw.replace(b"Empf@nger", b"Empf\xe4nger").replace(b"@[31m", b"\x00\x1b[31m")
        box = mailbox.mbox(workspace / "in.mbox")
        box.add(raw)
        box.close()
        with open_source(str(workspace / "in.mbox")) as source:
            summary = process(store, source, Signer(load_secret(workspace)), _settings())
        assert summary.counts["hard"] == 1
        assert status_of(store, "gone@example.com") == "bounced"
        [(detail,)] = store.query("SELECT detail FROM events WHERE kind = 'bounced'")
        assert detail == "5.1.1 smtp; 550 5.1.1 Empf\ufffdnger unbekannt [31m"


@pytest.mark.usefixtures("engine")  # on SQLite, then PostgreSQL
def test_headers_with_a_nul_or_8bit_bytes_do_not_stop_the_bounces_after_them(
    mailer: Invoke, workspace: Path
) -> None:
    """A bounce whose Message-ID and Final-Recipient hold a NUL, an escape and a Latin-1 byte
    (its Original-Recipient names the reader), and a mailed unsubscribe whose From does: each
    is read and marked, and the bounce after them is applied. Before, PostgreSQL refused the
    NUL, so every run stopped at the first message."""
    with open_store(workspace) as store:
        seed(store, {"gone@example.com": "", "odd@example.com": ""})
    maildir = mailbox.Maildir(workspace / "Maildir")
    odd = postfix_bounce("odd@example.com", "bulletin@example.org")
    odd = odd.replace(b"Final-Recipient: rfc822; odd@", b"Final-Recipient: rfc822; o\x00dd\xe9@")
    odd = odd.replace(b"Message-Id: <2025", b"Message-Id: <\x00\xe9\x1b[2J2025")
    maildir.add(odd)
    maildir.add(
        b"From: reader\x00\xe9@example.org\r\nTo: bulletin+unsubscribe-weekly@example.org"
        b"\r\nMessage-ID: <u1\x00@example.org>\r\nSubject: unsubscribe\r\n\r\nplease\r\n"
    )
    maildir.add(postfix_bounce("gone@example.com", "bulletin@example.org"))
    maildir.close()
    result = mailer("bounces", "process", str(workspace / "Maildir"))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "3 messages read: 2 hard, 0 soft, 0 unsubscribed, 0 unmatched, 1 unrecognised,"
        " 0 already processed; 2 readers now bounced"
    )
    assert "Traceback" not in result.stderr
    assert "\x00" not in result.stderr and "\x1b" not in result.stderr
    with open_store(workspace) as store:
        assert status_of(store, "gone@example.com") == "bounced"
        assert status_of(store, "odd@example.com") == "bounced"
        ids = [row[0] for row in store.query("SELECT message_id FROM processed_mail")]
        assert len(ids) == 3 and not any("\x00" in i or "\x1b" in i for i in ids)
    again = mailer("bounces", "process", str(workspace / "Maildir"))
    assert again.exit_code == 0 and again.stdout.startswith("0 messages read"), again.output


@pytest.mark.usefixtures("engine")  # on SQLite, then PostgreSQL
def test_a_global_delivery_status_names_a_utf8_reader(workspace: Path) -> None:
    """RFC 6533's report for a message sent with SMTPUTF8: its UTF-8 address is read as
    written. Before, it came back with U+FFFD in place of each letter, and matched nobody."""
    with open_store(workspace) as store:
        seed(store, {"josé@exämple.org": ""})
        report = (
            "From: MAILER-DAEMON@mx.example.net\r\nTo: bulletin@example.org\r\n"
            "Message-ID: <g1@mx.example.net>\r\nMIME-Version: 1.0\r\nContent-Type:"
            ' multipart/report; report-type=global-delivery-status; boundary="B"\r\n\r\n'
            "--B\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--B\r\n"
            "Content-Type: message/global-delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: utf-8; josé@exämple.org"
            "\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 unknown"
            "\r\n\r\n--B--\r\n"
        )
        box = mailbox.mbox(workspace / "in.mbox")
        box.add(report.encode())
        box.close()
        with open_source(str(workspace / "in.mbox")) as source:
            summary = process(store, source, Signer(load_secret(workspace)), _settings())
        assert summary.counts["hard"] == 1
        assert status_of(store, "josé@exämple.org") == "bounced"


# the soft-bounce score


def _settings(limit: int = 3, days: int = 30) -> config.BounceSettings:
    return config.BounceSettings(soft_limit=limit, soft_window_days=days)


def _soft_run(store: Database, workspace: Path, messages: list[bytes], at: datetime) -> int:
    path = workspace / f"soft-{next(_serial)}.mbox"
    box = mailbox.mbox(path)
    for data in messages:
        box.add(data)
    box.close()
    with open_source(str(path)) as source:
        summary = process(store, source, Signer(load_secret(workspace)), _settings(), at=at)
    return summary.newly_bounced


@pytest.mark.usefixtures("engine")  # on SQLite, then PostgreSQL
def test_soft_bounces_add_up_within_the_window(workspace: Path) -> None:
    start = datetime(2025, 3, 1, tzinfo=UTC)
    with open_store(workspace) as store:
        campaigns = [seed(store, {"full@example.com": "", "rare@example.com": ""})
                     for _ in range(4)]  # fmt: skip
        ids = campaigns[0][1]

        def soft(email: str, campaign: int, action: str = "failed") -> bytes:
            to = verp_address(workspace, ids[email], campaign)
            return postfix_bounce(email, to, status="4.2.2", action=action)

        # A delay warning and the final bounce of the same campaign count once.
        first = [soft("full@example.com", campaigns[0][0], "delayed"),
                 soft("full@example.com", campaigns[0][0])]  # fmt: skip
        assert _soft_run(store, workspace, first, start) == 0
        assert _soft_run(store, workspace, [soft("full@example.com", campaigns[1][0])],
                         start + timedelta(days=7)) == 0  # fmt: skip
        assert status_of(store, "full@example.com") == "active"
        assert _soft_run(store, workspace, [soft("full@example.com", campaigns[2][0])],
                         start + timedelta(days=14)) == 1  # fmt: skip
        assert status_of(store, "full@example.com") == "bounced"
        assert kinds(store, "full@example.com")[-2:] == ["soft_bounce", "bounced"]
        last = members.events_for(store, "full@example.com")[-1]
        assert last[2].startswith("3 soft bounces within 30 days; last: 4.2.2")

        # One soft bounce every 20 days never reaches 3 within 30 days.
        for n in range(3):
            at = start + timedelta(days=20 * n)
            assert _soft_run(store, workspace, [soft("rare@example.com", campaigns[n][0])], at) == 0
        assert status_of(store, "rare@example.com") == "active"
        assert kinds(store, "rare@example.com") == ["soft_bounce"] * 3


# mailed unsubscribe requests


def unsubscribe_mail(sender: str, slug: str, n: int = 1) -> bytes:
    return (
        f"From: Reader <{sender}>\r\nTo: bulletin+unsubscribe-{slug}@example.org\r\n"
        f"Subject: unsubscribe\r\nMessage-ID: <u{n}@mail.example.net>\r\n\r\n\r\n"
    ).encode()


@pytest.mark.usefixtures("engine")  # on SQLite, then PostgreSQL
def test_mailto_unsubscribe(mailer: Invoke, workspace: Path) -> None:
    with open_store(workspace) as store:
        seed(store, {"ada@example.net": "", "bob@example.net": ""})
        seed(store, {"ada@example.net": ""}, slug="daily")
    box = mailbox.mbox(workspace / "unsub.mbox")
    box.add(unsubscribe_mail("Ada@Example.NET", "weekly", 1))
    box.add(unsubscribe_mail("ada@example.net", "weekly", 2))  # clicked twice: no second event
    box.add(unsubscribe_mail("eve@example.net", "weekly", 3))  # not a reader
    box.add(unsubscribe_mail("bob@example.net", "monthly", 4))  # no such list
    box.close()
    result = mailer("bounces", "process", str(workspace / "unsub.mbox"))
    assert result.exit_code == 0, result.output
    assert "4 messages read: 0 hard, 0 soft, 2 unsubscribed, 2 unmatched" in result.stdout
    assert "eve@example.net from weekly: not on the list" in result.stderr
    assert "'monthly': no such list" in result.stderr
    with open_store(workspace) as store:
        weekly, daily = lists.get(store, "weekly"), lists.get(store, "daily")
        ada_weekly = members.find(store, weekly, "ada@example.net")
        ada_daily = members.find(store, daily, "ada@example.net")
        bob = members.find(store, weekly, "bob@example.net")
        assert ada_weekly is not None and ada_weekly.status == "unsubscribed"
        assert ada_daily is not None and ada_daily.status == "confirmed"  # only the named list
        assert bob is not None and bob.status == "confirmed"
        assert kinds(store, "ada@example.net") == ["unsubscribed"]


# bad input


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{ws}/absent", "error: bounce source '{ws}/absent': no such file or folder"),
        ("{ws}/plain.txt", "error: bounce source '{ws}/plain.txt': not an mbox file"),
        ("{ws}/folder", "error: bounce source '{ws}/folder': a folder without new/ and cur/"),
        ("pop3://u@h/INBOX", "error: bounce source 'pop3://u@h/INBOX': expected imaps://user@host"),
        ("imaps://h/INBOX", "error: bounce source 'imaps://h/INBOX': expected imaps://user@host"),
        ("imaps://u@h:x/INBOX", "error: bounce source 'imaps://u@h:x/INBOX': bad port"),
        ("imaps://u@127.0.0.1/INBOX", "error: no IMAP password for imaps://u@127.0.0.1/INBOX:"
                                      " set MAILER_BOUNCES_IMAP_PASSWORD"),
        ("imaps://u:pw@h/INBOX", "error: put the IMAP password in MAILER_BOUNCES_IMAP_PASSWORD"),
        ("imaps://u@h/Caf%C3%A9", "error: bounce source 'imaps://u@h/Caf%C3%A9': the IMAP user and"
                                  " folder must be ASCII"),
    ],
)  # fmt: skip
def test_bad_source_is_one_line(
    mailer: Invoke, workspace: Path, source: str, expected: str
) -> None:
    (workspace / "plain.txt").write_text("not mail\n")
    (workspace / "folder").mkdir()
    result = mailer("bounces", "process", source.format(ws=workspace))
    assert result.exit_code == 1
    assert one_line(result.stderr).startswith(expected.format(ws=workspace))


def test_maildir_marks_only_what_it_read(workspace: Path) -> None:
    """Flags already on a message are kept when it is marked seen."""
    root = workspace / "md"
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True)
    (root / "cur" / "1741.M1P1.host:2,F").write_bytes(b"Subject: flagged\r\n\r\nx\r\n")
    source = MaildirSource(root)
    [item] = list(source.messages())
    source.mark(item)
    assert [p.name for p in (root / "cur").iterdir()] == ["1741.M1P1.host:2,FS"]
    assert list(source.messages()) == []


def test_maildir_reads_in_arrival_order(workspace: Path) -> None:
    """Maildir names do not pad their numbers: M99999 arrived before M100000."""
    root = workspace / "md"
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True)
    names = ["1741.M99999P7Q1.host", "1741.M100000P7Q2.host", "1742.M5P7Q3.host"]
    for name in reversed(names):
        (root / "new" / name).write_bytes(b"Subject: x\r\n\r\nx\r\n")
    assert [item.key for item in MaildirSource(root).messages()] == [f"new/{n}" for n in names]
