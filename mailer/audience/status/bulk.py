"""An editor's batch of readers arriving on a list (CLI, CSV import), written in bulk."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from mailer.audience.status.departures import left_deleted
from mailer.audience.status.table import KEPT, SUBSCRIBER, Change, M, S, membership_target
from mailer.db.database import IN_JSON, Connection, as_json, insert_rows, now
from mailer.models import Candidate, Consent, MailingList, MembershipStatus, Outcome

# The same transitions as ``changes``, written in bulk so that a million rows import in under
# a minute.

# A row's own status, beyond joining the list, and the change that takes a reader there.
LEAVING = {"unsubscribed": Change.UNSUBSCRIBE, "bounced": Change.BOUNCE,
           "blocklisted": Change.BLOCK}  # fmt: skip
JOINING = {"confirmed": M.CONFIRMED, "unconfirmed": M.UNCONFIRMED}
NO_CONSENT = Consent("")
Row = tuple[Any, ...]  # email, id, name, attributes, status, lang, membership status

# New rows, in the order the import builds them (insert_rows: COPY on PostgreSQL).
SUBSCRIBER_COLUMNS = ("id", "email", "name", "attributes", "smtputf8", "status", "lang",
                      "created_at", "updated_at")  # fmt: skip
MEMBERSHIP_COLUMNS = ("list_id", "subscriber_id", "status", "updated_at", "joined_at", "source",
                      "ip", "confirmed_at")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a row says its reader stands: confirmed or unconfirmed, unsubscribed (from this
    list), bounced or blocklisted (everywhere), and since when (a stored time; '' is now)."""

    status: str
    at: str = ""


def join_many(
    db: Connection,
    mailing_list: MailingList,
    candidates: Sequence[Candidate],
    *,
    resubscribe: bool = False,
    confirmed: bool = False,
    dry_run: bool = False,
    standings: Mapping[str, Standing] | None = None,
    detail: str | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> list[Outcome]:
    """The editor adds a batch of distinct addresses to a list (CLI, CSV import), with their
    names, attributes, tags, language and consent. Readers who left, bounced or were blocked
    are skipped unless ``resubscribe``: an import is not consent. A reader whose ``standings``
    entry says they left (unsubscribed, bounced, blocklisted) is moved there, always, with
    the time it gives; one it says confirmed is confirmed. A reader who had left a deleted list
    of this slug counts as having left this one. Events carry ``detail`` (default: the
    candidate's consent source). The same TRANSITIONS, written in bulk. ``meanwhile``: work
    PostgreSQL's server leaves time for (``insert_rows``); it may not run."""
    existing = {
        row[0]: row
        for row in db.execute(
            "SELECT s.email, s.id, s.name, s.attributes, s.status, s.lang, m.status"
            " FROM subscribers s LEFT JOIN memberships m"
            f" ON m.subscriber_id = s.id AND m.list_id = ? WHERE s.email IN {IN_JSON}",
            (mailing_list.id, as_json(sorted(c.email for c in candidates))),  # index order
        )
    }
    tagged = as_json(c.email for c in candidates if c.tags and c.email in existing)
    tags: dict[str, set[str]] = {}
    for email, tag in db.execute(
        "SELECT s.email, t.tag FROM tags t JOIN subscribers s ON s.id = t.subscriber_id"
        f" WHERE s.email IN {IN_JSON}",
        (tagged,),
    ):
        tags.setdefault(email, set()).add(tag)
    last = db.execute("SELECT COALESCE(MAX(id), 0) FROM subscribers").fetchone()[0]
    ids = {email: row[1] for email, row in existing.items()}
    batch = _Batch(mailing_list, now(), confirmed, detail, ids, last)
    outsiders = [row[1] for row in existing.values() if row[6] is None and row[4] == S.ACTIVE]
    gone = set() if resubscribe else left_deleted(db, mailing_list.slug, outsiders)
    outcomes: list[Outcome] = []
    for c in candidates:
        standing = (standings or {}).get(c.email)
        row = existing.get(c.email)
        if row is None:
            outcomes.append(batch.new(c, standing))
        elif row[4] == S.ERASED:  # an erased reader's stand-in address: nothing to change
            outcomes.append(Outcome.SKIPPED)
        elif standing is not None and standing.status in LEAVING:
            outcomes.append(batch.leave(c, standing, row, tags.get(c.email, set())))
        elif row[1] in gone:
            outcomes.append(Outcome.SKIPPED)
        else:
            outcomes.append(batch.join(c, standing, row, tags.get(c.email, set()), resubscribe))
    if not dry_run:
        batch.write(db, meanwhile)
    return outcomes


_attributes = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode  # one, not one a row


@dataclass
class _Batch:
    """What the batch changes, decided row by row and written statement by statement: each
    row as written, with its reader's id."""

    mailing_list: MailingList
    stamp: str
    confirmed: bool
    detail: str | None
    ids: dict[str, int]  # each reader's id by address: those known, then those new
    last: int  # the largest id so far: new readers take the next ones (the write lock holds)
    subscribers: list[Row] = field(default_factory=list)
    edits: list[Row] = field(default_factory=list)
    statuses: list[Row] = field(default_factory=list)
    joins: list[Row] = field(default_factory=list)
    rejoins: list[Row] = field(default_factory=list)
    confirms: list[Row] = field(default_factory=list)
    leaves: list[Row] = field(default_factory=list)
    events: list[Row] = field(default_factory=list)
    tags: list[Row] = field(default_factory=list)
    default: MembershipStatus = field(init=False)  # how a reader joins when the row says not

    def __post_init__(self) -> None:
        double = self.mailing_list.double_opt_in and not self.confirmed  # or --confirmed
        self.default = M.UNCONFIRMED if double else M.CONFIRMED

    def event(
        self, at: str, change: Change, c: Candidate, on_list: bool = True, dated: str = ""
    ) -> None:
        """``dated``: the source's own time for a change made now (kept in the detail)."""
        why = self.detail if self.detail is not None else (c.consent or NO_CONSENT).source
        if dated and dated != at:
            why = f"{why}, dated {dated}"
        self.events.append((at, str(change), self.mailing_list.id if on_list else None, why,
                            self.ids[c.email]))  # fmt: skip

    def membership(self, c: Candidate, joined: MembershipStatus, at: str, leaves: bool) -> None:
        """A new membership, joined as ``joined`` when its consent says (else now); with
        ``leaves``, unsubscribed at ``at`` too."""
        consent = c.consent or NO_CONSENT
        joined_at = consent.joined_at or self.stamp
        confirmed_at = consent.confirmed_at or (joined_at if joined is M.CONFIRMED else "")
        status = membership_target(Change.UNSUBSCRIBE, joined) if leaves else joined
        changed_at = at if leaves else joined_at  # the last change, as the source dates it
        self.joins.append((self.mailing_list.id, self.ids[c.email], str(status), changed_at,
                           joined_at, consent.source, consent.ip, confirmed_at))  # fmt: skip
        self.event(joined_at, Change.SUBSCRIBE, c)
        if leaves:
            self.event(at, Change.UNSUBSCRIBE, c)

    def new(self, c: Candidate, standing: Standing | None) -> Outcome:
        wanted = standing.status if standing else ""
        at = (standing.at if standing else "") or self.stamp
        change = LEAVING.get(wanted)
        status = S.ACTIVE
        if change is not None and change is not Change.UNSUBSCRIBE:
            status = SUBSCRIBER[(change, S.ACTIVE)]
        attributes = _attributes(c.attributes) if c.attributes else "{}"
        self.last += 1
        self.ids[c.email] = self.last
        self.subscribers.append((self.last, c.email, c.name or "", attributes, c.smtputf8,
                                 str(status), c.lang, self.stamp, self.stamp))  # fmt: skip
        self.membership(c, JOINING.get(wanted, self.default), at, change is Change.UNSUBSCRIBE)
        if status is not S.ACTIVE and change is not None:
            self.event(at, change, c)
        if c.tags:
            self.tags.extend((self.last, tag) for tag in c.tags)
        return Outcome.ADDED

    def leave(self, c: Candidate, standing: Standing, row: Row, tags: set[str]) -> Outcome:
        """Towards not being mailed, always: an import needs no consent for that."""
        before = M(row[6]) if row[6] else None
        at = standing.at or self.stamp
        change = LEAVING[standing.status]
        added = changed = False
        if before is None and row[4] == S.ACTIVE:  # on the list first, as the file says
            self.membership(c, self.default, at, change is Change.UNSUBSCRIBE)
            added = True
        elif change is Change.UNSUBSCRIBE and membership_target(change, before) is not None:
            # Known here, they leave now: dated by the source, it could precede their joining.
            self.leaves.append((self.stamp, self.mailing_list.id, row[1]))
            self.event(self.stamp, change, c, dated=at)
            changed = True
        target = SUBSCRIBER.get((change, S(row[4])))
        kept = (change, S(row[4])) in KEPT  # a bounce while blocked: its event, no status
        if change is not Change.UNSUBSCRIBE and (target is not None or kept):
            if target is not None:
                self.statuses.append((str(target), self.stamp, row[1]))
            self.event(self.stamp, change, c, dated=at)
            changed = True
        edited = self.edit(c, row, tags)
        if added:
            return Outcome.ADDED
        return Outcome.UPDATED if changed or edited else Outcome.UNCHANGED

    def join(
        self, c: Candidate, standing: Standing | None, row: Row, tags: set[str], back: bool
    ) -> Outcome:
        """Onto the list; one who left comes back only with ``back`` (--resubscribe)."""
        before = M(row[6]) if row[6] else None
        status = S(row[4])
        wanted = JOINING.get(standing.status) if standing else None
        joined = wanted or self.default
        if (before is M.UNSUBSCRIBED or status is not S.ACTIVE) and not back:
            return Outcome.SKIPPED
        if status is not S.ACTIVE:
            target = SUBSCRIBER.get((Change.RESUBSCRIBE, status))
            if target is None:
                return Outcome.SKIPPED  # erased: only their own new consent
            self.statuses.append((str(target), self.stamp, row[1]))
            self.event(self.stamp, Change.RESUBSCRIBE, c, on_list=False)
        edited = self.edit(c, row, tags)
        change = Change.SUBSCRIBE if before is None else Change.RESUBSCRIBE
        if membership_target(change, before, joined) is not None:
            if before is None:
                self.membership(c, joined, self.stamp, leaves=False)
                return Outcome.ADDED
            consent = c.consent or NO_CONSENT
            confirmed_at = consent.confirmed_at or (self.stamp if joined is M.CONFIRMED else "")
            self.rejoins.append((str(joined), self.stamp, consent.source, consent.ip, confirmed_at,
                                 c.consent is not None, self.mailing_list.id, row[1]))  # fmt: skip
            self.event(self.stamp, change, c)
            return Outcome.ADDED
        if wanted is M.CONFIRMED and membership_target(Change.CONFIRM, before, wanted) is not None:
            at = (c.consent or NO_CONSENT).confirmed_at or self.stamp
            self.confirms.append((self.stamp, at, self.mailing_list.id, row[1]))
            self.event(at, Change.CONFIRM, c)
            return Outcome.UPDATED
        return Outcome.UPDATED if edited or status is not S.ACTIVE else Outcome.UNCHANGED

    def edit(self, c: Candidate, row: Row, tags: set[str]) -> bool:
        """Name, attributes, language and tags: the row's are added to what is known."""
        name, lang = c.name or row[2], c.lang or row[5]
        attributes = merged = None
        if c.attributes:
            attributes = json.loads(row[3])
            merged = {**attributes, **c.attributes}
        fresh = [tag for tag in c.tags if tag not in tags]
        self.tags.extend((row[1], tag) for tag in fresh)
        if name != row[2] or lang != row[5] or merged != attributes:
            shown = row[3] if merged is None else _attributes(merged)
            self.edits.append((name, shown, lang, self.stamp, row[1]))
            return True
        return bool(fresh)

    def write(self, db: Connection, meanwhile: Callable[[], None] | None) -> None:
        """Inside the caller's transaction, which holds the write lock (new subscribers took
        the ids after the largest)."""
        by_email = sorted(self.subscribers, key=itemgetter(1))  # the index's order
        insert_rows(db, "subscribers", SUBSCRIBER_COLUMNS, by_email)
        db.executemany(
            "UPDATE subscribers SET name = ?, attributes = ?, lang = ?, updated_at = ?"
            " WHERE id = ?",
            self.edits,
        )
        db.executemany(
            "UPDATE subscribers SET status = ?, updated_at = ? WHERE id = ?", self.statuses
        )
        db.executemany(
            "UPDATE memberships SET status = ?1, updated_at = ?2,"
            " source = CASE WHEN ?6 = 1 THEN ?3 ELSE source END,"
            " ip = CASE WHEN ?6 = 1 THEN ?4 ELSE ip END,"
            " confirmed_at = CASE WHEN ?5 != '' THEN ?5 ELSE confirmed_at END"
            " WHERE list_id = ?7 AND subscriber_id = ?8",
            self.rejoins,
        )
        db.executemany(
            "UPDATE memberships SET status = 'confirmed', updated_at = ?, confirmed_at = ?"
            " WHERE list_id = ? AND subscriber_id = ?",
            self.confirms,
        )
        db.executemany(
            "UPDATE memberships SET status = 'unsubscribed', updated_at = ?"
            " WHERE list_id = ? AND subscriber_id = ?",
            self.leaves,
        )
        insert_rows(db, "events", ("at", "kind", "list_id", "detail", "subscriber_id"),
                    self.events)  # fmt: skip
        db.executemany(
            "INSERT OR IGNORE INTO tags (subscriber_id, tag) VALUES (?, ?)",
            self.tags,
        )
        # Last: PostgreSQL checks each new membership's list and reader at the end of its
        # COPY, the longest wait of the batch, and the caller's work goes on meanwhile.
        insert_rows(db, "memberships", MEMBERSHIP_COLUMNS, self.joins, meanwhile)
