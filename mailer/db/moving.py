"""A SQLite workspace copied into PostgreSQL (`mailer db migrate-to`), every table checked."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from mailer.config.postgres_url import shown
from mailer.db.postgres import WRITE_LOCK, PostgresDatabase
from mailer.db.sqlite import SqliteDatabase
from mailer.errors import InputError, StoreError

# Parents before children, so that each row's references exist when COPY writes it. A list's
# welcome campaign is set once the campaigns are there.
ORDER = (
    "lists", "subscribers", "campaigns", "memberships", "events", "deliveries",
    "campaign_lists", "campaign_editions", "campaign_files", "campaign_workers", "tags",
    "erased_addresses", "processed_mail", "address_changes",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Moved:
    target: str  # the url, without its password
    counts: dict[str, int]  # rows per table, the same in both
    copied: bool  # False: the target held these rows already; nothing was written
    # NULs replaced by U+FFFD, per table: text SQLite kept and PostgreSQL cannot store
    replaced: dict[str, int] = field(default_factory=dict)


def migrate_to(
    source: SqliteDatabase, url: str, on_table: Callable[[str, int], None] = lambda t, n: None
) -> Moved:
    """Copy every table of ``source`` into the empty PostgreSQL database at ``url`` (its schema
    made first) in one transaction, from one snapshot of the source, then compare the row
    counts of every table. A target that holds these very rows already is left alone; one that
    holds any other rows is refused. ``on_table`` hears each table as it is copied."""
    with PostgresDatabase(url) as target:
        tables = _tables(source)
        # One snapshot, and no writer meanwhile: what one wrote after it would be lost once the
        # workspace moves to the copy.
        try:
            source.connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise source.error(error) from None
        try:
            counts = {table: _count(source, table) for table in tables}
            there = {table: _count(target, table) for table in tables}
            if any(there.values()):
                table = next((t for t in tables if there[t] != counts[t]), None)
                if table is None:  # as many rows: the same ones?
                    table = _differing(source, target, tables)
                    if table is None:
                        return Moved(target.where, counts, copied=False)
                raise InputError(f"{target.where} already holds other data ({table}: "
                                 f"{there[table]} rows, the workspace {counts[table]});"
                                 " migrate into an empty database")  # fmt: skip
            try:
                replaced = _copy(source, target, counts, on_table)
            except psycopg.Error as error:
                raise target.error(error) from None
        finally:
            source.connection.execute("COMMIT")
        after = {table: _count(target, table) for table in tables}
    if after != counts:
        wrong = next(t for t in tables if after[t] != counts[t])
        raise StoreError(
            shown(url), f"{wrong} has {after[wrong]} rows after the copy, not {counts[wrong]}"
        )
    return Moved(target.where, counts, copied=True, replaced=replaced)


def _tables(source: SqliteDatabase) -> list[str]:
    names = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
    found = {row[0] for row in source.query(names)}
    unknown = found - set(ORDER)
    if unknown:  # a table added by a migration must be placed in ORDER
        raise StoreError(source.where, f"tables not known to migrate-to: {', '.join(unknown)}")
    return [table for table in ORDER if table in found]


def _differing(
    source: SqliteDatabase, target: PostgresDatabase, tables: Sequence[str]
) -> str | None:
    """The first table whose rows are not the same in both (as the copy would make them),
    or None: each side's rows summed as digests, so that their order does not matter."""
    for table in tables:
        columns = ", ".join(_columns(source, table))
        select = f"SELECT {columns} FROM {table}"
        if _digest(source.stream(select)) != _digest(target.stream(select)):
            return table
    return None


def _digest(rows: Iterable[Sequence[Any]]) -> int:
    total = 0
    for row in rows:
        text = repr(tuple(_stored(value) for value in row)).encode("utf-8", "surrogatepass")
        total += int.from_bytes(hashlib.blake2b(text, digest_size=16).digest(), "big")
    return total % (1 << 128)


def _stored(value: Any) -> Any:
    """A value as PostgreSQL stores it: bytes for BYTEA, no NUL in text."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def _count(database: SqliteDatabase | PostgresDatabase, table: str) -> int:
    row = database.query_one(f"SELECT COUNT(*) FROM {table}")
    return int(row[0]) if row else 0


def _columns(source: SqliteDatabase, table: str) -> list[str]:
    return [row[1] for row in source.query(f"PRAGMA table_info({table})")]


def _copy(
    source: SqliteDatabase,
    target: PostgresDatabase,
    counts: dict[str, int],
    on_table: Callable[[str, int], None],
) -> dict[str, int]:
    """Copy each table; return how many NULs were replaced in each that had any."""
    connection, replaced = target.connection, {}
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        for table, count in counts.items():  # the tables in ORDER, with their rows
            columns = _columns(source, table)
            chosen = ", ".join(
                "NULL" if (table, c) == ("lists", "welcome_campaign_id") else c for c in columns
            )
            nuls = [0]
            rows = source.stream(f"SELECT {chosen} FROM {table}")
            # COPY, then a table with ids has its next id moved past them
            target.db.copy_rows(table, columns, _without_nul(rows, nuls))
            if nuls[0]:
                replaced[table] = nuls[0]
            on_table(table, count)
        welcomes = source.query(
            "SELECT id, welcome_campaign_id FROM lists WHERE welcome_campaign_id IS NOT NULL"
        )
        with connection.cursor() as cursor:
            cursor.executemany("UPDATE lists SET welcome_campaign_id = %s WHERE id = %s",
                               [(campaign, list_id) for list_id, campaign in welcomes])  # fmt: skip
    return replaced


def _without_nul(rows: Iterable[Sequence[Any]], nuls: list[int]) -> Iterator[Sequence[Any]]:
    """Each row as PostgreSQL can store it, counting the NULs replaced (older mailers let one
    in with a report's text)."""
    for row in rows:
        if any(isinstance(value, str) and "\x00" in value for value in row):
            nuls[0] += sum(value.count("\x00") for value in row if isinstance(value, str))
            row = tuple(_stored(value) for value in row)
        yield row
