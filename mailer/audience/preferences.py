"""A reader's own choices on their preferences page: name, language, lists, a new address."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from mailer.audience import erased, lists
from mailer.audience.addresses import Address
from mailer.audience.status import (
    Change,
    Edit,
    Verdict,
    Where,
    change_membership,
    change_profile,
    change_subscriber,
    record_event,
)
from mailer.db.database import Connection, Database, now
from mailer.models import MailingList, MembershipStatus, SubscriberStatus
from mailer.times import stamp as stamp_of

SOURCE = "preferences"  # the consent source of a list joined here, and every event's detail
ON = (MembershipStatus.CONFIRMED, MembershipStatus.UNCONFIRMED)
# The lists a reader chooses among: every list with a public form, and every list they are on.
OFFERED = (
    "SELECT l.id, COALESCE(m.status, '') FROM lists l LEFT JOIN memberships m"
    " ON m.list_id = l.id AND m.subscriber_id = ?"
    " WHERE l.public_form = 1 OR m.status IN ('confirmed', 'unconfirmed') ORDER BY l.name, l.slug"
)
NONCE_BITS = 62  # a request's random number: a positive SQLite integer, 12 base-36 digits


@dataclass(frozen=True, slots=True)
class Choice:
    """One list on the page, and the reader's membership of it ('' when they never joined)."""

    list: MailingList
    status: str

    @property
    def on(self) -> bool:
        return self.status in ON


@dataclass(frozen=True, slots=True)
class Profile:
    """The reader as their preferences page shows them."""

    id: int
    email: str
    name: str
    lang: str
    status: str  # everywhere: active, bounced, blocklisted
    smtputf8: bool
    lists: tuple[Choice, ...]


@dataclass(frozen=True, slots=True)
class Choices:
    """What the reader sent: their name and language, the lists ticked among those shown."""

    name: str
    lang: str
    ticked: frozenset[int]
    shown: frozenset[int]
    ip: str = ""  # where their consent to a list came from


@dataclass(frozen=True, slots=True)
class Waiting:
    """A request for a new address, as its confirm link finds it."""

    email: str
    lang: str  # the reader's
    done: bool  # confirmed already: the reader is mailed there


class Moved(StrEnum):
    """What following a new address's confirm link did."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"  # confirmed already (the link followed twice)
    TAKEN = "taken"  # another reader has the address now, or it may not be used
    INVALID = "invalid"  # no such request: replaced, withdrawn, or the reader was erased


def profile(database: Database, subscriber_id: int) -> Profile | None:
    """The reader with this id, or None (never known, or erased)."""
    row = database.query_one(
        "SELECT id, email, name, lang, status, smtputf8 FROM subscribers WHERE id = ?",
        (subscriber_id,),
    )
    if row is None or row[4] == SubscriberStatus.ERASED:
        return None
    choices = []
    for list_id, status in database.query(OFFERED, (subscriber_id,)):
        found = lists.by_id(database, list_id)
        if found is not None:
            choices.append(Choice(found, str(status)))
    return Profile(int(row[0]), row[1], row[2], row[3], row[4], bool(row[5]), tuple(choices))


def save(database: Database, reader: Profile, choices: Choices) -> tuple[MailingList, ...]:
    """Apply what the reader chose, in one transaction, each change with its event: their name
    and language, and each list unticked is left; lists not shown stay as they are. Return the
    lists ticked that they are not on: joining one takes the reader's own consent, confirmed
    from their inbox like the form's (whoever holds this page's link may not be the reader:
    a message is forwarded with its footer), so the caller asks for it."""
    asked: list[MailingList] = []
    with database.transaction() as db:
        stamp = now()
        change_profile(db, Edit.NAME, reader.id, choices.name, detail=SOURCE, at=stamp)
        change_profile(db, Edit.LANGUAGE, reader.id, choices.lang, detail=SOURCE, at=stamp)
        offered = {int(row[0]): str(row[1]) for row in db.execute(OFFERED, (reader.id,))}
        for choice in reader.lists:
            list_id = choice.list.id
            if list_id not in choices.shown or list_id not in offered:
                continue
            before, wanted = offered[list_id], list_id in choices.ticked
            if wanted and before not in ON:
                asked.append(choice.list)
            elif not wanted and before in ON:
                change_membership(db, Change.UNSUBSCRIBE, reader.id, list_id, detail=SOURCE,
                                  at=stamp)  # fmt: skip
    return tuple(asked)


def leave_all(database: Database, subscriber_id: int) -> int:
    """Unsubscribe the reader from every list they are on; return how many they left."""
    with database.transaction() as db:
        rows = db.execute(
            "SELECT list_id FROM memberships WHERE subscriber_id = ? AND status != 'unsubscribed'",
            (subscriber_id,),
        ).fetchall()
        stamp = now()
        verdicts = [change_membership(db, Change.UNSUBSCRIBE, subscriber_id, int(row[0]),
                                      detail=SOURCE, at=stamp) for row in rows]  # fmt: skip
    return sum(verdict is Verdict.CHANGED for verdict in verdicts)


# A new address is kept in the database until it is confirmed (address_changes), rather than
# carried, signed, in the confirm link: the address then appears in no URL (proxy logs,
# browser history), a newer request or a withdrawal kills the earlier link at once, and a link
# that was followed cannot be followed again to undo a later change. The link names the
# request's random number, and the erasure of the reader removes the row (a trigger).


def usable(db: Connection, secret: bytes, subscriber_id: int, email: str) -> bool:
    """Whether the reader may move to ``email``: no subscriber has it, whatever their status
    (a blocked address is one), it was not erased, and the reader is not blocked themselves
    (moving would leave their block behind, on an address anyone could sign up again)."""
    row = db.execute("SELECT status FROM subscribers WHERE id = ?", (subscriber_id,)).fetchone()
    if row is None or row[0] in (SubscriberStatus.BLOCKLISTED, SubscriberStatus.ERASED):
        return False
    if db.execute("SELECT 1 FROM subscribers WHERE email = ?", (email,)).fetchone():
        return False
    return not erased.erased_among(db, secret, [email])


def request_address(
    database: Database, reader: Profile, address: Address, secret: bytes, issued: int
) -> int | None:
    """Keep the reader's request to be mailed at ``address`` from now on (it replaces an
    earlier one), issued at ``issued`` (Unix seconds), and record it. Return the request's
    number for its confirm link, or None when the address may not be used: nothing is kept."""
    nonce = secrets.randbits(NONCE_BITS)
    with database.transaction() as db:
        if not usable(db, secret, reader.id, address.email):
            return None
        requested = stamp_of(datetime.fromtimestamp(issued, UTC))
        db.execute(
            "INSERT INTO address_changes (subscriber_id, email, smtputf8, nonce, requested_at)"
            " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (subscriber_id) DO UPDATE SET email = ?2,"
            " smtputf8 = ?3, nonce = ?4, requested_at = ?5, confirmed_at = ''",
            (reader.id, address.email, address.smtputf8, nonce, requested),
        )
        record_event(db, Edit.ADDRESS_REQUESTED, reader.id, Where(detail=SOURCE))
    return nonce


def cancel_address(database: Database, subscriber_id: int) -> bool:
    """Withdraw the reader's request for a new address; False when none was waiting."""
    with database.transaction() as db:
        gone = db.execute(
            "DELETE FROM address_changes WHERE subscriber_id = ? AND confirmed_at = ''",
            (subscriber_id,),
        ).rowcount
        if gone:
            record_event(db, Edit.ADDRESS_CANCELLED, subscriber_id, Where(detail=SOURCE))
    return bool(gone)


def waiting(database: Database, subscriber_id: int, nonce: int) -> Waiting | None:
    """The new address a confirm link names; None for a request that is not there any more
    (replaced, withdrawn, the reader erased), or was confirmed and moved on from since."""
    row = database.query_one(
        "SELECT a.email, a.confirmed_at, s.email, s.status, s.lang FROM address_changes a"
        " JOIN subscribers s ON s.id = a.subscriber_id WHERE a.subscriber_id = ? AND a.nonce = ?",
        (subscriber_id, nonce),
    )
    if row is None or row[3] == SubscriberStatus.ERASED:
        return None
    if row[1] and row[2] != row[0]:
        return None
    return Waiting(row[0], row[4], bool(row[1]))


def confirm_address(database: Database, subscriber_id: int, nonce: int, secret: bytes) -> Moved:
    """The new address confirms the change: the reader is mailed there from now on (an event).
    A reader whose old address bounced is active again: the new one shows that it receives
    mail, as a confirmation through the form does. TAKEN when another reader took the address
    meanwhile or it may not be used any more; nothing changes then."""
    with database.transaction() as db:
        row = db.execute(
            "SELECT a.email, a.smtputf8, a.confirmed_at, s.email, s.status FROM address_changes"
            " a JOIN subscribers s ON s.id = a.subscriber_id"
            " WHERE a.subscriber_id = ? AND a.nonce = ?",
            (subscriber_id, nonce),
        ).fetchone()
        if row is None or row[4] == SubscriberStatus.ERASED:
            return Moved.INVALID
        if row[2]:
            return Moved.UNCHANGED if row[3] == row[0] else Moved.INVALID
        if not usable(db, secret, subscriber_id, row[0]):
            return Moved.TAKEN
        stamp = now()
        change_profile(db, Edit.ADDRESS, subscriber_id, row[0], smtputf8=bool(row[1]),
                       detail=SOURCE, at=stamp)  # fmt: skip
        if row[4] == SubscriberStatus.BOUNCED:
            where = Where(detail="new address")
            change_subscriber(db, Change.RESUBSCRIBE, subscriber_id, where=where, at=stamp)
        db.execute(
            "UPDATE address_changes SET confirmed_at = ? WHERE subscriber_id = ?",
            (stamp, subscriber_id),
        )
    return Moved.CHANGED
