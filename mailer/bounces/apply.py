"""Apply bounces, complaints and mailed unsubscribe requests to deliveries, statuses, events."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mailer.audience import members
from mailer.audience.addresses import normalise
from mailer.audience.status import (
    Change,
    Verdict,
    Where,
    bounce,
    change_membership,
    change_subscriber,
    record_event,
)
from mailer.bounces.complaints import Complaint, sent_as
from mailer.bounces.parse import Failure, Reading, read_message
from mailer.bounces.sources import Incoming, MailSource
from mailer.config import BounceSettings
from mailer.db.database import Connection, Database
from mailer.errors import AddressError
from mailer.tokens import Signer

OUTCOMES = ("hard", "soft", "unsubscribed", "complaint", "unmatched", "unrecognised",
            "already processed")  # fmt: skip


@dataclass(frozen=True, slots=True)
class MessageOutcome:
    """What one message did: an outcome from OUTCOMES and a human detail."""

    key: str
    outcome: str
    detail: str


@dataclass(slots=True)
class ProcessSummary:
    """Counts per outcome of one run; ``notes`` names the messages nothing was done with."""

    read: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    newly_bounced: int = 0  # readers whose status became bounced in this run
    notes: list[MessageOutcome] = field(default_factory=list)


class _DryRun(Exception):
    """Raised to roll back the one transaction of a dry run."""


def process(
    database: Database,
    source: MailSource,
    signer: Signer,
    settings: BounceSettings,
    *,
    dry_run: bool = False,
    at: datetime | None = None,
    on_message: Callable[[MessageOutcome], None] | None = None,
) -> ProcessSummary:
    """Read every unprocessed message of ``source`` and apply it: one transaction per message,
    then the source marks it. A dry run applies everything in one transaction, rolls it back
    and marks nothing."""
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    run = _Run(settings, moment, source.description)
    summary = ProcessSummary()

    def handle(db: Connection, item: Incoming) -> None:
        summary.read += 1
        outcome = run.apply(db, item, signer)
        summary.counts[outcome.outcome] += 1
        if outcome.outcome in ("unmatched", "unrecognised"):
            summary.notes.append(outcome)
        if on_message is not None:
            on_message(outcome)

    if dry_run:
        try:
            with database.transaction() as db:
                for item in source.messages():
                    handle(db, item)
                raise _DryRun
        except _DryRun:
            pass
    else:
        for item in source.messages():
            with database.transaction() as db:
                handle(db, item)
            source.mark(item)
    summary.newly_bounced = run.newly_bounced
    return summary


class _Run:
    """Applies readings inside the caller's transaction."""

    def __init__(self, settings: BounceSettings, moment: datetime, source: str) -> None:
        self.settings, self.source = settings, source
        self.stamp = moment.isoformat(timespec="seconds")
        self.window_start = (moment - timedelta(days=settings.soft_window_days)).isoformat(
            timespec="seconds"
        )
        self.newly_bounced = 0

    def apply(self, db: Connection, item: Incoming, signer: Signer) -> MessageOutcome:
        # Every message read is remembered in processed_mail, so processing the same mail twice
        # changes nothing, whatever the source did with it.
        digest = hashlib.sha256(item.data).hexdigest()
        seen = db.execute("SELECT outcome FROM processed_mail WHERE digest = ?", (digest,))
        previous = seen.fetchone()
        if previous is not None:
            return MessageOutcome(item.key, "already processed", previous[0])
        reading = read_message(item.data, signer)
        if reading.kind == "unsubscribe":
            outcome, detail = self._unsubscribe(db, reading)
        elif reading.kind == "bounce":
            outcome, detail = self._bounce(db, reading)
        elif reading.complaint is not None and reading.kind == "complaint":
            outcome, detail = self._complaint(db, reading, reading.complaint)
        else:
            outcome, detail = "unrecognised", reading.reason
        db.execute(
            "INSERT INTO processed_mail (digest, message_id, outcome, source, processed_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (digest, reading.message_id, outcome, self.source, self.stamp),
        )
        return MessageOutcome(item.key, outcome, detail)

    def _bounce(self, db: Connection, reading: Reading) -> tuple[str, str]:
        targets: dict[int, tuple[int | None, Failure]] = {}
        if reading.verp is not None:
            verp_subscriber, verp_campaign = reading.verp
            worst = sorted(reading.failures, key=lambda f: (not f.hard, not f.final))[0]
            if _known(db, verp_subscriber):
                targets[verp_subscriber] = (verp_campaign, worst)
        else:
            for failure in reading.failures:
                subscriber_id = _subscriber(db, failure.addresses)
                if subscriber_id is not None and subscriber_id not in targets:
                    campaign = _campaign_of(db, subscriber_id, reading.original_message_id)
                    targets[subscriber_id] = (campaign, failure)
        if not targets:
            named = ", ".join(a for f in reading.failures for a in f.addresses[:1])
            return "unmatched", f"bounce for {named or 'an unknown reader'}: not a subscriber"
        for subscriber_id, (campaign_id, failure) in targets.items():
            self._record(db, subscriber_id, campaign_id, failure)
        hard = any(failure.hard for _, failure in targets.values())
        return ("hard" if hard else "soft"), "; ".join(f.detail for _, f in targets.values())

    def _record(
        self, db: Connection, subscriber_id: int, campaign_id: int | None, failure: Failure
    ) -> None:
        list_id = _list_of(db, campaign_id)
        if failure.final and campaign_id is not None:
            db.execute(
                "UPDATE deliveries SET status = 'failed', last_code = ?, last_error = ?"
                " WHERE campaign_id = ? AND subscriber_id = ?"
                " AND status IN ('sent', 'deferred', 'queued', 'failed')",
                (failure.code, f"bounce: {failure.detail}", campaign_id, subscriber_id),
            )
        where = Where(list_id, campaign_id, failure.detail)
        if failure.hard:
            self._mark_bounced(db, subscriber_id, where)
            return
        record_event(db, "soft_bounce", subscriber_id, where, self.stamp)
        limit, days = self.settings.soft_limit, self.settings.soft_window_days
        if limit <= 0:
            return
        # Soft bounces count at most once per campaign; soft_limit of them within
        # soft_window_days mark the reader bounced, like Mailman's bounce score.
        row = db.execute(
            "SELECT COUNT(DISTINCT COALESCE('c' || campaign_id, 'e' || id)) FROM events"
            " WHERE subscriber_id = ? AND kind = 'soft_bounce' AND at >= ?",
            (subscriber_id, self.window_start),
        ).fetchone()
        if row[0] >= limit:
            detail = f"{row[0]} soft bounces within {days} days; last: {failure.detail}"
            self._mark_bounced(db, subscriber_id, Where(list_id, campaign_id, detail))

    def _mark_bounced(self, db: Connection, subscriber_id: int, where: Where) -> None:
        self.newly_bounced += bounce(db, subscriber_id, where, self.stamp) is Verdict.CHANGED

    def _complaint(self, db: Connection, reading: Reading, complaint: Complaint) -> tuple[str, str]:
        """A spam complaint blocks its reader on every list, through the status module (a
        `complaint` event naming the campaign when it is known); memberships stay as they were."""
        found = _complainant(db, reading, complaint)
        if found is None:
            named = complaint.addresses[0] if complaint.addresses else "nobody named"
            return "unrecognised", f"{complaint.detail} about {named}: names no reader we know"
        subscriber_id, campaign_id = found
        where = Where(_list_of(db, campaign_id), campaign_id, complaint.detail)
        verdict = change_subscriber(db, Change.COMPLAINT, subscriber_id, where=where, at=self.stamp)
        done = "blocked on every list" if verdict is Verdict.CHANGED else "already blocked"
        return "complaint", f"{complaint.detail}: {done}"

    def _unsubscribe(self, db: Connection, reading: Reading) -> tuple[str, str]:
        found = db.execute("SELECT id FROM lists WHERE slug = ?", (reading.list_slug,)).fetchone()
        if found is None:
            return "unmatched", f"unsubscribe from {reading.list_slug!r}: no such list"
        subscriber_id = _subscriber(db, (reading.sender,))
        where = f"{reading.sender} from {reading.list_slug}"
        verdicts = {Verdict.MISSING}
        if subscriber_id is not None:  # change_membership says MISSING when not on a list
            verdicts = {
                change_membership(
                    db, Change.UNSUBSCRIBE, subscriber_id, list_id, detail="mailto", at=self.stamp
                )
                for list_id in _lists_left(db, subscriber_id, found[0])
            }
        if verdicts == {Verdict.MISSING}:
            return "unmatched", f"unsubscribe {where}: not on the list"
        if Verdict.CHANGED not in verdicts:
            return "unsubscribed", f"{where}: already unsubscribed"
        return "unsubscribed", where


def _known(db: Connection, subscriber_id: int) -> bool:
    """A subscriber we still know: an erased one is not matched, so nothing is said of them."""
    row = db.execute("SELECT status FROM subscribers WHERE id = ?", (subscriber_id,)).fetchone()
    return row is not None and row[0] != "erased"


def _complainant(
    db: Connection, reading: Reading, complaint: Complaint
) -> tuple[int, int | None] | None:
    """The reader a complaint is about, and the campaign: our signed return path, else an
    address the report names (its Original-Rcpt-To, the quoted message's To), else the quoted
    Message-ID of one of our deliveries. An erased reader is nobody."""
    if reading.verp is not None:
        return reading.verp if _known(db, reading.verp[0]) else None
    named = _subscriber(db, complaint.addresses)
    if named is not None:
        return named, _campaign_of(db, named, reading.original_message_id)
    sent = sent_as(db, reading.original_message_id) if reading.original_message_id else None
    return sent if sent is not None and _known(db, sent[0]) else None


def _lists_left(db: Connection, subscriber_id: int, list_id: int) -> list[int]:
    """The lists a mailed unsubscribe leaves: the one its address names and, when the latest
    campaign named after that list to reach the reader went to several (its mailto names the
    first), every list of that campaign."""
    rows = db.execute(
        "SELECT l.list_id FROM campaign_lists l WHERE l.list_id IS NOT NULL AND l.campaign_id ="
        " (SELECT c.id FROM campaigns c JOIN deliveries d ON d.campaign_id = c.id"
        "  WHERE d.subscriber_id = ? AND c.list_id = ? AND d.sent_at IS NOT NULL"
        "  ORDER BY d.sent_at DESC, c.id DESC LIMIT 1)",
        (subscriber_id, list_id),
    )
    return list(dict.fromkeys([list_id, *(int(row[0]) for row in rows)]))


def _list_of(db: Connection, campaign_id: int | None) -> int | None:
    if campaign_id is None:
        return None
    row = db.execute("SELECT list_id FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def _subscriber(db: Connection, addresses: tuple[str, ...]) -> int | None:
    """The subscriber with one of these addresses, compared as ``mailer`` stores them."""
    for address in addresses:
        try:
            email = normalise(address).email
        except AddressError:
            email = address.strip().lower()
        found = members.subscriber_id(db, email)
        if found is not None:
            return found
    return None


def _campaign_of(db: Connection, subscriber_id: int, message_id: str) -> int | None:
    """The campaign whose delivery to this reader carried ``message_id`` (quoted by the bounce)."""
    if not message_id:
        return None
    bare = message_id.strip("<>")
    row = db.execute(
        "SELECT campaign_id FROM deliveries WHERE subscriber_id = ? AND message_id IN (?, ?)",
        (subscriber_id, f"<{bare}>", bare),
    ).fetchone()
    return int(row[0]) if row else None
