"""Mailing lists: create, find, count their members, open their archive and form, remove."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from mailer.audience.status import list_deleted
from mailer.db.database import Database, now
from mailer.errors import InputError, NotFoundError
from mailer.models import ListSummary, MailingList

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
COLUMNS = "id, slug, name, opt_in, public_archive, public_form, created_at"


def _list(row: tuple[Any, ...]) -> MailingList:
    return MailingList(
        row[0], row[1], row[2], row[3] == "double", bool(row[4]), bool(row[5]), row[6]
    )


def create(
    database: Database,
    slug: str,
    name: str,
    *,
    double_opt_in: bool = False,
    public_archive: bool = False,
    public_form: bool = False,
) -> MailingList:
    if not SLUG.fullmatch(slug):
        raise InputError(f"invalid list slug {slug!r}: use lower-case letters, digits, '-' and '_'")
    opt_in = "double" if double_opt_in else "single"
    stamp = now()
    with database.transaction() as db:
        row = db.execute(
            "INSERT OR IGNORE INTO lists (slug, name, opt_in, public_archive, public_form,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (slug, name or slug, opt_in, public_archive, public_form, stamp),
        ).fetchone()
        if row is None:
            raise InputError(f"list {slug!r} already exists")
    return MailingList(
        int(row[0]), slug, name or slug, double_opt_in, public_archive, public_form,
        stamp,
    )  # fmt: skip


def find(database: Database, slug: str) -> MailingList | None:
    row = database.query_one(f"SELECT {COLUMNS} FROM lists WHERE slug = ?", (slug,))
    return None if row is None else _list(row)


def get(database: Database, slug: str) -> MailingList:
    found = find(database, slug)
    if found is None:
        raise NotFoundError("list", slug, "see `mailer lists ls`")
    return found


def by_id(database: Database, list_id: int) -> MailingList | None:
    row = database.query_one(f"SELECT {COLUMNS} FROM lists WHERE id = ?", (list_id,))
    return None if row is None else _list(row)


def public_forms(database: Database) -> list[MailingList]:
    """The lists anyone may join through the web form, by name."""
    rows = database.query(f"SELECT {COLUMNS} FROM lists WHERE public_form = 1 ORDER BY name, slug")
    return [_list(row) for row in rows]


def summaries(database: Database, slug: str | None = None) -> list[ListSummary]:
    """Every list (or the one with this slug) with its members counted per status (bounced
    and blocklisted apart)."""
    rows = database.query(
        "SELECT l.id, l.slug, l.name, l.opt_in, l.public_archive, l.public_form, l.created_at,"
        " COUNT(CASE WHEN m.status = 'confirmed' AND s.status = 'active' THEN 1 END),"
        " COUNT(CASE WHEN m.status = 'unconfirmed' AND s.status = 'active' THEN 1 END),"
        " COUNT(CASE WHEN m.status = 'unsubscribed' THEN 1 END),"
        " COUNT(CASE WHEN m.status != 'unsubscribed' AND s.status = 'bounced' THEN 1 END),"
        " COUNT(CASE WHEN m.status != 'unsubscribed' AND s.status = 'blocklisted' THEN 1 END)"
        " FROM lists l LEFT JOIN memberships m ON m.list_id = l.id"
        " LEFT JOIN subscribers s ON s.id = m.subscriber_id"
        " WHERE CAST(? AS TEXT) IS NULL OR l.slug = ?"
        " GROUP BY l.id ORDER BY l.slug",
        (slug, slug),
    )
    names = ("confirmed", "unconfirmed", "unsubscribed", "bounced", "blocklisted")
    return [
        ListSummary(_list(r), {name: r[7 + i] or 0 for i, name in enumerate(names)}) for r in rows
    ]


def summary(database: Database, slug: str) -> ListSummary:
    found = summaries(database, slug)
    if not found:
        raise NotFoundError("list", slug, "see `mailer lists ls`")
    return found[0]


def remove(database: Database, slug: str) -> int:
    """Delete a list and its memberships; return how many memberships went with it. Who had
    left it stays known by its slug (status.departures), so a list made again under that slug
    does not take them back from an import."""
    mailing_list = get(database, slug)
    with database.transaction() as db:
        count = db.execute(
            "SELECT COUNT(*) FROM memberships WHERE list_id = ?", (mailing_list.id,)
        ).fetchone()[0]
        list_deleted(db, mailing_list.id, mailing_list.slug, now())
        db.execute("DELETE FROM lists WHERE id = ?", (mailing_list.id,))
    return int(count)


def set_public_archive(database: Database, slug: str, public: bool) -> MailingList:
    """Publish (or withdraw) a list's campaigns in the online archive."""
    mailing_list = get(database, slug)
    with database.transaction() as db:
        db.execute("UPDATE lists SET public_archive = ? WHERE id = ?", (public, mailing_list.id))
    return replace(mailing_list, public_archive=public)


def set_public_form(database: Database, slug: str, public: bool) -> MailingList:
    """Open (or close) the list's subscribe form at /s/{slug}: closed, it answers like an
    unknown list."""
    mailing_list = get(database, slug)
    with database.transaction() as db:
        db.execute("UPDATE lists SET public_form = ? WHERE id = ?", (public, mailing_list.id))
    return replace(mailing_list, public_form=public)


def together(found: Sequence[MailingList]) -> MailingList:
    """Several lists as readers see them named at once (a campaign sent to several): the
    first, named after all of them."""
    if len(found) == 1:
        return found[0]
    return replace(found[0], name=" & ".join(each.name for each in found))


def of_campaign(database: Database, campaign_id: int) -> list[MailingList]:
    """The lists a campaign went to that still exist, in the order the editor gave them."""
    rows = database.query(
        f"SELECT {COLUMNS} FROM campaign_lists c JOIN lists l ON l.id = c.list_id"
        " WHERE c.campaign_id = ? ORDER BY c.position",
        (campaign_id,),
    )
    return [_list(row) for row in rows]
