"""Who a campaign goes to: each confirmed, active reader of its lists once, within its segment."""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from mailer.audience import lists, members
from mailer.audience.segments import Segment, compile_segment
from mailer.db.database import Connection, Database
from mailer.models import MailingList, Reader

READER = "s.id, s.email, s.name, s.attributes, s.smtputf8, s.lang"


@dataclass(frozen=True)
class Audience:
    """The lists a campaign goes to (the first one names it) and the segment within them."""

    lists: tuple[MailingList, ...]
    segment: Segment | None = None

    @property
    def slugs(self) -> tuple[str, ...]:
        return tuple(found.slug for found in self.lists)

    @property
    def shown(self) -> MailingList:
        """The list as templates name it: the first, named after all of them when several."""
        return lists.together(self.lists)

    @property
    def several(self) -> bool:
        return len(self.lists) > 1

    def describe(self) -> str:
        """``weekly``, ``weekly + letters``, with ``where …`` when a segment narrows them."""
        where = f" where {self.segment.text}" if self.segment else ""
        return " + ".join(self.slugs) + where

    def query(self, columns: str) -> tuple[str, list[Any]]:
        """SELECT ``columns`` of each eligible reader once, in subscriber order."""
        where = f" AND ({self.segment.sql})" if self.segment else ""
        params = list(self.segment.params) if self.segment else []
        active = " AND m.status = 'confirmed' AND s.status = 'active'"
        joined = f"SELECT {columns} FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id"
        if not self.several:  # the membership key already walks the list in subscriber order
            sql = f"{joined} WHERE m.list_id = ?{active}{where} ORDER BY s.id"
            return sql, [self.lists[0].id, *params]
        ids = json.dumps([found.id for found in self.lists])
        sql = (f"{joined} WHERE m.list_id IN (SELECT value FROM json_each(?)){active}{where}"
               " GROUP BY s.id ORDER BY s.id")  # fmt: skip
        return sql, [ids, *params]


def audience(database: Database, slugs: Sequence[str], where: str | None = None) -> Audience:
    """The named lists (each once, in the order given) and the segment, compiled against the
    attributes their readers have; an unknown list or field is an error here."""
    found = tuple(lists.get(database, slug) for slug in dict.fromkeys(slugs))
    if where is None:
        return Audience(found)
    names = members.AttributeNames(database, found)
    return Audience(found, compile_segment(where, names, database.engine))


def reader(row: Sequence[Any]) -> Reader:
    """A reader from (id, email, name, attributes JSON, smtputf8, lang) columns."""
    return Reader(row[0], row[1], row[2], json.loads(row[3]), bool(row[4]), row[5])


def eligible(database: Database, chosen: Audience) -> Generator[Reader, None, None]:
    """Stream the readers a new campaign would go to now: a dry run, the check before a send."""
    sql, params = chosen.query(READER)
    for row in database.stream(sql, params):
        yield reader(row)


def count_eligible(database: Database, chosen: Audience) -> int:
    sql, params = chosen.query("s.id")
    row = database.query_one(f"SELECT COUNT(*) FROM ({sql}) AS readers", params)
    return int(row[0]) if row else 0


def snapshot_readers(
    db: Connection,
    campaign_id: int,
    chosen: Audience,
    edition: tuple[str, Sequence[str]] = ("''", ()),
) -> int:
    """Queue a delivery for each reader ``chosen`` names who has none in the campaign yet (a
    scheduled campaign takes its readers when it starts); return how many were queued."""
    expression, values = edition
    sql, params = chosen.query(f"?, s.id, {expression}")
    cursor = db.execute(
        f"INSERT OR IGNORE INTO deliveries (campaign_id, subscriber_id, edition) {sql}",
        [campaign_id, *values, *params],
    )
    return cursor.rowcount


def snapshot(
    db: Connection,
    campaign_id: int,
    chosen: Audience,
    edition: tuple[str, Sequence[str]] = ("''", ()),
    readers: bool = True,
) -> None:
    """The campaign's lists, and (``readers``) its deliveries, one queued per reader it goes to,
    each with its ``edition`` (an SQL expression of the reader's ``s.lang``, and its
    parameters)."""
    if readers:
        snapshot_readers(db, campaign_id, chosen, edition)
    db.executemany(
        "INSERT INTO campaign_lists (campaign_id, list_id, list_slug, position)"
        " VALUES (?, ?, ?, ?)",
        [(campaign_id, found.id, found.slug, i) for i, found in enumerate(chosen.lists)],
    )
