"""Status changes: the TRANSITIONS tables, atomicity, erasure, bulk joins, the form, bounces."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mailer
from mailer.audience import lists, subscriptions
from mailer.audience.status import (
    AFTER_BOUNCE,
    KEPT,
    MEMBERSHIP,
    SUBSCRIBER,
    Change,
    Verdict,
    Where,
    bounce_many,
    change_membership,
    change_subscriber,
    set_membership,
    set_subscriber,
)
from mailer.db.database import Database
from mailer.models import Candidate, MailingList, Outcome
from mailer.models import MembershipStatus as M
from mailer.models import SubscriberStatus as S
from mailer.send.campaigns import Campaigns
from mailer.send.deliveries import PENDING, CampaignLog
from mailer.send.recipients import Audience
from mailer.send.types import Result
from tests.conftest import dump, store

Rows = dict[str, list[tuple[Any, ...]]]
EVENT = "SELECT kind, subscriber_id, list_id, campaign_id, detail FROM events ORDER BY id"
# Membership changes that are already done ("unchanged"); every other absent pair is refused.
# Note: RESUBSCRIBE of a member who never left is refused, not unchanged.
SETTLED = {(Change.CONFIRM, M.CONFIRMED), (Change.UNSUBSCRIBE, M.UNSUBSCRIBED),
           (Change.SUBSCRIBE, M.CONFIRMED), (Change.SUBSCRIBE, M.UNCONFIRMED),
           (Change.RESUBSCRIBE, M.CONFIRMED)}  # fmt: skip
# Where each subscriber change leads: being there already is "unchanged".
LEADS_TO = {change: after for (change, _), after in SUBSCRIBER.items()}


@pytest.fixture
def database(engine: str, workspace: Path) -> Iterator[Database]:
    """The store, on each engine in turn."""
    with store(workspace) as db:
        yield db


@pytest.fixture
def home(database: Database) -> MailingList:
    return lists.create(database, "home", "Home")


@pytest.fixture
def target(database: Database) -> MailingList:
    return lists.create(database, "target", "Target", double_opt_in=True)


def snapshot(database: Database) -> Rows:
    tables = ("subscribers", "events", "deliveries", "lists", "campaigns")
    rows = {t: database.query(f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables}
    rows["memberships"] = database.query(
        "SELECT list_id, subscriber_id, status, updated_at FROM memberships ORDER BY 1, 2"
    )
    return rows


def reader(
    database: Database,
    home: MailingList,
    email: str,
    *,
    on: MailingList | None = None,
    membership: M | None = None,
    status: S = S.ACTIVE,
) -> int:
    """A reader confirmed on ``home``, then put in ``membership`` on ``on`` and in ``status``."""
    candidate = Candidate(email, False, name="Ada", attributes={"city": "Paris"})
    assert subscriptions.add(database, home, [candidate], confirmed=True) == [Outcome.ADDED]
    row = database.query_one("SELECT id FROM subscribers WHERE email = ?", (email,))
    assert row is not None
    with database.transaction() as db:
        if on is not None and membership is not None:
            db.execute(
                "INSERT INTO memberships (list_id, subscriber_id, status, updated_at)"
                " VALUES (?, ?, ?, '2000-01-01T00:00:00+00:00')",
                (on.id, row[0], membership),
            )
        db.execute("UPDATE subscribers SET status = ? WHERE id = ?", (status, row[0]))
    return int(row[0])


def membership(database: Database, list_id: int, subscriber_id: int) -> str | None:
    row = database.query_one(
        "SELECT status FROM memberships WHERE list_id = ? AND subscriber_id = ?",
        (list_id, subscriber_id),
    )
    return None if row is None else str(row[0])


def subscriber_status(database: Database, subscriber_id: int) -> str:
    row = database.query_one("SELECT status FROM subscribers WHERE id = ?", (subscriber_id,))
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("before", [None, *M])
@pytest.mark.parametrize("change", list(Change))
def test_membership_table(
    database: Database, home: MailingList, target: MailingList, change: Change, before: M | None
) -> None:
    allowed = MEMBERSHIP.get((change, before), frozenset())
    idle = reader(database, home, "idle@example.org", on=target, membership=before)
    for to in (None, *M):
        if to in allowed or (to is None and len(allowed) == 1):
            continue  # these move the membership: below
        rows = snapshot(database)
        with database.transaction() as db:
            verdict = change_membership(db, change, idle, target.id, to=to, detail="why")
        assert snapshot(database) == rows, (to, verdict)
        assert verdict is not Verdict.CHANGED
        if to is None:
            missing = before is None and change is not Change.SUBSCRIBE
            settled = Verdict.UNCHANGED if (change, before) in SETTLED else Verdict.REFUSED
            assert verdict is (Verdict.MISSING if missing else settled)
    for n, to in enumerate(sorted(allowed)):
        sid = reader(database, home, f"r{n}@example.org", on=target, membership=before)
        rows = snapshot(database)
        with database.transaction() as db:
            pick = to if len(allowed) > 1 else None
            verdict = change_membership(db, change, sid, target.id, to=pick, detail="why")
        assert verdict is Verdict.CHANGED
        after = snapshot(database)
        assert membership(database, target.id, sid) == to
        events = database.query(EVENT)
        assert events[:-1] == [r[2:] for r in rows["events"]]
        assert events[-1] == (change.value, sid, target.id, None, "why")
        stamp = after["events"][-1][1]
        assert (target.id, sid, to, stamp) in after["memberships"]
        others = [m for m in after["memberships"] if m[:2] != (target.id, sid)]
        assert others == [m for m in rows["memberships"] if m[:2] != (target.id, sid)]
        assert after["subscribers"] == rows["subscribers"]


@pytest.mark.parametrize("before", list(S))
@pytest.mark.parametrize("change", list(Change))
def test_subscriber_table(
    database: Database, home: MailingList, target: MailingList, change: Change, before: S
) -> None:
    sid = reader(database, home, "ada@example.org", status=before)
    reader(database, home, "bob@example.org")  # a bystander
    rows = snapshot(database)
    with database.transaction() as db:
        verdict = change_subscriber(db, change, sid, where=Where(target.id, None, "why"))
    after = snapshot(database)
    goal = SUBSCRIBER.get((change, before))
    if (change, before) in KEPT:  # the event is written, the status stays
        assert verdict is Verdict.UNCHANGED
        assert database.query(EVENT)[-1] == (change.value, sid, target.id, None, "why")
        assert after["events"][:-1] == rows["events"]
        assert {k: v for k, v in after.items() if k != "events"} == {
            k: v for k, v in rows.items() if k != "events"
        }
        return
    if goal is None:
        assert verdict is (Verdict.UNCHANGED if LEADS_TO.get(change) == before else Verdict.REFUSED)
        assert after == rows
        return
    assert verdict is Verdict.CHANGED
    assert subscriber_status(database, sid) == goal
    assert len(after["events"]) == len(rows["events"]) + 1
    detail = "" if change is Change.ERASE else "why"  # an erasure keeps no words about it
    assert database.query(EVENT)[-1] == (change.value, sid, target.id, None, detail)
    if change is not Change.ERASE:  # erasure rewrites more: test_erase
        assert after["events"][:-1] == rows["events"]
        assert after["memberships"] == rows["memberships"]
        changed = [s for s in after["subscribers"] if s not in rows["subscribers"]]
        assert [(s[0], s[5]) for s in changed] == [(sid, goal)]


def test_unknown_subscriber_is_missing(database: Database, home: MailingList) -> None:
    rows = snapshot(database)
    assert set_subscriber(database, Change.BOUNCE, 999) is Verdict.MISSING
    assert set_membership(database, Change.CONFIRM, 999, home.id) is Verdict.MISSING
    assert snapshot(database) == rows


def test_subscribing_an_unknown_reader_is_missing(database: Database, home: MailingList) -> None:
    verdict = set_membership(database, Change.SUBSCRIBE, 999, home.id, to=M.CONFIRMED)
    assert verdict is Verdict.MISSING


class Boom(Exception):
    pass


@pytest.mark.parametrize("subscriber_change", [False, True])
def test_rolled_back_change_leaves_nothing(
    database: Database, home: MailingList, subscriber_change: bool
) -> None:
    sid = reader(database, home, "ada@example.org")
    rows = snapshot(database)
    with pytest.raises(Boom), database.transaction() as db:
        if subscriber_change:
            verdict = change_subscriber(db, Change.ERASE, sid)
        else:
            verdict = change_membership(db, Change.UNSUBSCRIBE, sid, home.id)
        assert verdict is Verdict.CHANGED
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 2
        raise Boom
    assert snapshot(database) == rows


def test_erase(database: Database, home: MailingList, target: MailingList) -> None:
    sid = reader(database, home, "ada@example.org", on=target, membership=M.UNCONFIRMED)
    bob = reader(database, home, "bob@example.org")
    set_membership(database, Change.UNSUBSCRIBE, sid, home.id, detail="ada@example.org left")
    set_membership(database, Change.RESUBSCRIBE, sid, home.id, to=M.CONFIRMED, detail="Ada back")
    Campaigns(database).create(Audience((home,)), "s", "r.md", "# s", {})
    set_membership(database, Change.UNSUBSCRIBE, bob, home.id, detail="bob left")
    with database.transaction() as db:
        db.execute("UPDATE deliveries SET last_error = '550 <' || subscriber_id || '>', reply = 1")
        db.execute("UPDATE deliveries SET last_error = '550 <ada@example.org>', reply = 'Ada?'"
                   " WHERE subscriber_id = ?", (sid,))  # fmt: skip
    of = "SELECT {} FROM {} WHERE subscriber_id = ?"
    tables = ("events", "memberships", "deliveries")
    bobs = [database.query(of.format("*", t), (bob,)) for t in tables]
    assert bobs[2] == [
        (bobs[2][0][0], bob, "queued", 0, None, f"550 <{bob}>", "", None, "1", "", "", "")
    ]
    assert set_subscriber(database, Change.ERASE, sid) is Verdict.CHANGED
    rows = snapshot(database)
    assert (sid, f"erased-{sid}@erased.invalid", "", "{}", 0, "erased") in [
        r[:6] for r in rows["subscribers"]
    ]
    assert ("bob@example.org", "Ada") in [r[1:3] for r in rows["subscribers"]]
    assert [database.query(of.format("*", t), (bob,)) for t in tables] == bobs
    text = dump(database).replace("bob@example.org", "")
    for trace in ("ada@", "Ada back", "Ada?"):
        assert trace not in text
    assert {r for r in database.query(of.format("detail", "events"), (sid,))} == {("",)}
    erased = database.query(of.format("kind, list_id", "events") + " AND kind = 'erased'", (sid,))
    assert erased == [("erased", None)]
    assert database.query(of.format("last_error, reply", "deliveries"), (sid,)) == [("", "")]
    statuses = database.query(of.format("status", "memberships"), (sid,))
    assert statuses == [("unsubscribed",), ("unsubscribed",)]
    assert set_subscriber(database, Change.ERASE, sid) is Verdict.UNCHANGED
    for change in (Change.RESUBSCRIBE, Change.UNBLOCK):
        assert set_subscriber(database, change, sid) is Verdict.REFUSED
    assert snapshot(database) == rows


def test_erased_reader_cannot_rejoin_a_list(database: Database, home: MailingList) -> None:
    sid = reader(database, home, "ada@example.org")
    assert set_subscriber(database, Change.ERASE, sid) is Verdict.CHANGED
    rows = snapshot(database)
    # what the web /resubscribe/<token> page does with a token from an old message
    verdict = set_membership(database, Change.RESUBSCRIBE, sid, home.id, to=M.CONFIRMED)
    assert (verdict, snapshot(database)) == (Verdict.REFUSED, rows)


@pytest.mark.parametrize("left", ["unsubscribed", S.BOUNCED, S.BLOCKLISTED, S.ERASED])
def test_import_never_readds_who_left(database: Database, home: MailingList, left: str) -> None:
    sid = reader(database, home, "ada@example.org")
    if left == "unsubscribed":
        set_membership(database, Change.UNSUBSCRIBE, sid, home.id)
    else:
        set_subscriber(database, Change(left), sid)
    email = database.query("SELECT email FROM subscribers WHERE id = ?", (sid,))[0][0]
    rows = snapshot(database)
    again = [Candidate(email, False, name="New", attributes={"k": "v"})]
    assert subscriptions.add(database, home, again, confirmed=True) == [Outcome.SKIPPED]
    assert snapshot(database) == rows


@pytest.mark.parametrize("before", [M.CONFIRMED, M.UNSUBSCRIBED])
def test_import_resubscribes_a_bounced_reader(
    database: Database, target: MailingList, before: M
) -> None:
    sid = reader(database, target, "ada@example.org")
    set_subscriber(database, Change.BOUNCE, sid)
    if before is M.UNSUBSCRIBED:
        set_membership(database, Change.UNSUBSCRIBE, sid, target.id)
    count = len(database.query(EVENT))
    again = [Candidate("ada@example.org", False)]
    outcomes = subscriptions.add(database, target, again, resubscribe=True, confirmed=True)
    assert outcomes == [Outcome.UPDATED if before is M.CONFIRMED else Outcome.ADDED]
    assert subscriber_status(database, sid) == S.ACTIVE
    assert membership(database, target.id, sid) == M.CONFIRMED
    new: list[tuple[Any, ...]] = [("resubscribed", sid, None, None, "")]
    if before is M.UNSUBSCRIBED:
        new.append(("resubscribed", sid, target.id, None, ""))
    assert database.query(EVENT)[count:] == new


@pytest.mark.parametrize("double", [False, True])
def test_import_new_reader_and_dry_run(database: Database, double: bool) -> None:
    mailing_list = lists.create(database, "l", "L", double_opt_in=double)
    bounced = reader(database, mailing_list, "bounced@example.org", status=S.BOUNCED)
    batch = [Candidate("new@example.org", False), Candidate("bounced@example.org", False)]
    rows = snapshot(database)
    dry = subscriptions.add(database, mailing_list, batch, resubscribe=True, dry_run=True)
    assert snapshot(database) == rows
    assert subscriptions.add(database, mailing_list, batch, resubscribe=True) == dry
    assert dry == [Outcome.ADDED, Outcome.UPDATED]
    new = database.query_one("SELECT id FROM subscribers WHERE email = 'new@example.org'")
    assert new is not None
    joined = M.UNCONFIRMED if double else M.CONFIRMED
    assert membership(database, mailing_list.id, new[0]) == joined
    assert database.query(EVENT)[len(rows["events"]) :] == [
        ("subscribed", new[0], mailing_list.id, None, ""),
        ("resubscribed", bounced, None, None, ""),
    ]


@pytest.mark.parametrize("double", [False, True])
def test_form_request_from_a_new_address(database: Database, double: bool) -> None:
    mailing_list = lists.create(database, "l", "L", double_opt_in=double)
    member = subscriptions.request(database, mailing_list, Candidate("new@example.org", False))
    row = database.query_one("SELECT id FROM subscribers WHERE email = 'new@example.org'")
    assert row is not None
    # The form is double opt-in whatever the list's setting, which is for the editor's additions.
    assert membership(database, mailing_list.id, row[0]) == M.UNCONFIRMED
    assert database.query(EVENT) == [("subscribed", row[0], mailing_list.id, None, "web form")]
    assert member is not None
    assert (member.id, member.email, member.status) == (row[0], "new@example.org", M.UNCONFIRMED)


@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("state", [M.CONFIRMED, M.UNSUBSCRIBED, S.BOUNCED, S.BLOCKLISTED])
def test_form_request_from_a_known_reader(database: Database, double: bool, state: str) -> None:
    mailing_list = lists.create(database, "l", "L", double_opt_in=double)
    sid = reader(database, mailing_list, "ada@example.org")
    if state != M.CONFIRMED:  # bounced and blocklisted readers left too: only status stops them
        set_membership(database, Change.UNSUBSCRIBE, sid, mailing_list.id)
    if state in (S.BOUNCED, S.BLOCKLISTED):
        set_subscriber(database, Change(state), sid)
    rows = snapshot(database)
    member = subscriptions.request(database, mailing_list, Candidate("ada@example.org", False))
    if state in (M.CONFIRMED, S.BLOCKLISTED):  # nothing to confirm; only the editor unblocks
        assert (member, snapshot(database)) == (None, rows)
        return
    # A confirmation goes out, even on a single opt-in list; nothing changes until it is used.
    assert member is not None
    assert (member.id, member.status) == (sid, M.UNSUBSCRIBED)
    assert member.subscriber_status == (S.BOUNCED if state == S.BOUNCED else S.ACTIVE)
    assert snapshot(database) == rows


def test_bounce_many_changes_only_active_readers(database: Database, home: MailingList) -> None:
    ada, bob, cy, dee = (reader(database, home, f"{n}@example.org") for n in "abcd")
    campaign = [
        Campaigns(database).create(Audience((home,)), "s", "r.md", "# s", {}) for _ in "12"
    ][1]
    set_subscriber(database, Change.BOUNCE, bob)
    set_subscriber(database, Change.BLOCK, cy)
    rows = snapshot(database)
    bounced = [(ada, "550 a"), (bob, "550 b"), (cy, "550 c"), (ada, "550 again")]
    with database.transaction() as db:
        assert bounce_many(db, bounced, campaign, "2030-01-01T00:00:00+00:00") == 1
    statuses = [subscriber_status(database, s) for s in (ada, bob, cy, dee)]
    assert statuses == [S.BOUNCED, S.BOUNCED, S.BLOCKLISTED, S.ACTIVE]
    events = database.query("SELECT * FROM events ORDER BY id")
    assert events[: len(rows["events"])] == rows["events"]
    at = "2030-01-01T00:00:00+00:00"
    # Every bounce is recorded, for campaigns show; only ada's changed a status.
    assert [e[1:] for e in events[len(rows["events"]) :]] == [
        (at, "bounced", s, home.id, campaign, d) for s, d in bounced
    ]
    changed = [r for r in snapshot(database)["subscribers"] if r not in rows["subscribers"]]
    assert [r[0] for r in changed] == [ada]


def test_campaign_log_records_bounces_through_bounce_many(
    database: Database, home: MailingList
) -> None:
    ada, bob = (reader(database, home, f"{n}@example.org") for n in "ab")
    campaign = [
        Campaigns(database).create(Audience((home,)), "s", "r.md", "# s", {}) for _ in "12"
    ][1]
    set_subscriber(database, Change.BLOCK, bob)
    count = len(database.query(EVENT))
    CampaignLog(database, campaign, PENDING).record(
        [Result(s, "failed", 1, 550, "no such user", bounced=True) for s in (ada, bob)]
    )
    assert [subscriber_status(database, s) for s in (ada, bob)] == [S.BOUNCED, S.BLOCKLISTED]
    # Both bounces are recorded (campaigns show lists them); only ada's status changed.
    assert database.query(EVENT)[count:] == [
        ("bounced", ada, home.id, campaign, "550 no such user"),
        ("bounced", bob, home.id, campaign, "550 no such user"),
    ]


DELIVERY = (
    "SELECT subscriber_id, status, attempts, last_code, last_error, reply, message_id,"
    " sent_at IS NOT NULL FROM deliveries WHERE campaign_id = ? ORDER BY subscriber_id"
)


def test_campaign_log_records_each_result_and_a_sent_one_stays_sent(
    database: Database, home: MailingList
) -> None:
    """A batch without a bounce (PostgreSQL: one statement) and one with (in a transaction)."""
    ada, bob, cyd, dan = (reader(database, home, f"{n}@example.org") for n in "abcd")
    campaign = Campaigns(database).create(Audience((home,)), "s", "r.md", "# s", {})
    log = CampaignLog(database, campaign, PENDING)
    log.record([Result(ada, "sent", 1, 250, "ok: queued as 7", "<1@x>"),
                Result(bob, "deferred", 2, 451, "try later"),
                Result(cyd, "failed", 1, 0, "not rendered: ü")])  # fmt: skip
    log.record([Result(ada, "failed", 2, 550, "no such user", bounced=True),  # sent stays sent
                Result(bob, "sent", 3, 250, "ok", "<2@x>"),
                Result(dan, "failed", 1, 550, "gone", bounced=True)])  # fmt: skip
    assert database.query(DELIVERY, (campaign,)) == [
        (ada, "sent", 1, 250, "", "ok: queued as 7", "<1@x>", True),
        (bob, "sent", 3, 250, "", "ok", "<2@x>", True),
        (cyd, "failed", 1, None, "not rendered: ü", "not rendered: ü", "", False),
        (dan, "failed", 1, 550, "gone", "gone", "", False),
    ]
    assert [subscriber_status(database, s) for s in (ada, dan)] == [S.BOUNCED, S.BOUNCED]


def test_a_deferral_and_its_retry_in_one_batch_record_the_retry(
    database: Database, home: MailingList
) -> None:
    """PostgreSQL's one statement over arrays updates a row once: the batch says which."""
    ada, bob = (reader(database, home, f"{n}@example.org") for n in "ab")
    campaign = Campaigns(database).create(Audience((home,)), "s", "r.md", "# s", {})
    CampaignLog(database, campaign, PENDING).record(
        [Result(ada, "deferred", 1, 451, "later"), Result(bob, "deferred", 1, 451, "later"),
         Result(ada, "deferred", 2, 452, "later again"), Result(bob, "sent", 2, 250, "ok")]
    )  # fmt: skip
    assert [row[:4] for row in database.query(DELIVERY, (campaign,))] == [
        (ada, "deferred", 2, 452),
        (bob, "sent", 2, 250),
    ]


ONE_HOME = ("INSERT INTO events", "UPDATE memberships", "UPDATE subscribers SET status",
            "INSERT INTO memberships")  # fmt: skip
ELSEWHERE_NEVER = ("REPLACE INTO memberships", "INSERT OR REPLACE INTO memberships")


@pytest.mark.parametrize("sql", ONE_HOME)
def test_status_sql_has_one_home(sql: str) -> None:
    root = Path(mailer.__file__).parent
    # words may be split by spaces, newlines or adjacent string literals
    pattern = re.compile(r"""[\s"']+""".join(map(re.escape, sql.split())), re.IGNORECASE)
    # The form's pending name waits in the membership, and a migration dates old joins: data,
    # not a status.
    data = re.compile(
        r"""UPDATE[\s"']+memberships[\s"']+SET[\s"']+(pending_name|joined_at|confirmed_at)""", re.I
    )
    found = [
        p
        for p in sorted(root.rglob("*.py"))
        if pattern.search(data.sub("", p.read_text(encoding="utf-8")))
    ]
    elsewhere = [p.relative_to(root).as_posix() for p in found]
    assert found and all(p.startswith("audience/status/") for p in elsewhere), elsewhere


@pytest.mark.parametrize("sql", ELSEWHERE_NEVER)
def test_no_membership_is_replaced_behind_the_table(sql: str) -> None:
    root = Path(mailer.__file__).parent
    pattern = re.compile(r"""[\s"']+""".join(map(re.escape, sql.split())), re.IGNORECASE)
    assert [p for p in root.rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))] == []


def test_the_transition_table_is_exactly_this() -> None:
    """Written out, so that an entry added or lost in the code shows here."""
    c = Change
    assert {
        (c.SUBSCRIBE, None): {M.UNCONFIRMED, M.CONFIRMED},
        (c.CONFIRM, M.UNCONFIRMED): {M.CONFIRMED},
        (c.UNSUBSCRIBE, M.UNCONFIRMED): {M.UNSUBSCRIBED},
        (c.UNSUBSCRIBE, M.CONFIRMED): {M.UNSUBSCRIBED},
        (c.RESUBSCRIBE, M.UNSUBSCRIBED): {M.UNCONFIRMED, M.CONFIRMED},
    } == MEMBERSHIP
    assert SUBSCRIBER == {
        (c.BOUNCE, S.ACTIVE): S.BOUNCED,
        (c.COMPLAINT, S.ACTIVE): S.BLOCKLISTED,
        (c.COMPLAINT, S.BOUNCED): S.BLOCKLISTED,
        (c.BLOCK, S.ACTIVE): S.BLOCKLISTED,
        (c.BLOCK, S.BOUNCED): S.BLOCKLISTED,
        (c.UNBLOCK, S.BLOCKLISTED): S.ACTIVE,
        (c.RESUBSCRIBE, S.BOUNCED): S.ACTIVE,
        (c.RESUBSCRIBE, S.BLOCKLISTED): S.ACTIVE,
        (c.ERASE, S.ACTIVE): S.ERASED,
        (c.ERASE, S.BOUNCED): S.ERASED,
        (c.ERASE, S.BLOCKLISTED): S.ERASED,
    }
    assert {(c.BOUNCE, S.BLOCKLISTED)} == KEPT
    assert {(c.UNBLOCK, S.BLOCKLISTED): S.BOUNCED} == AFTER_BOUNCE
