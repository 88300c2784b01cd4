"""The one home of every membership and subscriber status change, and of the event it writes.

Each change is looked up in TRANSITIONS, applied, and recorded in ``events`` in the same
transaction. Callers (CLI, web, imports, bounces, the send pipeline's writer) pass a
connection that is inside their transaction, or use the wrappers that open one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mailer.db.database import IN_JSON, Database, now
from mailer.models import Candidate, MailingList, MembershipStatus, Outcome, SubscriberStatus


class Change(StrEnum):
    """What happened to a reader; the value is the event's kind."""

    SUBSCRIBE = "subscribed"
    CONFIRM = "confirmed"
    UNSUBSCRIBE = "unsubscribed"
    RESUBSCRIBE = "resubscribed"  # back after leaving: own consent, or --resubscribe
    BOUNCE = "bounced"
    COMPLAINT = "complaint"
    BLOCK = "blocklisted"
    UNBLOCK = "unblocked"
    ERASE = "erased"


class Verdict(StrEnum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"  # already there: nothing written
    REFUSED = "refused"  # not allowed from where the reader is: nothing written
    MISSING = "missing"  # no such subscriber or membership


M, S = MembershipStatus, SubscriberStatus

# (change, status before) -> status after. Membership changes act on one list; subscriber
# changes on the reader everywhere. A pair that is absent is refused.
MEMBERSHIP: dict[tuple[Change, MembershipStatus | None], frozenset[MembershipStatus]] = {
    (Change.SUBSCRIBE, None): frozenset({M.UNCONFIRMED, M.CONFIRMED}),
    (Change.CONFIRM, M.UNCONFIRMED): frozenset({M.CONFIRMED}),
    (Change.UNSUBSCRIBE, M.UNCONFIRMED): frozenset({M.UNSUBSCRIBED}),
    (Change.UNSUBSCRIBE, M.CONFIRMED): frozenset({M.UNSUBSCRIBED}),
    (Change.RESUBSCRIBE, M.UNSUBSCRIBED): frozenset({M.UNCONFIRMED, M.CONFIRMED}),
}
SUBSCRIBER: dict[tuple[Change, SubscriberStatus], SubscriberStatus] = {
    (Change.BOUNCE, S.ACTIVE): S.BOUNCED,
    (Change.COMPLAINT, S.ACTIVE): S.BLOCKLISTED,
    (Change.COMPLAINT, S.BOUNCED): S.BLOCKLISTED,
    (Change.BLOCK, S.ACTIVE): S.BLOCKLISTED,
    (Change.BLOCK, S.BOUNCED): S.BLOCKLISTED,
    (Change.UNBLOCK, S.BLOCKLISTED): S.ACTIVE,
    (Change.UNBLOCK, S.BOUNCED): S.ACTIVE,
    (Change.RESUBSCRIBE, S.BOUNCED): S.ACTIVE,
    (Change.RESUBSCRIBE, S.BLOCKLISTED): S.ACTIVE,
    (Change.ERASE, S.ACTIVE): S.ERASED,
    (Change.ERASE, S.BOUNCED): S.ERASED,
    (Change.ERASE, S.BLOCKLISTED): S.ERASED,
}


LEADS_TO = {change: after for (change, _), after in SUBSCRIBER.items()}  # being there: unchanged


def membership_target(
    change: Change, before: MembershipStatus | None, wanted: MembershipStatus | None = None
) -> MembershipStatus | None:
    """Where ``change`` takes a membership from ``before``; None when it is refused."""
    allowed = MEMBERSHIP.get((change, before))
    if not allowed:
        return None
    if wanted is None:
        return next(iter(allowed)) if len(allowed) == 1 else None
    return wanted if wanted in allowed else None


@dataclass(frozen=True, slots=True)
class Where:
    """What an event is about beyond the reader: a list, a campaign, a detail."""

    list_id: int | None = None
    campaign_id: int | None = None
    detail: str = ""


def record_event(
    db: sqlite3.Connection, kind: str, subscriber_id: int, where: Where, at: str | None = None
) -> None:
    """Write one event (join_many, in this module too, writes its events in bulk). Kinds
    beyond Change: soft_bounce, which counts towards a bounce but changes no status."""
    db.execute(
        "INSERT INTO events (at, kind, subscriber_id, list_id, campaign_id, detail)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (at or now(), kind, subscriber_id, where.list_id, where.campaign_id, where.detail),
    )


def change_membership(
    db: sqlite3.Connection,
    change: Change,
    subscriber_id: int,
    list_id: int,
    *,
    to: MembershipStatus | None = None,
    detail: str = "",
    campaign_id: int | None = None,
    at: str | None = None,
) -> Verdict:
    """Move one membership (``to`` picks between allowed targets) and record the event. Only
    an active reader joins or confirms: never one who bounced, was blocked or erased."""
    found = db.execute(
        "SELECT s.status, m.status FROM subscribers s LEFT JOIN memberships m"
        " ON m.subscriber_id = s.id AND m.list_id = ? WHERE s.id = ?",
        (list_id, subscriber_id),
    ).fetchone()
    listed = db.execute("SELECT 1 FROM lists WHERE id = ?", (list_id,)).fetchone()
    if found is None or listed is None or (found[1] is None and change is not Change.SUBSCRIBE):
        return Verdict.MISSING
    before = MembershipStatus(found[1]) if found[1] else None
    target = membership_target(change, before, to)
    if target is None:
        settled = before is not None and _settled(change, before) and to in (None, before)
        return Verdict.UNCHANGED if settled else Verdict.REFUSED
    if change is not Change.UNSUBSCRIBE and found[0] != S.ACTIVE:
        return Verdict.REFUSED
    stamp = at or now()
    db.execute(
        "INSERT INTO memberships (list_id, subscriber_id, status, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (list_id, subscriber_id)"
        " DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
        (list_id, subscriber_id, str(target), stamp),
    )
    record_event(db, change, subscriber_id, Where(list_id, campaign_id, detail), stamp)
    return Verdict.CHANGED


def _settled(change: Change, before: MembershipStatus) -> bool:
    """The change is already done: confirming a confirmed reader, unsubscribing one who left."""
    return (change, before) in {
        (Change.CONFIRM, M.CONFIRMED),
        (Change.UNSUBSCRIBE, M.UNSUBSCRIBED),
        (Change.SUBSCRIBE, M.CONFIRMED),
        (Change.SUBSCRIBE, M.UNCONFIRMED),
    }


def change_subscriber(
    db: sqlite3.Connection,
    change: Change,
    subscriber_id: int,
    *,
    where: Where = Where(),
    at: str | None = None,
) -> Verdict:
    """Move one subscriber's status (everywhere, not one list) and record the event."""
    row = db.execute("SELECT status FROM subscribers WHERE id = ?", (subscriber_id,)).fetchone()
    if row is None:
        return Verdict.MISSING
    before = SubscriberStatus(row[0])
    target = SUBSCRIBER.get((change, before))
    if target is None:
        return Verdict.UNCHANGED if LEADS_TO.get(change) == before else Verdict.REFUSED
    stamp = at or now()
    if change is Change.ERASE:
        _erase(db, subscriber_id, stamp)
        where = Where(where.list_id, where.campaign_id)  # its detail could name the reader
    db.execute(
        "UPDATE subscribers SET status = ?, updated_at = ? WHERE id = ?",
        (str(target), stamp, subscriber_id),
    )
    record_event(db, change, subscriber_id, where, stamp)
    return Verdict.CHANGED


def _erase(db: sqlite3.Connection, subscriber_id: int, stamp: str) -> None:
    """Remove what identifies the reader; the row stays so that counts stay right."""
    db.execute(
        "UPDATE subscribers SET email = ?, name = '', attributes = '{}' WHERE id = ?",
        (f"erased-{subscriber_id}@erased.invalid", subscriber_id),
    )
    db.execute("UPDATE events SET detail = '' WHERE subscriber_id = ?", (subscriber_id,))
    db.execute(
        "UPDATE deliveries SET last_error = '', reply = '' WHERE subscriber_id = ?",
        (subscriber_id,),
    )
    db.execute(
        "UPDATE memberships SET status = 'unsubscribed', updated_at = ? WHERE subscriber_id = ?",
        (stamp, subscriber_id),
    )


def bounce_many(
    db: sqlite3.Connection, bounced: Sequence[tuple[int, str]], campaign_id: int, at: str
) -> int:
    """Mark readers bounced by a campaign's permanent failures ((subscriber id, reply) pairs),
    each through change_subscriber; return how many changed."""
    row = db.execute("SELECT list_id FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
    where_list = row[0] if row else None
    changed = 0
    for subscriber_id, detail in bounced:
        where = Where(where_list, campaign_id, detail)
        verdict = change_subscriber(db, Change.BOUNCE, subscriber_id, where=where, at=at)
        changed += verdict is Verdict.CHANGED
    return changed


def join_many(
    db: sqlite3.Connection,
    mailing_list: MailingList,
    candidates: Sequence[Candidate],
    *,
    resubscribe: bool = False,
    confirmed: bool = False,
    dry_run: bool = False,
) -> list[Outcome]:
    """The editor adds a batch of distinct addresses to a list (CLI, CSV import), with their
    names and attributes. Readers who left, bounced or were blocked are skipped unless
    ``resubscribe``: an import is not consent. The same TRANSITIONS, written in bulk."""
    stamp = now()
    joined = M.CONFIRMED if confirmed or not mailing_list.double_opt_in else M.UNCONFIRMED
    existing = {
        row[0]: row
        for row in db.execute(
            "SELECT s.email, s.id, s.name, s.attributes, s.status, m.status"
            " FROM subscribers s LEFT JOIN memberships m"
            f" ON m.subscriber_id = s.id AND m.list_id = ? WHERE s.email IN {IN_JSON}",
            (mailing_list.id, json.dumps([c.email for c in candidates])),
        )
    }
    outcomes: list[Outcome] = []
    new: list[tuple[Any, ...]] = []
    edits: list[tuple[Any, ...]] = []
    members: list[tuple[Any, ...]] = []  # (subscriber email, membership status)
    reactivated: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []  # (kind, list id, email)
    for c in candidates:
        row = existing.get(c.email)
        if row is None:
            attributes = json.dumps(c.attributes, ensure_ascii=False, sort_keys=True)
            new.append((c.email, c.name or "", attributes, c.smtputf8, stamp, stamp))
            members.append((c.email, joined))
            events.append((Change.SUBSCRIBE, mailing_list.id, c.email))
            outcomes.append(Outcome.ADDED)
            continue
        _, _, name, attributes_json, status, membership = row
        before = MembershipStatus(membership) if membership else None
        left = before is M.UNSUBSCRIBED or status != S.ACTIVE
        if left and not resubscribe:
            outcomes.append(Outcome.SKIPPED)
            continue
        if status != S.ACTIVE:
            if SUBSCRIBER.get((Change.RESUBSCRIBE, SubscriberStatus(status))) is None:
                outcomes.append(Outcome.SKIPPED)  # erased: only their own new consent
                continue
            reactivated.append((stamp, c.email))
            events.append((Change.RESUBSCRIBE, None, c.email))
        attributes = json.loads(attributes_json)
        merged = {**attributes, **c.attributes}
        new_name = c.name or name
        edited = new_name != name or merged != attributes
        if edited:
            edits.append((new_name, json.dumps(merged, ensure_ascii=False, sort_keys=True),
                          stamp, c.email))  # fmt: skip
        change = Change.SUBSCRIBE if before is None else Change.RESUBSCRIBE
        if membership_target(change, before, joined) is not None:
            members.append((c.email, joined))
            events.append((change, mailing_list.id, c.email))
            outcomes.append(Outcome.ADDED)
        elif edited or status != S.ACTIVE:
            outcomes.append(Outcome.UPDATED)
        else:
            outcomes.append(Outcome.UNCHANGED)
    if dry_run:
        return outcomes
    db.executemany(
        "INSERT INTO subscribers (email, name, attributes, smtputf8, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        new,
    )
    db.executemany(
        "UPDATE subscribers SET name = ?, attributes = ?, updated_at = ? WHERE email = ?", edits
    )
    db.executemany(
        "UPDATE subscribers SET status = 'active', updated_at = ? WHERE email = ?", reactivated
    )
    db.executemany(
        "INSERT INTO memberships (list_id, subscriber_id, status, updated_at)"
        " SELECT ?, id, ?, ? FROM subscribers WHERE email = ?"
        " ON CONFLICT (list_id, subscriber_id)"
        " DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
        [(mailing_list.id, str(status), stamp, email) for email, status in members],
    )
    db.executemany(
        "INSERT INTO events (at, kind, list_id, detail, subscriber_id)"
        " SELECT ?, ?, ?, '', id FROM subscribers WHERE email = ?",
        [(stamp, str(kind), list_id, email) for kind, list_id, email in events],
    )
    return outcomes


# Wrappers that open their own transaction, for callers holding a Database.


def set_membership(
    database: Database,
    change: Change,
    subscriber_id: int,
    list_id: int,
    *,
    to: MembershipStatus | None = None,
    detail: str = "",
) -> Verdict:
    with database.transaction() as db:
        return change_membership(db, change, subscriber_id, list_id, to=to, detail=detail)


def set_subscriber(
    database: Database, change: Change, subscriber_id: int, *, where: Where = Where()
) -> Verdict:
    with database.transaction() as db:
        return change_subscriber(db, change, subscriber_id, where=where)
