"""Migrations keep what a database already holds: a version 4 database with readers, events and
deliveries opens as the newest schema, every row and reference intact, old joins dated."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from mailer.db.postgres import PostgresDatabase
from mailer.db.schema import MIGRATIONS, SCHEMA
from mailer.db.sqlite import SqliteDatabase as Database
from mailer.db.sqlite import into_wal
from mailer.errors import StoreError

ROWS = {
    "lists": "INSERT INTO lists VALUES (1, 'weekly', 'Weekly', 'double', 1, '2026-01-01')",
    "subscribers": "INSERT INTO subscribers VALUES"
    " (1, 'ada@example.org', 'Ada', '{\"city\": \"Oslo\"}', 0, 'bounced', '2026-01-01',"
    " '2026-01-02'), (2, 'bob@example.org', '', '{}', 1, 'active', '2026-01-01', '2026-01-01')",
    "memberships": "INSERT INTO memberships VALUES (1, 1, 'confirmed', '2026-01-01'),"
    " (1, 2, 'unsubscribed', '2026-01-03')",
    "events": "INSERT INTO events VALUES (1, '2026-01-01', 'subscribed', 1, 1, NULL, ''),"
    " (2, '2026-01-02', 'bounced', 1, 1, 1, '550 5.1.1')",
    "campaigns": "INSERT INTO campaigns VALUES (1, 1, 'weekly', 'S', 'r.md', '# S', 'ab', 'done',"
    " '', '{}', '2026-01-02', '2026-01-02', '2026-01-02')",
    "deliveries": "INSERT INTO deliveries VALUES (1, 1, 'failed', 1, 550, 'gone', '<m@x>', NULL,"
    " '550 gone'), (1, 2, 'sent', 1, 250, '', '<n@x>', '2026-01-02', '250 ok')",
}


def version_4(path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA foreign_keys = ON")
    for number, script in enumerate(SCHEMA[:4], start=1):
        db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    for sql in ROWS.values():
        db.execute(sql)
    rows = {table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() for table in ROWS}
    db.close()
    return rows


def test_a_populated_version_4_database_migrates_intact(tmp_path: Path) -> None:
    path = tmp_path / "mailer.db"
    before = version_4(path)
    with Database(path) as database:
        assert database.query_one("PRAGMA user_version") == (len(MIGRATIONS),)
        for table, rows in before.items():  # every row, with the columns added since after them
            now = database.query(f"SELECT * FROM {table} ORDER BY 1, 2")
            assert [row[: len(rows[0])] for row in now] == rows, table
        joined = "SELECT subscriber_id, joined_at FROM memberships ORDER BY 1"
        # the first event on the list where there is one, else the membership's last change
        assert database.query(joined) == [(1, "2026-01-01"), (2, "2026-01-03")]
        assert database.query("PRAGMA foreign_key_check") == []
        assert database.query_one("PRAGMA foreign_keys") == (1,)
        with database.transaction() as db:  # the new status is allowed, references still hold
            db.execute("UPDATE subscribers SET status = 'erased' WHERE id = 2")
            db.execute("DELETE FROM lists WHERE id = 1")  # cascades to memberships
        assert database.query("SELECT COUNT(*) FROM memberships") == [(0,)]
    with Database(path) as again:  # opening it again migrates nothing
        assert again.query_one("PRAGMA user_version") == (len(MIGRATIONS),)


def test_two_processes_opening_a_new_database_at_once_both_succeed(tmp_path: Path) -> None:
    """`mailer serve`'s web side and scheduler (or two commands) migrate the same new file."""
    path = tmp_path / "mailer.db"
    code = (
        "import sys; from pathlib import Path\n"
        "from mailer.db.sqlite import SqliteDatabase as Database\n"
        "with Database(Path(sys.argv[1])) as db: print(db.query_one('PRAGMA user_version')[0])"
    )
    runs = [subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(6)]  # fmt: skip
    answers = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0] * 6, answers
    assert {out.strip() for out, _ in answers} == {str(len(MIGRATIONS))}


def test_six_processes_opening_a_new_postgresql_database_at_once_all_succeed(
    postgres_url: str,
) -> None:
    """The same on PostgreSQL: the schema is made once, under its lock; the others wait."""
    code = (
        "import sys\n"
        "from mailer.db.postgres import PostgresDatabase as Database\n"
        "with Database(sys.argv[1]) as db:\n"
        "    print(db.query_one('SELECT version FROM mailer_schema')[0])"
    )
    runs = [subprocess.Popen([sys.executable, "-c", code, postgres_url], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(6)]  # fmt: skip
    answers = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0] * 6, answers
    assert {out.strip() for out, _ in answers} == {str(len(MIGRATIONS))}


def test_a_connection_given_back_holds_no_session_lock(postgres_url: str) -> None:
    """Where an unlock never ran (an interrupt), the pool does not keep the lock for others."""
    database = PostgresDatabase(postgres_url)
    database.query("SELECT pg_advisory_lock(42)")
    database.close()
    with psycopg.connect(postgres_url, autocommit=True) as other:
        assert other.execute("SELECT pg_try_advisory_lock(42)").fetchone() == (True,)


def _writing(path: Path) -> sqlite3.Connection:
    """Another process's connection, mid-write on a file still in rollback-journal mode."""
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE IF NOT EXISTS t (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    return writer


def test_the_switch_to_wal_waits_for_a_writer_sqlite_refuses_at_once(tmp_path: Path) -> None:
    """SQLite answers SQLITE_BUSY at once, busy timeout or not, while another connection writes;
    the switch is tried again, and here the writer finishes during the first pause."""
    path = tmp_path / "mailer.db"
    writer = _writing(path)
    reader = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # what SQLite alone does
        reader.execute("PRAGMA journal_mode = WAL")
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        writer.execute("COMMIT")

    into_wal(reader, 5.0, pause)
    assert len(pauses) == 1
    assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_file_busy_past_the_timeout_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mailer.db"
    writer = _writing(path)
    with pytest.raises(StoreError, match="locked by another process"):
        Database(path, busy_timeout=0.0)
    writer.execute("COMMIT")
    with Database(path) as database:  # and once the writer is done, it opens and migrates
        assert database.query_one("PRAGMA journal_mode") == ("wal",)
        assert database.query_one("PRAGMA user_version") == (len(MIGRATIONS),)
