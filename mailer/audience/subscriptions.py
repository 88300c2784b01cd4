"""Subscribing and unsubscribing by address: the editor's additions and removals, the public
form's request. Every status change goes through ``status``."""

from __future__ import annotations

from collections.abc import Sequence

from mailer.audience import members
from mailer.audience.status import Change, Verdict, change_membership, join_many
from mailer.db.database import Database
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
    message to, or None. A reader who left gets an unconfirmed membership and a confirmation
    message; a bounced, blocked or erased one gets nothing, and neither does a confirmed one."""
    with database.transaction() as db:
        subscriber, status = members.ensure_subscriber(db, candidate)
        if status != "active":
            return None
        pending = MembershipStatus.UNCONFIRMED
        joined = pending if mailing_list.double_opt_in else MembershipStatus.CONFIRMED
        for change, to in ((Change.SUBSCRIBE, joined), (Change.RESUBSCRIBE, pending)):
            verdict = change_membership(
                db, change, subscriber, mailing_list.id, to=to, detail=detail
            )
            if verdict is Verdict.CHANGED:
                break
    member = members.by_id(database, mailing_list.id, subscriber)
    if member is None or member.status != MembershipStatus.UNCONFIRMED:
        return None
    return member
