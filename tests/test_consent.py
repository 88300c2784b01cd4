"""Consent as data: each membership keeps how and when the reader joined, from where, and when
they confirmed; written by the status home, and by the form from its request and confirmation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from mailer.audience import lists, members, subscriptions
from mailer.audience.status import Change, Verdict, change_membership
from mailer.db.database import Database
from mailer.models import Candidate, Consent, MailingList
from mailer.models import MembershipStatus as M
from tests.conftest import store
from tests.smtp_servers import LoopbackController, Mailbox
from tests.test_web import FORM, Site, confirm_link, http, make_site, post_form

T = [f"2030-01-0{day}T00:00:00+00:00" for day in range(1, 10)]  # T[n]: the n-th day


@pytest.fixture
def database(engine: str, tmp_path: Path) -> Iterator[Database]:
    """The test's store, on each engine in turn."""
    with store(tmp_path) as db:
        yield db


@pytest.fixture
def weekly(database: Database) -> MailingList:
    return lists.create(database, "weekly", "Weekly")


def record(database: Database, list_id: int, subscriber_id: int) -> tuple[str, ...]:
    """(status, source, joined_at, confirmed_at, ip) of one membership."""
    row = database.query_one(
        "SELECT status, source, joined_at, confirmed_at, ip FROM memberships"
        " WHERE list_id = ? AND subscriber_id = ?",
        (list_id, subscriber_id),
    )
    assert row is not None
    return tuple(row)


def move(
    database: Database,
    change: Change,
    sid: int,
    list_id: int,
    *,
    at: str,
    to: M | None = None,
    consent: Consent | None = None,
) -> None:
    with database.transaction() as db:
        verdict = change_membership(db, change, sid, list_id, to=to, at=at, consent=consent)
    assert verdict is Verdict.CHANGED


def new_subscriber(database: Database, email: str) -> int:
    with database.transaction() as db:
        [(sid,)] = db.execute(
            "INSERT INTO subscribers (email, created_at, updated_at) VALUES (?, ?, ?) RETURNING id",
            (email, T[0], T[0]),
        ).fetchall()
    return int(sid)


def test_joining_confirmed_dates_the_confirmation_at_the_join(
    database: Database, weekly: MailingList
) -> None:
    ada = new_subscriber(database, "ada@example.org")
    move(database, Change.SUBSCRIBE, ada, weekly.id, to=M.CONFIRMED, at=T[1],
         consent=Consent("api", ip="203.0.113.5"))  # fmt: skip
    assert record(database, weekly.id, ada) == ("confirmed", "api", T[1], T[1], "203.0.113.5")
    bob = new_subscriber(database, "bob@example.org")  # the source's own times are kept
    move(database, Change.SUBSCRIBE, bob, weekly.id, to=M.CONFIRMED, at=T[5],
         consent=Consent("import:old.csv", joined_at=T[1], confirmed_at=T[2]))  # fmt: skip
    assert record(database, weekly.id, bob) == ("confirmed", "import:old.csv", T[1], T[2], "")


def test_confirming_leaving_and_coming_back(database: Database, weekly: MailingList) -> None:
    ada = new_subscriber(database, "ada@example.org")
    move(database, Change.SUBSCRIBE, ada, weekly.id, to=M.UNCONFIRMED, at=T[1],
         consent=Consent("form", ip="192.0.2.1"))  # fmt: skip
    assert record(database, weekly.id, ada) == ("unconfirmed", "form", T[1], "", "192.0.2.1")
    move(database, Change.CONFIRM, ada, weekly.id, at=T[2])
    assert record(database, weekly.id, ada) == ("confirmed", "form", T[1], T[2], "192.0.2.1")
    move(database, Change.UNSUBSCRIBE, ada, weekly.id, at=T[3])  # when they confirmed stays
    assert record(database, weekly.id, ada) == ("unsubscribed", "form", T[1], T[2], "192.0.2.1")
    move(database, Change.RESUBSCRIBE, ada, weekly.id, to=M.CONFIRMED, at=T[4])
    assert record(database, weekly.id, ada) == ("confirmed", "form", T[1], T[4], "192.0.2.1")


# the form: the requester's IP and the time of the request; confirmed when they confirm


@pytest.fixture
def site(engine: str, workspace: Path, smtp: tuple[LoopbackController, Mailbox]) -> Iterator[Site]:
    """A live site for the test, on each engine in turn."""
    made = make_site(workspace, smtp)
    yield made
    made.live.stop()


def consent_of(site: Site, mailing_list: MailingList, email: str) -> tuple[str, ...]:
    with site.live.store() as store:
        member = members.find(store, mailing_list, email)
    assert member is not None
    return (member.status, member.source, member.joined_at, member.confirmed_at, member.ip)


def test_the_form_records_its_request_and_the_confirmation(site: Site) -> None:
    post_form(f"{site.live.url}/s/letters", {"email": "bea@example.org"}, ip="192.0.2.44")
    [received] = site.mailbox.wait_for(1)
    status, source, joined, confirmed, ip = consent_of(site, site.double, "bea@example.org")
    assert (status, source, confirmed, ip) == ("unconfirmed", "form", "", "192.0.2.44")
    assert abs(datetime.fromisoformat(joined).timestamp() - time.time()) < 60  # at the request
    link = confirm_link(received.message, site.live.url)
    answer = http("POST", link, b"", {**FORM, "X-Forwarded-For": "198.51.100.1"})
    assert answer.status == 200
    after = consent_of(site, site.double, "bea@example.org")
    assert after[:3] == ("confirmed", "form", joined) and after[4] == "192.0.2.44"
    assert after[3] >= joined  # confirmed when they confirmed, after the request


def test_a_reader_who_comes_back_through_the_form_gets_a_new_record(site: Site) -> None:
    with site.live.store() as store:
        subscriptions.add(store, site.double, [Candidate("cy@example.org", False)], confirmed=True)
        subscriptions.unsubscribe(store, site.double, "cy@example.org", "test")
    _, _, joined, _, _ = consent_of(site, site.double, "cy@example.org")
    post_form(f"{site.live.url}/s/letters", {"email": "cy@example.org"}, ip="192.0.2.50")
    [received] = site.mailbox.wait_for(1)
    assert consent_of(site, site.double, "cy@example.org")[0] == "unsubscribed"  # until then
    link = confirm_link(received.message, site.live.url)
    assert http("POST", link, b"", {**FORM, "X-Forwarded-For": "198.51.100.2"}).status == 200
    status, source, joined_again, confirmed, ip = consent_of(site, site.double, "cy@example.org")
    assert (status, source, joined_again, ip) == ("confirmed", "form", joined, "198.51.100.2")
    assert confirmed >= joined
