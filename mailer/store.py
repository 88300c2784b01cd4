"""SQLite store: lists, subscribers, memberships and the events that audit every change."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailer.errors import InputError, NotFoundError, StoreError
from mailer.models import (
    Candidate,
    ListSummary,
    MailingList,
    Member,
    MembershipStatus,
    Outcome,
    SubscriberStatus,
)
from mailer.schema import SCHEMA

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
CHUNK_SQL_IN = "(SELECT value FROM json_each(?))"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    """One SQLite connection in WAL mode; every public method is one transaction."""

    def __init__(self, path: Path, busy_timeout: float = 5.0) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except OSError as error:
            raise StoreError(path, f"cannot create its folder: {error.strerror}") from None
        except sqlite3.Error as error:
            raise self._error(error) from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _error(self, error: sqlite3.Error) -> StoreError:
        text = str(error)
        if "locked" in text or "busy" in text:
            return StoreError(self.path, "locked by another process; try again when it is done")
        if "unable to open" in text:
            return StoreError(self.path, "cannot be opened (check the path and its permissions)")
        if "readonly" in text:
            return StoreError(self.path, "is read-only")
        return StoreError(self.path, text)

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(SCHEMA[version:], start=version + 1):
            self.db.executescript(
                f"BEGIN IMMEDIATE; {script}; PRAGMA user_version = {number}; COMMIT;"
            )

    def transaction(self) -> _Transaction:
        return _Transaction(self)

    # lists

    def create_list(
        self, slug: str, name: str, *, double_opt_in: bool = False, public_archive: bool = False
    ) -> MailingList:
        if not SLUG.fullmatch(slug):
            raise InputError(
                f"invalid list slug {slug!r}: use lower-case letters, digits, '-' and '_'"
            )
        with self.transaction():
            try:
                cursor = self.db.execute(
                    "INSERT INTO lists (slug, name, opt_in, public_archive, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        slug,
                        name or slug,
                        "double" if double_opt_in else "single",
                        public_archive,
                        now(),
                    ),
                )
            except sqlite3.IntegrityError:
                raise InputError(f"list {slug!r} already exists") from None
        return MailingList(cursor.lastrowid or 0, slug, name or slug, double_opt_in, public_archive)

    def find_list(self, slug: str) -> MailingList | None:
        row = self._query_one(
            "SELECT id, slug, name, opt_in, public_archive FROM lists WHERE slug = ?", (slug,)
        )
        return (
            None
            if row is None
            else MailingList(row[0], row[1], row[2], row[3] == "double", bool(row[4]))
        )

    def get_list(self, slug: str) -> MailingList:
        found = self.find_list(slug)
        if found is None:
            raise NotFoundError("list", slug, "see `mailer lists ls`")
        return found

    def list_summaries(self) -> list[ListSummary]:
        rows = self._query(
            "SELECT l.id, l.slug, l.name, l.opt_in, l.public_archive,"
            " SUM(m.status = 'confirmed' AND s.status = 'active'),"
            " SUM(m.status = 'unconfirmed' AND s.status = 'active'),"
            " SUM(m.status = 'unsubscribed'),"
            " SUM(m.status != 'unsubscribed' AND s.status = 'bounced'),"
            " SUM(m.status != 'unsubscribed' AND s.status = 'blocklisted')"
            " FROM lists l LEFT JOIN memberships m ON m.list_id = l.id"
            " LEFT JOIN subscribers s ON s.id = m.subscriber_id GROUP BY l.id ORDER BY l.slug"
        )
        names = ("confirmed", "unconfirmed", "unsubscribed", "bounced", "blocklisted")
        return [
            ListSummary(
                MailingList(r[0], r[1], r[2], r[3] == "double", bool(r[4])),
                {name: r[5 + i] or 0 for i, name in enumerate(names)},
            )
            for r in rows
        ]

    def remove_list(self, slug: str) -> int:
        """Delete a list and its memberships; return how many memberships went with it."""
        mailing_list = self.get_list(slug)
        with self.transaction():
            count = self.db.execute(
                "SELECT COUNT(*) FROM memberships WHERE list_id = ?", (mailing_list.id,)
            ).fetchone()[0]
            self.db.execute("DELETE FROM lists WHERE id = ?", (mailing_list.id,))
        return int(count)

    # subscribers

    def members(self, mailing_list: MailingList, statuses: Sequence[str] = ()) -> Iterator[Member]:
        """Stream the list's members in subscription order, optionally filtered by status."""
        sql = (
            "SELECT s.id, s.email, s.name, s.attributes, m.status, s.status, s.smtputf8"
            " FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id WHERE m.list_id = ?"
        )
        params: list[Any] = [mailing_list.id]
        if statuses:
            sql += f" AND (m.status IN {CHUNK_SQL_IN} OR s.status IN {CHUNK_SQL_IN})"
            params += [json.dumps(list(statuses))] * 2
        try:
            for row in self.db.execute(sql + " ORDER BY s.id", params):
                yield Member(
                    row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], bool(row[6])
                )
        except sqlite3.Error as error:
            raise self._error(error) from None

    def attribute_keys(self, mailing_list: MailingList, statuses: Sequence[str] = ()) -> list[str]:
        sql = (
            "SELECT DISTINCT j.key FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id,"
            " json_each(s.attributes) j WHERE m.list_id = ?"
        )
        params: list[Any] = [mailing_list.id]
        if statuses:
            sql += f" AND (m.status IN {CHUNK_SQL_IN} OR s.status IN {CHUNK_SQL_IN})"
            params += [json.dumps(list(statuses))] * 2
        return sorted(row[0] for row in self._query(sql, params))

    def put_members(
        self,
        mailing_list: MailingList,
        candidates: Sequence[Candidate],
        *,
        resubscribe: bool = False,
        confirmed: bool = False,
        dry_run: bool = False,
    ) -> list[Outcome]:
        """Add or update a batch of distinct addresses on a list, in one transaction."""
        stamp = now()
        joined = "confirmed" if confirmed or not mailing_list.double_opt_in else "unconfirmed"
        outcomes: list[Outcome] = []
        new_subscribers: list[tuple[Any, ...]] = []
        changed: list[tuple[Any, ...]] = []
        new_members: list[tuple[Any, ...]] = []
        rejoined: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        with self.transaction() as db:
            existing = {
                row[0]: row
                for row in db.execute(
                    "SELECT s.email, s.id, s.name, s.attributes, s.status, m.status"
                    " FROM subscribers s LEFT JOIN memberships m"
                    " ON m.subscriber_id = s.id AND m.list_id = ?"
                    f" WHERE s.email IN {CHUNK_SQL_IN}",
                    (mailing_list.id, json.dumps([c.email for c in candidates])),
                )
            }
            for c in candidates:
                row = existing.get(c.email)
                if row is None:
                    attributes = json.dumps(c.attributes, ensure_ascii=False, sort_keys=True)
                    new_subscribers.append(
                        (c.email, c.name or "", attributes, c.smtputf8, stamp, stamp)
                    )
                    new_members.append((mailing_list.id, joined, stamp, c.email))
                    events.append((stamp, "subscribed", mailing_list.id, "", c.email))
                    outcomes.append(Outcome.ADDED)
                    continue
                _, sid, name, attributes_json, status, membership = row
                left = (
                    membership == MembershipStatus.UNSUBSCRIBED or status != SubscriberStatus.ACTIVE
                )
                if left and not resubscribe:
                    outcomes.append(Outcome.SKIPPED)
                    continue
                attributes = json.loads(attributes_json)
                merged = {**attributes, **c.attributes}
                new_name = c.name if c.name else name
                if new_name != name or merged != attributes or status != SubscriberStatus.ACTIVE:
                    changed.append(
                        (
                            new_name,
                            json.dumps(merged, ensure_ascii=False, sort_keys=True),
                            stamp,
                            sid,
                        )
                    )
                if membership is None or membership == MembershipStatus.UNSUBSCRIBED:
                    rejoined.append((mailing_list.id, sid, joined, stamp))
                    detail = "resubscribed" if left else ""
                    events.append((stamp, "subscribed", mailing_list.id, detail, c.email))
                    outcomes.append(Outcome.ADDED)
                elif new_name != name or merged != attributes or status != SubscriberStatus.ACTIVE:
                    outcomes.append(Outcome.UPDATED)
                else:
                    outcomes.append(Outcome.UNCHANGED)
            if dry_run:
                return outcomes
            db.executemany(
                "INSERT INTO subscribers"
                " (email, name, attributes, smtputf8, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                new_subscribers,
            )
            db.executemany(
                "UPDATE subscribers SET name = ?, attributes = ?, status = 'active', updated_at = ?"
                " WHERE id = ?",
                changed,
            )
            db.executemany(
                "INSERT INTO memberships (list_id, subscriber_id, status, updated_at)"
                " SELECT ?, id, ?, ? FROM subscribers WHERE email = ?",
                new_members,
            )
            db.executemany(
                "INSERT OR REPLACE INTO memberships (list_id, subscriber_id, status, updated_at)"
                " VALUES (?, ?, ?, ?)",
                rejoined,
            )
            db.executemany(
                "INSERT INTO events (at, kind, list_id, detail, subscriber_id)"
                " SELECT ?, ?, ?, ?, id FROM subscribers WHERE email = ?",
                events,
            )
        return outcomes

    def unsubscribe(self, mailing_list: MailingList, email: str, detail: str = "") -> bool:
        """Mark a membership unsubscribed and record it; False when it already was."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT s.id, m.status FROM subscribers s JOIN memberships m"
                " ON m.subscriber_id = s.id AND m.list_id = ? WHERE s.email = ?",
                (mailing_list.id, email),
            ).fetchone()
            if row is None:
                raise NotFoundError("subscriber", email, f"not on list {mailing_list.slug!r}")
            if row[1] == MembershipStatus.UNSUBSCRIBED:
                return False
            stamp = now()
            db.execute(
                "UPDATE memberships SET status = 'unsubscribed', updated_at = ?"
                " WHERE list_id = ? AND subscriber_id = ?",
                (stamp, mailing_list.id, row[0]),
            )
            db.execute(
                "INSERT INTO events (at, kind, subscriber_id, list_id, detail)"
                " VALUES (?, 'unsubscribed', ?, ?, ?)",
                (stamp, row[0], mailing_list.id, detail),
            )
        return True

    def events_for(self, email: str) -> list[tuple[str, str, str]]:
        return [
            (r[0], r[1], r[2])
            for r in self._query(
                "SELECT e.at, e.kind, e.detail FROM events e JOIN subscribers s"
                " ON s.id = e.subscriber_id WHERE s.email = ? ORDER BY e.id",
                (email,),
            )
        ]

    # duplicate detection across the chunks of one import

    def start_seen(self) -> None:
        self.db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS seen (email TEXT PRIMARY KEY) WITHOUT ROWID"
        )
        self.db.execute("DELETE FROM seen")

    def already_seen(self, emails: Iterable[str]) -> set[str]:
        """Record ``emails`` as seen in this import; return those that were seen before."""
        batch = json.dumps(list(emails))
        try:
            before = {
                row[0]
                for row in self.db.execute(
                    f"SELECT email FROM seen WHERE email IN {CHUNK_SQL_IN}", (batch,)
                )
            }
            self.db.execute("INSERT OR IGNORE INTO seen SELECT value FROM json_each(?)", (batch,))
        except sqlite3.Error as error:
            raise self._error(error) from None
        return before

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.db.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise self._error(error) from None

    def _query_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    # the readers' side (mailer.web): memberships by ids, the subscribe form, the archive

    def list_by_id(self, list_id: int) -> MailingList | None:
        row = self._query_one(
            "SELECT id, slug, name, opt_in, public_archive FROM lists WHERE id = ?", (list_id,)
        )
        return (
            None
            if row is None
            else MailingList(row[0], row[1], row[2], row[3] == "double", bool(row[4]))
        )

    def set_public_archive(self, slug: str, public: bool) -> MailingList:
        """Publish (or withdraw) a list's campaigns in the online archive."""
        mailing_list = self.get_list(slug)
        with self.transaction() as db:
            db.execute(
                "UPDATE lists SET public_archive = ? WHERE id = ?", (public, mailing_list.id)
            )
        return replace(mailing_list, public_archive=public)

    def find_member(self, mailing_list: MailingList, email: str) -> Member | None:
        return self._member("s.email = ?", (mailing_list.id, email))

    def member_by_id(self, list_id: int, subscriber_id: int) -> Member | None:
        return self._member("s.id = ?", (list_id, subscriber_id))

    def _member(self, where: str, params: Sequence[Any]) -> Member | None:
        row = self._query_one(
            "SELECT s.id, s.email, s.name, s.attributes, m.status, s.status, s.smtputf8"
            " FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id"
            f" WHERE m.list_id = ? AND {where}",
            params,
        )
        if row is None:
            return None
        return Member(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], bool(row[6]))


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error; sqlite errors become StoreError."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.store.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise self.store._error(error) from None
        return self.store.db

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        db = self.store.db
        if kind is None:
            try:
                db.execute("COMMIT")
                return
            except sqlite3.Error as failure:
                db.execute("ROLLBACK")
                raise self.store._error(failure) from None
        if db.in_transaction:
            db.execute("ROLLBACK")
        if isinstance(error, sqlite3.Error):
            raise self.store._error(error) from None
