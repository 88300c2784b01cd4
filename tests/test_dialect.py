"""The store's SQLite statements as PostgreSQL reads them: each rewrite, and what is left alone."""

from __future__ import annotations

import pytest

from mailer.db.dialect import to_postgres


@pytest.mark.parametrize(
    ("sqlite", "postgresql"),
    [
        ("SELECT id FROM lists WHERE slug = ?", "SELECT id FROM lists WHERE slug = %s"),
        # quoted text keeps its ? and its %, which psycopg must still see doubled
        ("SELECT '?', 'a%b' FROM t WHERE x LIKE ?", "SELECT '?', 'a%%b' FROM t WHERE x LIKE %s"),
        ("SELECT 1 FROM t WHERE x LIKE 'late%'", "SELECT 1 FROM t WHERE x LIKE 'late%%'"),
        ('SELECT "a?b" FROM t', 'SELECT "a?b" FROM t'),
        ("UPDATE t SET a = ?1, b = ?2 WHERE c = ?1",
         "UPDATE t SET a = %(p1)s, b = %(p2)s WHERE c = %(p1)s"),
        ("SELECT x FROM t WHERE id IN (SELECT value FROM json_each(?))",
         "SELECT x FROM t WHERE id = ANY(%s)"),
        ("SELECT x FROM t WHERE id NOT IN (SELECT value FROM json_each(?))",
         "SELECT x FROM t WHERE id <> ALL(%s)"),
        ("INSERT INTO seen SELECT value FROM json_each(?)",
         "INSERT INTO seen SELECT unnest(CAST(%s AS text[]))"),
        ("INSERT OR IGNORE INTO tags (a, b) VALUES (?, ?)",
         "INSERT INTO tags (a, b) VALUES (%s, %s) ON CONFLICT DO NOTHING"),
        ("INSERT OR IGNORE INTO lists (slug) VALUES (?) RETURNING id",
         "INSERT INTO lists (slug) VALUES (%s) ON CONFLICT DO NOTHING RETURNING id"),
        ("SELECT MAX(m.updated_at, s.updated_at) FROM m",
         "SELECT GREATEST(m.updated_at, s.updated_at) FROM m"),
        ("SELECT MAX(id) FROM t", "SELECT MAX(id) FROM t"),
        ("WHERE a IS NOT ? AND b IS ?",
         "WHERE a IS DISTINCT FROM %s AND b IS NOT DISTINCT FROM %s"),
        ("WHERE lang = ? COLLATE NOCASE", 'WHERE lang = %s COLLATE "nocase"'),
        ("SELECT instr(lower(r), ?) FROM c", "SELECT strpos(lower(r), %s) FROM c"),
        ("CREATE TEMP TABLE s (e TEXT PRIMARY KEY) WITHOUT ROWID",
         "CREATE TEMP TABLE s (e TEXT PRIMARY KEY) "),
    ],
)  # fmt: skip
def test_each_rewrite(sqlite: str, postgresql: str) -> None:
    assert to_postgres(sqlite).sql == postgresql


def test_lists_are_bound_as_arrays_and_numbered_marks_by_name() -> None:
    statement = to_postgres("SELECT x FROM t WHERE a = ? AND b IN (SELECT value FROM json_each(?))")
    assert statement.bind([3, "[1, 2]"]) == [3, [1, 2]]
    assert statement.bind([3, (4, 5)]) == [3, [4, 5]]
    numbered = to_postgres("UPDATE t SET a = ?2 WHERE b = ?1")
    assert numbered.bind(["x", "y"]) == {"p1": "x", "p2": "y"}


def test_an_insert_that_gives_its_id_is_known() -> None:
    assert to_postgres("INSERT INTO subscribers (id, email) VALUES (?, ?)").gives_id_of == (
        "subscribers"
    )
    assert to_postgres("INSERT INTO subscribers (email) VALUES (?)").gives_id_of == ""


@pytest.mark.parametrize(
    "sqlite",
    [
        "SELECT x FROM t WHERE a IN (SELECT value FROM json_each(?1))",
        "SELECT x FROM t WHERE a = ? AND b = ?2",
        "WITH c AS (SELECT 1) INSERT OR IGNORE INTO t SELECT * FROM c",
    ],
)
def test_a_statement_the_dialect_cannot_say_is_refused_not_sent_wrong(sqlite: str) -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        to_postgres(sqlite)
