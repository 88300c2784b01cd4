"""A SQLite workspace copied into PostgreSQL (`mailer db migrate-to`), every table checked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mailer.db.postgres import WRITE_LOCK, PostgresDatabase, shown
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


def migrate_to(
    source: SqliteDatabase, url: str, on_table: Callable[[str, int], None] = lambda t, n: None
) -> Moved:
    """Copy every table of ``source`` into the empty PostgreSQL database at ``url`` (its schema
    made first) in one transaction, from one snapshot of the source, then compare the row
    counts of every table. A target that holds exactly these counts already is left alone;
    one that holds other rows is refused. ``on_table`` hears each table as it is copied."""
    with PostgresDatabase(url) as target:
        tables = _tables(source)
        # One snapshot, and no writer meanwhile: what one wrote after it would be lost once the
        # workspace moves to the copy.
        source.connection.execute("BEGIN IMMEDIATE")
        try:
            counts = {table: _count(source, table) for table in tables}
            there = {table: _count(target, table) for table in tables}
            if there == counts and any(counts.values()) and _same(source, target):
                return Moved(target.where, counts, copied=False)
            if any(there.values()):
                table = next((t for t in tables if there[t] != counts[t]), "lists")
                raise InputError(f"{target.where} already holds other data ({table}: "
                                 f"{there[table]} rows, the workspace {counts[table]});"
                                 " migrate into an empty database")  # fmt: skip
            _copy(source, target, counts, on_table)
        finally:
            source.connection.execute("COMMIT")
        after = {table: _count(target, table) for table in tables}
    if after != counts:
        wrong = next(t for t in tables if after[t] != counts[t])
        raise StoreError(
            shown(url), f"{wrong} has {after[wrong]} rows after the copy, not {counts[wrong]}"
        )
    return Moved(target.where, counts, copied=True)


def _tables(source: SqliteDatabase) -> list[str]:
    names = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
    found = {row[0] for row in source.query(names)}
    unknown = found - set(ORDER)
    if unknown:  # a table added by a migration must be placed in ORDER
        raise StoreError(source.where, f"tables not known to migrate-to: {', '.join(unknown)}")
    return [table for table in ORDER if table in found]


# What says two stores hold the same workspace, beyond their counts: the ids, the lists and
# the campaigns' reports.
SAME = (
    "SELECT MIN(id), MAX(id) FROM subscribers",
    "SELECT MIN(id), MAX(id) FROM events",
    "SELECT id, slug FROM lists ORDER BY id",
    "SELECT id, source_sha256 FROM campaigns ORDER BY id",
)


def _same(source: SqliteDatabase, target: PostgresDatabase) -> bool:
    return all(source.query(check) == target.query(check) for check in SAME)


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
) -> None:
    connection = target.connection
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        for table, count in counts.items():  # the tables in ORDER, with their rows
            columns = _columns(source, table)
            chosen = ", ".join(
                "NULL" if (table, c) == ("lists", "welcome_campaign_id") else c for c in columns
            )
            # COPY, then a table with ids has its next id moved past them
            target.db.copy_rows(table, columns, source.stream(f"SELECT {chosen} FROM {table}"))
            on_table(table, count)
        welcomes = source.query(
            "SELECT id, welcome_campaign_id FROM lists WHERE welcome_campaign_id IS NOT NULL"
        )
        with connection.cursor() as cursor:
            cursor.executemany("UPDATE lists SET welcome_campaign_id = %s WHERE id = %s",
                               [(campaign, list_id) for list_id, campaign in welcomes])  # fmt: skip
