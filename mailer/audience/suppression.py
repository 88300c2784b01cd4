"""Suppression: blocking addresses on every list (known or never seen) and lifting the block."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from mailer.audience import members
from mailer.audience.erased import erased_among
from mailer.audience.status import Change, Verdict, Where, change_subscriber
from mailer.db.database import IN_JSON, Database, as_json
from mailer.models import Candidate, SubscriberStatus


class Suppressed(StrEnum):
    """What blocking or unblocking did to one address."""

    BLOCKED = "blocked"  # a known reader, blocked now
    BLOCKED_NEW = "blocked_new"  # never seen: kept only to be refused
    ALREADY_BLOCKED = "already_blocked"
    UNBLOCKED = "unblocked"
    NOT_BLOCKED = "not_blocked"  # active, bounced or erased: nothing to lift
    ERASED = "erased"  # an erased reader's stand-in address: nothing to block
    FORGOTTEN = "forgotten"  # erased at the reader's request: only its keyed hash is kept
    UNKNOWN = "unknown"  # unblock of an address never seen


@dataclass(frozen=True, slots=True)
class Suppression:
    """One address: what happened, its status before, and its lists as they stay (slug and
    membership status), which say where an unblocked reader receives mail again."""

    email: str
    outcome: Suppressed
    before: str  # the subscriber status before ('' for an address never seen)
    lists: tuple[tuple[str, str], ...] = ()
    blocked_by: str = ""  # for an unblock: what blocked them (blocklisted: the editor; complaint)
    after: str = ""  # for an unblock: the status now (bounced, when their address bounced)


def block(
    database: Database,
    addresses: Sequence[Candidate],
    secret: bytes,
    detail: str = "by the editor",
) -> list[Suppression]:
    """Block each address on every list, in one transaction: a known reader becomes blocklisted
    (their memberships stay as they are); an address never seen is kept, blocklisted, with no
    membership, so that no import, form or editor's addition reaches it without --resubscribe.
    An address erased at the reader's request (its keyed hash made with ``secret``) is not
    written back: that hash already keeps imports and additions away (FORGOTTEN)."""
    done: list[Suppression] = []
    with database.transaction() as db:
        forgotten = erased_among(db, secret, [c.email for c in addresses])
        for candidate in addresses:
            if candidate.email in forgotten:
                done.append(Suppression(candidate.email, Suppressed.FORGOTTEN, ""))
                continue
            known = members.subscriber_id(db, candidate.email) is not None
            subscriber, before = members.ensure_subscriber(db, candidate)
            verdict = change_subscriber(db, Change.BLOCK, subscriber, where=Where(detail=detail))
            outcome = {
                Verdict.CHANGED: Suppressed.BLOCKED if known else Suppressed.BLOCKED_NEW,
                Verdict.UNCHANGED: Suppressed.ALREADY_BLOCKED,
            }.get(verdict, Suppressed.ERASED)
            done.append(Suppression(candidate.email, outcome, before if known else ""))
    return [_with_lists(database, s) for s in done]


def unblock(
    database: Database, emails: Sequence[str], detail: str = "by the editor"
) -> list[Suppression]:
    """Lift the block on each address, in one transaction. Only a block is lifted: a bounced
    reader stays bounced (`subscribers add --resubscribe` brings them back), as does one whose
    address bounced while blocked, and an erased one erased. Memberships stay as they were: an
    unblocked active reader receives mail again on each list where they are confirmed."""
    done: list[Suppression] = []
    with database.transaction() as db:
        for email in emails:
            row = db.execute("SELECT id, status FROM subscribers WHERE email = ?", (email,))
            found = row.fetchone()
            if found is None:
                done.append(Suppression(email, Suppressed.UNKNOWN, ""))
                continue
            subscriber, before = int(found[0]), str(found[1])
            if before != SubscriberStatus.BLOCKLISTED:
                done.append(Suppression(email, Suppressed.NOT_BLOCKED, before))
                continue
            cause = db.execute(
                "SELECT kind FROM events WHERE subscriber_id = ? AND kind IN (?, ?)"
                " ORDER BY id DESC LIMIT 1",
                (subscriber, Change.BLOCK.value, Change.COMPLAINT.value),
            ).fetchone()
            change_subscriber(db, Change.UNBLOCK, subscriber, where=Where(detail=detail))
            blocked_by = str(cause[0]) if cause else ""
            after = db.execute("SELECT status FROM subscribers WHERE id = ?", (subscriber,))
            done.append(Suppression(email, Suppressed.UNBLOCKED, before, (), blocked_by,
                                    str(after.fetchone()[0])))  # fmt: skip
    return [_with_lists(database, s) for s in done]


def _with_lists(database: Database, done: Suppression) -> Suppression:
    rows = database.query(
        "SELECT l.slug, m.status FROM memberships m JOIN lists l ON l.id = m.list_id"
        " JOIN subscribers s ON s.id = m.subscriber_id WHERE s.email = ? ORDER BY l.slug",
        (done.email,),
    )
    return replace(done, lists=tuple((str(r[0]), str(r[1])) for r in rows))


def suppressed_among(database: Database, secret: bytes, emails: Sequence[str]) -> dict[str, str]:
    """Which of ``emails`` nobody may write to: a reader blocked or bounced (their status), or
    an address erased at its owner's request ("erased")."""
    with database.transaction(exclusive=False) as db:
        found = {str(email): str(status) for email, status in db.execute(
            f"SELECT email, status FROM subscribers WHERE email IN {IN_JSON} AND status != ?",
            (as_json(emails), SubscriberStatus.ACTIVE),
        )}  # fmt: skip
        for email in erased_among(db, secret, emails):
            found[email] = SubscriberStatus.ERASED
    return found
