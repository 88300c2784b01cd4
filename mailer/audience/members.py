"""Readers as seen through a list: stream, find, their attribute names and their history."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from mailer.audience.csv_lines import MAX_LINE
from mailer.audience.formulas import inert
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


def known(database: Database, email: str) -> tuple[str, dict[str, str]]:
    """The name and attributes stored for ``email``; empty for an address not known."""
    row = database.query_one("SELECT name, attributes FROM subscribers WHERE email = ?", (email,))
    return (str(row[0]), json.loads(row[1] or "{}")) if row else ("", {})


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


# What one reader's name and attributes (names and values) may take as an export's CSV cells:
# half of the line an import reads, the rest left for the address, tags, consent and commas.
EXPORTED_MAX = MAX_LINE // 2


def _cell_bytes(text: str) -> int:
    """The bytes ``text`` takes as an export writes it: a formula escaped, quoted if need be."""
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow([inert(text)])
    return len(line.getvalue().encode("utf-8", "surrogatepass"))


def too_large(
    name: str | None, attributes: Mapping[str, str], given: Collection[str] = ()
) -> str | None:
    """Why a reader with this name and these attributes (as stored: cleaned) could not be
    exported and imported again (an import reads lines of at most 64 KiB), naming the largest
    of them (of the ``given`` ones first: attribute keys, "" for the name); None if they fit."""
    sizes = {(key in given, f"attribute {key!r}"): _cell_bytes(key) + _cell_bytes(value)
             for key, value in attributes.items()}  # fmt: skip
    if name:
        sizes["" in given, "the name"] = _cell_bytes(name)
    if sum(sizes.values()) <= EXPORTED_MAX:
        return None
    fresh, largest = max(sizes, key=lambda label: (label[0], sizes[label]))
    size = sizes[fresh, largest]
    return (
        f"{largest} takes {size:,} bytes in an export, and a reader's name and"
        f" attributes may take {EXPORTED_MAX // 1024} KiB in all, so that an export of them"
        f" imports again (an import reads lines of up to {MAX_LINE // 1024} KiB)"
    )
