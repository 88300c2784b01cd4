"""Readers as seen through a list: stream, find, their attribute names and their history."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from mailer.db.database import IN_JSON, Connection, Database, as_json, now
from mailer.models import Candidate, MailingList, Member

# A reader's own change (bounced, blocked) counts as a change on every list they are on.
CHANGED = "CASE WHEN s.status = 'active' THEN m.updated_at ELSE MAX(m.updated_at, s.updated_at) END"
# Each reader's attribute names as rows (j.key), and whether a reader has one (bound: the key).
KEYS = {
    "sqlite": "json_each(s.attributes) j",
    "postgresql": "jsonb_object_keys(CAST(s.attributes AS jsonb)) AS j(key)",
}
HAS_KEY = {
    "sqlite": "json_type(s.attributes, ?) IS NOT NULL",
    "postgresql": "jsonb_exists(CAST(s.attributes AS jsonb), ?)",
}
SELECT = (
    "SELECT s.id, s.email, s.name, s.attributes, m.status, s.status, s.smtputf8, m.updated_at,"
    f" m.joined_at, {CHANGED}, m.source, m.ip, m.confirmed_at, s.lang"
    " FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id"
)


def _member(row: tuple[Any, ...]) -> Member:
    return Member(
        row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], bool(row[6]), *row[7:14]
    )


def _status_filter(statuses: Sequence[str]) -> tuple[str, list[Any]]:
    """A membership status (confirmed...) or a subscriber status (bounced...) matches."""
    if not statuses:
        return "", []
    return f" AND (m.status IN {IN_JSON} OR s.status IN {IN_JSON})", [as_json(statuses)] * 2


def stream(
    database: Database,
    mailing_list: MailingList,
    statuses: Sequence[str] = (),
    since: str | None = None,
) -> Iterator[Member]:
    """The list's members in subscription order, optionally filtered by status and by a last
    change at or after ``since`` (a stored time stamp)."""
    where, params = _status_filter(statuses)
    if since is not None:
        where, params = f"{where} AND {CHANGED} >= ?", [*params, since]
    sql = f"{SELECT} WHERE m.list_id = ?{where} ORDER BY s.id"
    for row in database.stream(sql, [mailing_list.id, *params]):
        yield _member(row)


def find(database: Database, mailing_list: MailingList, email: str) -> Member | None:
    row = database.query_one(
        f"{SELECT} WHERE m.list_id = ? AND s.email = ?", (mailing_list.id, email)
    )
    return None if row is None else _member(row)


def by_id(database: Database, list_id: int, subscriber_id: int) -> Member | None:
    row = database.query_one(f"{SELECT} WHERE m.list_id = ? AND s.id = ?", (list_id, subscriber_id))
    return None if row is None else _member(row)


def subscriber_id(db: Connection, email: str) -> int | None:
    row = db.execute("SELECT id FROM subscribers WHERE email = ?", (email,)).fetchone()
    return int(row[0]) if row else None


def ensure_subscriber(db: Connection, candidate: Candidate) -> tuple[int, str]:
    """The subscriber with this address, created (active) if new: (id, status)."""
    row = db.execute(
        "SELECT id, status FROM subscribers WHERE email = ?", (candidate.email,)
    ).fetchone()
    if row is not None:
        return int(row[0]), str(row[1])
    stamp = now()
    cursor = db.execute(
        "INSERT INTO subscribers (email, name, smtputf8, lang, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (candidate.email, candidate.name or "", candidate.smtputf8, candidate.lang, stamp, stamp),
    )
    return int(cursor.fetchone()[0]), "active"


def attribute_keys(
    database: Database, lists: Sequence[MailingList], statuses: Sequence[str] = ()
) -> list[str]:
    """Every attribute name the readers of these lists have (in these statuses), sorted."""
    where, params = _status_filter(statuses)
    keys = KEYS[database.engine]
    sql = (
        "SELECT DISTINCT j.key FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id,"
        f" {keys} WHERE m.list_id IN {IN_JSON}{where}"
    )
    ids = as_json(found.id for found in lists)
    return sorted(row[0] for row in database.query(sql, [ids, *params]))


class AttributeNames(Collection[str]):
    """The attribute names the readers of some lists have, asked one name at a time: a segment
    names a few, while listing them all reads every reader (only an unknown name needs that)."""

    def __init__(self, database: Database, lists: Sequence[MailingList]) -> None:
        self.database, self.lists = database, lists
        self.ids = as_json(found.id for found in lists)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or '"' in name:
            return False
        has, key = HAS_KEY[self.database.engine], f'$."{name}"'
        row = self.database.query_one(
            "SELECT 1 FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id"
            f" WHERE m.list_id IN {IN_JSON} AND {has} LIMIT 1",
            (self.ids, key if self.database.engine == "sqlite" else name),
        )
        return row is not None

    def __iter__(self) -> Iterator[str]:
        return iter(attribute_keys(self.database, self.lists))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def events_for(database: Database, email: str) -> list[tuple[str, str, str]]:
    """(at, kind, detail) of every event of the reader with this address, oldest first."""
    return [
        (r[0], r[1], r[2])
        for r in database.query(
            "SELECT e.at, e.kind, e.detail FROM events e JOIN subscribers s"
            " ON s.id = e.subscriber_id WHERE s.email = ? ORDER BY e.id",
            (email,),
        )
    ]
