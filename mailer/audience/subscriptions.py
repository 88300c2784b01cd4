"""Subscribing and unsubscribing by address: the editor's adds and removals, the form's requests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from mailer.audience import erased, members
from mailer.audience.status import (
    Change,
    Verdict,
    Where,
    change_membership,
    change_subscriber,
    join_many,
    renew_consent,
)
from mailer.db.database import Connection, Database
from mailer.db.database import now as timestamp
from mailer.errors import NotFoundError
from mailer.models import (
    Candidate,
    Consent,
    MailingList,
    Member,
    MembershipStatus,
    Outcome,
    SubscriberStatus,
)


@dataclass(frozen=True, slots=True)
class Link:
    """A confirm link being followed: when it was issued (None: an old link that does not say),
    the clock now, how long links stay good (seconds), the workspace secret (to forget an
    erasure) and the IP the confirmation comes from."""

    issued: int | None
    now: float
    max_age: float
    secret: bytes
    ip: str = ""


class _Undone(Exception):
    """Roll back a confirmation half done (the membership moved meanwhile)."""

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict


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
    reader confirms; ``candidate.consent`` (source form, the requester's IP) is the new
    membership's record. A reader who left, or whose address bounced, stays so until they
    confirm this new request; a blocked one gets nothing (the editor or their complaint blocked
    them: only the editor lifts it), and neither does one confirmed and active. An erased
    address is a stranger: it comes back as a new subscriber."""
    with database.transaction() as db:
        subscriber, status = members.ensure_subscriber(db, replace(candidate, name=None))
        if status not in (SubscriberStatus.ACTIVE, SubscriberStatus.BOUNCED):
            return None
        change_membership(db, Change.SUBSCRIBE, subscriber, mailing_list.id,
                          to=MembershipStatus.UNCONFIRMED, detail=detail,
                          consent=candidate.consent)  # fmt: skip
        db.execute(
            "UPDATE memberships SET pending_name = ?"
            " WHERE list_id = ? AND subscriber_id = ? AND status != 'confirmed'",
            (candidate.name or "", mailing_list.id, subscriber),
        )
    member = members.by_id(database, mailing_list.id, subscriber)
    if member is None or not _waits(member):
        return None
    return member


def _waits(member: Member) -> bool:
    """Whether a confirmation could change anything: not for one confirmed and active, nor for
    a blocked or erased reader."""
    if member.subscriber_status == SubscriberStatus.BOUNCED:
        return True
    active = member.subscriber_status == SubscriberStatus.ACTIVE
    return active and member.status != MembershipStatus.CONFIRMED


def confirmable(member: Member, issued: int | None, now: float, max_age: float) -> bool:
    """Whether a confirm link issued at ``issued`` (None: an old link that does not say) may
    confirm ``member`` now: only within ``max_age`` seconds, and for a reader who left or
    bounced only if the link was issued for a request made after that."""
    if not _waits(member):
        return False
    left = member.status == MembershipStatus.UNSUBSCRIBED
    left = left or member.subscriber_status == SubscriberStatus.BOUNCED
    if issued is None:
        return not left and member.status == MembershipStatus.UNCONFIRMED
    if not 0 <= now - issued <= max_age:
        return False
    if left:  # changed_at: the latest change on this list or of the reader (their bounce)
        return issued >= datetime.fromisoformat(member.changed_at).timestamp()
    return True


def confirm(
    database: Database,
    member: Member,
    list_id: int,
    link: Link,
) -> Verdict:
    """The reader follows a confirm link: confirm the membership (or, for a reader who left or
    bounced and asked again, bring them back with this new consent), give the reader the form's
    name if they have none, and forget that the address was once erased; REFUSED for a link
    that may not."""
    active = member.subscriber_status == SubscriberStatus.ACTIVE
    if member.status == MembershipStatus.CONFIRMED and active:
        return Verdict.UNCHANGED
    if not confirmable(member, link.issued, link.now, link.max_age):
        return Verdict.REFUSED
    returning = member.status != MembershipStatus.UNCONFIRMED
    try:
        with database.transaction() as db:
            stamp = timestamp()
            if member.subscriber_status == SubscriberStatus.BOUNCED:
                now = db.execute("SELECT status FROM subscribers WHERE id = ?", (member.id,))
                if now.fetchone()[0] != SubscriberStatus.BOUNCED:  # blocked meanwhile
                    raise _Undone(Verdict.REFUSED)
                where = Where(list_id, None, "web")
                change_subscriber(db, Change.RESUBSCRIBE, member.id, where=where, at=stamp)
            if member.status != MembershipStatus.CONFIRMED:
                change = Change.RESUBSCRIBE if returning else Change.CONFIRM
                to = MembershipStatus.CONFIRMED
                verdict = change_membership(
                    db, change, member.id, list_id, to=to, detail="web", at=stamp
                )
                if verdict is not Verdict.CHANGED:
                    raise _Undone(verdict)
            if returning:
                renew_consent(db, member.id, list_id, Consent("form", ip=link.ip), stamp)
            _take_pending_name(db, member.id, list_id)
            erased.forget_erasure(db, link.secret, member.email)
    except _Undone as undone:
        return undone.verdict
    return Verdict.CHANGED


def _take_pending_name(db: Connection, subscriber_id: int, list_id: int) -> None:
    """The name the form gave becomes the reader's, if they have none yet; then it is gone."""
    where, key = "WHERE list_id = ? AND subscriber_id = ?", (list_id, subscriber_id)
    row = db.execute(f"SELECT pending_name FROM memberships {where}", key).fetchone()
    if row and row[0]:
        db.execute(
            "UPDATE subscribers SET name = ?, updated_at = ? WHERE id = ? AND name = ''",
            (row[0], timestamp(), subscriber_id),
        )
    db.execute(f"UPDATE memberships SET pending_name = '' {where}", key)
