"""`mailer db migrate-to`: a SQLite workspace copied into PostgreSQL, checked, and idempotent."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg

from mailer.config.checks import postgres_url
from mailer.db.moving import ORDER
from mailer.db.postgres import WRITE_LOCK
from tests.conftest import EXAMPLE_CSV, EXAMPLE_REPORT, Invoke, store

READS = (("subscribers", "ls", "example"), ("campaigns", "show", "1"), ("lists", "ls"),
         ("subscribers", "show", "anna.schmidt@example.com"))  # fmt: skip


def lived_in(mailer: Invoke, workspace: Path) -> None:
    """A workspace with a history: readers, a sent campaign, one who left, one blocked, one
    erased, and a list's welcome."""
    steps = [
        ("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list"),
        ("send", str(EXAMPLE_REPORT), "--list", "example", "--yes"),
        ("subscribers", "rm", "example", "anna.schmidt@example.com"),
        ("subscribers", "block", "david.jones@example.org"),
        ("subscribers", "forget", "priya.raman@example.org", "--yes"),
        ("lists", "set", "example", "--welcome", str(EXAMPLE_REPORT)),
    ]
    for step in steps:
        done = mailer(*step)
        assert done.exit_code == 0, (step, done.output)


def sqlite_counts(workspace: Path) -> dict[str, int]:
    db = sqlite3.connect(workspace / "subscribers" / "mailer.db")
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {n: db.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0] for n in names}


def test_a_workspace_moves_whole_and_a_second_run_changes_nothing(
    mailer: Invoke, workspace: Path, postgres_url: str
) -> None:
    lived_in(mailer, workspace)
    before = {args: mailer(*args).stdout for args in READS}
    counts = sqlite_counts(workspace)
    moved = mailer("db", "migrate-to", postgres_url)
    assert moved.exit_code == 0, moved.output
    lines = moved.stdout.splitlines()
    assert lines[0] == f"copied into {postgres_url}"
    shown = {line.split()[0]: int(line.split()[1]) for line in lines[1:-1]}
    assert shown == counts and counts["deliveries"] == 20 and counts["events"] > 20
    env = {"MAILER_DATABASE_URL": postgres_url}
    assert {args: mailer(*args, env=env).stdout for args in READS} == before
    again = mailer("db", "migrate-to", postgres_url)
    assert again.exit_code == 0
    assert again.stdout.splitlines()[0] == f"already in, nothing copied: {postgres_url}"
    with store(workspace) as sqlite:  # no MAILER_DATABASE_URL: still the SQLite file
        largest = sqlite.query_one("SELECT MAX(id) FROM subscribers")
    added = mailer("subscribers", "add", "example", "new@example.org", env=env)
    assert added.exit_code == 0, added.output
    with psycopg.connect(postgres_url) as moved_to:
        new = moved_to.execute("SELECT id FROM subscribers WHERE email = 'new@example.org'")
        assert largest is not None and new.fetchone() == (largest[0] + 1,)  # past the copied


def test_a_database_holding_other_data_is_refused(
    mailer: Invoke, workspace: Path, postgres_url: str
) -> None:
    env = {"MAILER_DATABASE_URL": postgres_url}
    assert mailer("lists", "create", "other", env=env).exit_code == 0
    assert mailer("lists", "create", "mine").exit_code == 0
    refused = mailer("db", "migrate-to", postgres_url)
    assert refused.exit_code == 1
    assert refused.stderr == (
        f"error: {postgres_url} already holds other data (lists: 1 rows, the workspace 1);"
        " migrate into an empty database\n"
    )


def test_bad_urls_are_one_line_and_nothing_is_created(mailer: Invoke, workspace: Path) -> None:
    assert mailer("lists", "create", "mine").exit_code == 0
    for url, says in [
        ("postgresql://editor:hunter2@db.example.org/news", "must not hold a password"),
        ("postgresql://editor@db.example.org/news?password=hunter2", "must not hold a password"),
        ("postgresql://editor@db.example.org/news?pass%77ord=hunter2", "must not hold a password"),
        ("postgresql://editor@db.example.org/news?sslpassword=hunter2", "must not hold a password"),
        ("postgresql://editor:hunter2?x@db.example.org/news", "must not hold a password"),
        ("postgresql://editor:hunter2#x@db.example.org/news", "must not hold a password"),
        # a '/' in it ends the host early: libpq would read a port 'hunter2' and a database
        ("postgresql://editor:hunter2/x@127.0.0.1:5432/news", "percent-encode a '/'"),
        ("postgresql://editor@127.0.0.1:hunter2/news", "is not read as meant"),
        ("mysql://db.example.org/news", "must be a url such as postgresql://"),
        ("postgresql://nobody@127.0.0.1:1/news", "cannot connect"),
    ]:
        done = mailer("db", "migrate-to", url)
        assert done.exit_code == 1 and says in done.stderr, done.output
        assert len(done.stderr.splitlines()) == 1 and "hunter2" not in done.output
        if says != "cannot connect":  # the setting is refused alike, unshown
            used = mailer("lists", "ls", env={"MAILER_DATABASE_URL": url})
            assert used.exit_code == 1 and says in used.stderr, used.output
            assert "hunter2" not in used.output


def test_urls_libpq_reads_as_meant_are_taken() -> None:
    for url in [
        "postgresql://mailer@db1.example.org,db2.example.org/news",  # each on the default port
        "postgresql://mailer@db1.example.org,db2.example.org:5433/news",
        "postgresql://mailer@[::1],[::2]:5433/news",
        "postgresql://mailer%40tenant@db.example.org/news",  # Azure's user@server
        "postgresql:///news?host=/var/run/postgresql",
    ]:
        assert postgres_url(url) is None, url


def test_every_table_of_the_schema_has_its_place_in_the_copy(workspace: Path) -> None:
    with store(workspace):
        pass
    assert set(sqlite_counts(workspace)) == set(ORDER)


def test_without_psycopg_postgresql_is_one_line_saying_how_to_get_it(workspace: Path) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None  # as where the extra is not installed\n"
        "from mailer.cli import app; app(sys.argv[1:])"
    )
    url = "postgresql://mailer@db.example.org/news"
    for args, env in [
        (["db", "migrate-to", url], {}),
        (["lists", "ls"], {"MAILER_DATABASE_URL": url}),
    ]:
        command = [sys.executable, "-c", code, "-w", str(workspace), *args]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env})
        assert done.returncode == 1, done.stderr
        assert done.stderr == "error: PostgreSQL needs psycopg: pip install 'mailer[postgresql]'\n"


def test_a_second_run_compares_the_rows_not_only_their_counts(
    mailer: Invoke, workspace: Path, postgres_url: str
) -> None:
    lived_in(mailer, workspace)
    assert mailer("db", "migrate-to", postgres_url).exit_code == 0
    # As a resume on the old file does, after the move: no table changes its count.
    with sqlite3.connect(workspace / "subscribers" / "mailer.db") as db:
        db.execute("UPDATE deliveries SET status = 'deferred' WHERE subscriber_id = 1")
    again = mailer("db", "migrate-to", postgres_url)
    assert again.exit_code == 1 and again.stdout == ""
    assert again.stderr == (
        f"error: {postgres_url} already holds other data (deliveries: 20 rows, the workspace 20);"
        " migrate into an empty database\n"
    )


def test_a_nul_an_older_mailer_stored_is_replaced_and_said(
    mailer: Invoke, workspace: Path, postgres_url: str
) -> None:
    lived_in(mailer, workspace)
    with sqlite3.connect(workspace / "subscribers" / "mailer.db") as db:
        db.execute("UPDATE campaigns SET source = source || ? WHERE id = 1", ("A NUL: \x00.",))
    moved = mailer("db", "migrate-to", postgres_url)
    assert moved.exit_code == 0, moved.output
    assert moved.stdout.splitlines()[-2] == (
        "  campaigns: 1 NUL characters replaced by U+FFFD (PostgreSQL cannot store them)"
    )
    with psycopg.connect(postgres_url) as moved_to:
        source = moved_to.execute("SELECT source FROM campaigns WHERE id = 1").fetchone()
    assert source is not None and source[0].endswith("A NUL: \ufffd.")
    again = mailer("db", "migrate-to", postgres_url)
    assert again.exit_code == 0 and again.stdout.startswith("already in, nothing copied")


def test_a_report_holding_a_nul_is_one_line_with_its_line(mailer: Invoke, workspace: Path) -> None:
    report = workspace / "nul.md"
    report.write_bytes(b"---\nsubject: Nul\n---\n# Nul\n\nHello\x00 there\n")
    assert mailer("lists", "create", "w").exit_code == 0
    for args in [
        ("send", str(report), "--list", "w", "--yes"),
        ("render", str(report)),
        ("lists", "set", "w", "--welcome", str(report)),
    ]:
        done = mailer(*args)
        assert done.exit_code == 1 and done.stdout == "", done.output
        assert done.stderr == f"error: {report}:6: a NUL character: is it a text file?\n"


def test_a_busy_workspace_or_database_is_one_line(
    mailer: Invoke, workspace: Path, postgres_url: str
) -> None:
    assert mailer("lists", "create", "mine").exit_code == 0
    env = {"MAILER_DATABASE_BUSY_TIMEOUT": "0.2"}
    writer = sqlite3.connect(workspace / "subscribers" / "mailer.db")
    writer.execute("BEGIN IMMEDIATE")  # as a long send or import holds it
    try:
        busy = mailer("db", "migrate-to", postgres_url, env=env)
    finally:
        writer.rollback()
    assert busy.exit_code == 1, busy.output
    assert busy.stderr.endswith("locked by another process; try again when it is done\n")
    assert len(busy.stderr.splitlines()) == 1
    with psycopg.connect(postgres_url, autocommit=True) as other:  # another migrate-to
        mailer("lists", "ls", env={"MAILER_DATABASE_URL": postgres_url})  # the schema made
        other.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))
        locked = mailer("db", "migrate-to", postgres_url, env=env)
    assert locked.exit_code == 1, locked.output
    assert locked.stderr == (
        f"error: database {postgres_url}: locked by another process; try again when it is done\n"
    )
    assert mailer("db", "migrate-to", postgres_url).exit_code == 0  # nothing half-written


def test_no_workspace_is_the_usual_line(tmp_path: Path, workspace: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mailer", "db", "migrate-to",
                           "postgresql://mailer@127.0.0.1:1/news"], cwd=tmp_path,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == "error: no workspace here: run `mailer init`, or use -w PATH\n"
