"""Applying one status change and writing its event in the same transaction; erasure; bounces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailer.audience.status.table import (
    AFTER_BOUNCE,
    KEPT,
    LEADS_TO,
    SUBSCRIBER,
    Change,
    Edit,
    M,
    S,
    Verdict,
    membership_target,
    settled,
)
from mailer.db.database import Connection, Database, now
from mailer.models import Consent, MembershipStatus, SubscriberStatus


@dataclass(frozen=True, slots=True)
class Where:
    """What an event is about beyond the reader: a list, a campaign, a detail."""

    list_id: int | None = None
    campaign_id: int | None = None
    detail: str = ""


def record_event(
    db: Connection, kind: str, subscriber_id: int | None, where: Where, at: str | None = None
) -> None:
    """Write one event (join_many, in this module too, writes its events in bulk). Kinds
    beyond Change: soft_bounce, which counts towards a bounce but changes no status; Edit's,
    the reader's own changes and requests; list_deleted, of no reader (departures)."""
    db.execute(
        "INSERT INTO events (at, kind, subscriber_id, list_id, campaign_id, detail)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (at or now(), kind, subscriber_id, where.list_id, where.campaign_id, where.detail),
    )


def change_membership(
    db: Connection,
    change: Change,
    subscriber_id: int,
    list_id: int,
    *,
    to: MembershipStatus | None = None,
    detail: str = "",
    campaign_id: int | None = None,
    at: str | None = None,
    consent: Consent | None = None,
) -> Verdict:
    """Move one membership (``to`` picks between allowed targets) and record the event. Only
    an active reader joins or confirms: never one who bounced, was blocked or erased; but a
    bounced reader's own request through the form may wait, unconfirmed, for their
    confirmation. ``consent`` (how they joined) is written with the change; a membership that
    becomes confirmed is dated confirmed then (a new one added confirmed: when it joined)."""
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
    waits = found[0] == S.BOUNCED and target is M.UNCONFIRMED  # nothing goes out but a request
    if change is not Change.UNSUBSCRIBE and found[0] != S.ACTIVE and not waits:
        return Verdict.REFUSED  # even where it would be done: they receive nothing
    if target is None:
        done = before is not None and settled(change, before) and to in (None, before)
        return Verdict.UNCHANGED if done else Verdict.REFUSED
    stamp = at or now()
    given = consent or Consent("")
    joined = given.joined_at or stamp
    confirmed = ""
    if target is M.CONFIRMED:
        confirmed = given.confirmed_at or (joined if before is None else stamp)
    db.execute(
        "INSERT INTO memberships (list_id, subscriber_id, status, updated_at, joined_at, source,"
        " ip, confirmed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        " ON CONFLICT (list_id, subscriber_id) DO UPDATE SET status = ?3, updated_at = ?4,"
        " confirmed_at = CASE WHEN ?8 != '' THEN ?8 ELSE memberships.confirmed_at END,"
        " source = CASE WHEN ?9 = 1 THEN ?6 ELSE memberships.source END,"
        " ip = CASE WHEN ?9 = 1 THEN ?7 ELSE memberships.ip END",
        (list_id, subscriber_id, str(target), stamp, joined, given.source, given.ip, confirmed,
         consent is not None),
    )  # fmt: skip
    record_event(db, change, subscriber_id, Where(list_id, campaign_id, detail), stamp)
    return Verdict.CHANGED


def change_subscriber(
    db: Connection,
    change: Change,
    subscriber_id: int,
    *,
    where: Where | None = None,
    at: str | None = None,
) -> Verdict:
    """Move one subscriber's status (everywhere, not one list) and record the event."""
    where = where or Where()
    row = db.execute("SELECT status FROM subscribers WHERE id = ?", (subscriber_id,)).fetchone()
    if row is None:
        return Verdict.MISSING
    before = SubscriberStatus(row[0])
    if (change, before) in KEPT:  # recorded; the status stays
        record_event(db, change, subscriber_id, where, at or now())
        return Verdict.UNCHANGED
    target = SUBSCRIBER.get((change, before))
    if target is None:
        return Verdict.UNCHANGED if LEADS_TO.get(change) == before else Verdict.REFUSED
    if (change, before) in AFTER_BOUNCE and _bounced_since_back(db, subscriber_id):
        target = AFTER_BOUNCE[(change, before)]
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


# The column each of the reader's own edits changes (the others are requests: events only).
PROFILE = {Edit.NAME: "name", Edit.LANGUAGE: "lang", Edit.ADDRESS: "email"}


def change_profile(
    db: Connection,
    edit: Edit,
    subscriber_id: int,
    value: str,
    *,
    smtputf8: bool = False,
    detail: str = "",
    at: str | None = None,
) -> Verdict:
    """Change the reader's name, language or address (``edit``; ``smtputf8`` goes with an
    address) and record the event. An erased reader has nothing left to change (REFUSED). A
    new address must be free: the caller makes sure in the same transaction."""
    column = PROFILE.get(edit)
    if column is None:
        raise ValueError(f"{edit} changes no data of the reader")
    row = db.execute(
        f"SELECT status, {column} FROM subscribers WHERE id = ?", (subscriber_id,)
    ).fetchone()
    if row is None:
        return Verdict.MISSING
    if row[0] == S.ERASED:
        return Verdict.REFUSED
    if row[1] == value:
        return Verdict.UNCHANGED
    stamp = at or now()
    extra, values = ("", ()) if edit is not Edit.ADDRESS else (", smtputf8 = ?", (smtputf8,))
    db.execute(
        f"UPDATE subscribers SET {column} = ?{extra}, updated_at = ? WHERE id = ?",
        (value, *values, stamp, subscriber_id),
    )
    record_event(db, edit, subscriber_id, Where(detail=detail), stamp)
    return Verdict.CHANGED


def renew_consent(
    db: Connection, subscriber_id: int, list_id: int, consent: Consent, at: str
) -> None:
    """A reader who had left consents again (their confirmation of a form request): the
    membership's record becomes this consent; when they first joined stays."""
    db.execute(
        "UPDATE memberships SET source = ?, ip = ?, confirmed_at = ?"
        " WHERE list_id = ? AND subscriber_id = ?",
        (consent.source, consent.ip, consent.confirmed_at or at, list_id, subscriber_id),
    )


def _erase(db: Connection, subscriber_id: int, stamp: str) -> None:
    """Remove what identifies the reader (address, name, attributes, tags, language, the IPs
    of their consent, what servers answered about them); the rows stay, so counts stay right."""
    db.execute(
        "UPDATE subscribers SET email = ?, name = '', attributes = '{}', lang = '', smtputf8 = 0"
        " WHERE id = ?",
        (f"erased-{subscriber_id}@erased.invalid", subscriber_id),
    )
    db.execute("DELETE FROM tags WHERE subscriber_id = ?", (subscriber_id,))
    db.execute("UPDATE events SET detail = '' WHERE subscriber_id = ?", (subscriber_id,))
    db.execute(
        "UPDATE deliveries SET last_error = '', reply = '' WHERE subscriber_id = ?",
        (subscriber_id,),
    )
    db.execute(
        "UPDATE memberships SET status = 'unsubscribed', updated_at = ?, ip = '',"
        " pending_name = '' WHERE subscriber_id = ?",
        (stamp, subscriber_id),
    )


def _bounced_since_back(db: Connection, subscriber_id: int) -> bool:
    """Whether the reader's address bounced after they last came back (their own new consent,
    or --resubscribe: a membership comes back only with its reader active)."""
    row = db.execute(
        "SELECT kind FROM events WHERE subscriber_id = ? AND kind IN (?, ?)"
        " ORDER BY id DESC LIMIT 1",
        (subscriber_id, Change.BOUNCE.value, Change.RESUBSCRIBE.value),
    ).fetchone()
    return row is not None and row[0] == Change.BOUNCE


def bounce(db: Connection, subscriber_id: int, where: Where, at: str) -> Verdict:
    """A hard bounce: the reader becomes bounced. For one already bounced the status stays
    and the bounce is still recorded, so `campaigns show` lists it; a blocked one stays
    blocked with the bounce kept (KEPT); for an erased reader nothing is written."""
    verdict = change_subscriber(db, Change.BOUNCE, subscriber_id, where=where, at=at)
    if verdict is Verdict.UNCHANGED:
        row = db.execute("SELECT status FROM subscribers WHERE id = ?", (subscriber_id,))
        if row.fetchone()[0] == S.BOUNCED:  # a blocked reader's is written already
            record_event(db, Change.BOUNCE, subscriber_id, where, at)
    return verdict


def bounce_many(
    db: Connection, bounced: Sequence[tuple[int, str]], campaign_id: int, at: str
) -> int:
    """Mark readers bounced by a campaign's permanent failures ((subscriber id, reply) pairs),
    each through change_subscriber; return how many changed."""
    row = db.execute("SELECT list_id FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
    where_list = row[0] if row else None
    changed = 0
    for subscriber_id, detail in bounced:
        verdict = bounce(db, subscriber_id, Where(where_list, campaign_id, detail), at)
        changed += verdict is Verdict.CHANGED
    return changed


# Wrappers that open their own transaction, for callers holding a Database.


def set_membership(
    database: Database,
    change: Change,
    subscriber_id: int,
    list_id: int,
    *,
    to: MembershipStatus | None = None,
    detail: str = "",
    campaign_id: int | None = None,
) -> Verdict:
    with database.transaction() as db:
        return change_membership(db, change, subscriber_id, list_id, to=to, detail=detail,
                                 campaign_id=campaign_id)  # fmt: skip


def set_subscriber(
    database: Database, change: Change, subscriber_id: int, *, where: Where | None = None
) -> Verdict:
    with database.transaction() as db:
        return change_subscriber(db, change, subscriber_id, where=where)
