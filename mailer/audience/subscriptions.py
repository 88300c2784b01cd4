"""Subscribing and unsubscribing by address: the editor's additions and removals, the public
form's request. Every status change goes through ``status``."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from mailer.audience import members
from mailer.audience.status import Change, Verdict, change_membership, join_many
from mailer.db.database import Database
from mailer.db.database import now as timestamp
from mailer.errors import NotFoundError
from mailer.models import Candidate, MailingList, Member, MembershipStatus, Outcome


def add(
    database: Database,
    mailing_list: MailingList,
    candidates: Sequence[Candidate],
    *,
    resubscribe: bool = False,
    confirmed: bool = False,
    dry_run: bool = False,
) -> list[Outcome]:
    """Add or update a batch of distinct addresses on a list, in one transaction."""
    with database.transaction() as db:
        return join_many(
            db, mailing_list, candidates, resubscribe=resubscribe, confirmed=confirmed,
            dry_run=dry_run,
        )  # fmt: skip


def unsubscribe(database: Database, mailing_list: MailingList, email: str, detail: str) -> bool:
    """Unsubscribe an address from a list; False when it already was."""
    with database.transaction() as db:
        subscriber = members.subscriber_id(db, email)
        verdict = Verdict.MISSING
        if subscriber is not None:
            verdict = change_membership(
                db, Change.UNSUBSCRIBE, subscriber, mailing_list.id, detail=detail
            )
    if verdict is Verdict.MISSING:
        raise NotFoundError("subscriber", email, f"not on list {mailing_list.slug!r}")
    return verdict is Verdict.CHANGED


def request(
    database: Database, mailing_list: MailingList, candidate: Candidate, detail: str = "web form"
) -> Member | None:
    """The public form asks to subscribe an address: return the member to send a confirmation
    message to, or None. Always double opt-in, whatever the list's opt-in (that is for the
    editor's own additions). The form's name waits in the membership's pending_name until the
    reader confirms. A reader who left stays unsubscribed until they confirm this new request;
    a bounced, blocked or erased one gets nothing, and neither does a confirmed one."""
    with database.transaction() as db:
        subscriber, status = members.ensure_subscriber(db, replace(candidate, name=None))
        if status != "active":
            return None
        change_membership(db, Change.SUBSCRIBE, subscriber, mailing_list.id,
                          to=MembershipStatus.UNCONFIRMED, detail=detail)  # fmt: skip
        db.execute(
            "UPDATE memberships SET pending_name = ?"
            " WHERE list_id = ? AND subscriber_id = ? AND status != 'confirmed'",
            (candidate.name or "", mailing_list.id, subscriber),
        )
    member = members.by_id(database, mailing_list.id, subscriber)
    if member is None or member.status == MembershipStatus.CONFIRMED:
        return None
    return member


def confirmable(member: Member, issued: int | None, now: float, max_age: float) -> bool:
    """Whether a confirm link issued at ``issued`` (None: an old link that does not say) may
    confirm ``member`` now: only within ``max_age`` seconds, and for a reader who left only if
    the link was issued for a request made after they left."""
    if member.subscriber_status != "active" or member.status == MembershipStatus.CONFIRMED:
        return False
    if issued is None:
        return member.status == MembershipStatus.UNCONFIRMED
    if not 0 <= now - issued <= max_age:
        return False
    if member.status == MembershipStatus.UNSUBSCRIBED:
        return issued >= datetime.fromisoformat(member.updated_at).timestamp()
    return True


def confirm(
    database: Database,
    member: Member,
    list_id: int,
    issued: int | None,
    now: float,
    max_age: float,
) -> Verdict:
    """The reader follows a confirm link: confirm the membership (or, for a reader who left and
    asked again, resubscribe them), and give the reader the form's name if they have none;
    REFUSED for a link that may not."""
    if member.status == MembershipStatus.CONFIRMED:
        return Verdict.UNCHANGED
    if not confirmable(member, issued, now, max_age):
        return Verdict.REFUSED
    change = Change.CONFIRM if member.status == MembershipStatus.UNCONFIRMED else Change.RESUBSCRIBE
    with database.transaction() as db:
        verdict = change_membership(db, change, member.id, list_id,
                                    to=MembershipStatus.CONFIRMED, detail="web")  # fmt: skip
        if verdict is Verdict.CHANGED:
            _take_pending_name(db, member.id, list_id)
    return verdict


def _take_pending_name(db: sqlite3.Connection, subscriber_id: int, list_id: int) -> None:
    """The name the form gave becomes the reader's, if they have none yet; then it is gone."""
    where, key = "WHERE list_id = ? AND subscriber_id = ?", (list_id, subscriber_id)
    row = db.execute(f"SELECT pending_name FROM memberships {where}", key).fetchone()
    if row and row[0]:
        db.execute(
            "UPDATE subscribers SET name = ?, updated_at = ? WHERE id = ? AND name = ''",
            (row[0], timestamp(), subscriber_id),
        )
    db.execute(f"UPDATE memberships SET pending_name = '' {where}", key)
