"""The tests' private PostgreSQL server (tests/postgres_server.py) answers, on loopback only,
not as root, and hands out fresh databases; without PostgreSQL it skips, or fails under CI."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from tests.postgres_server import MISSING, PostgresServer, find_binaries, require_binaries

NAME = "Zoë Ødegård — 東京, “quoted”"


def test_server_stores_and_returns_non_ascii_text(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as connection:
        connection.execute("CREATE TABLE readers (id integer PRIMARY KEY, name text NOT NULL)")
        connection.execute("INSERT INTO readers (id, name) VALUES (%s, %s)", (1, NAME))
        connection.commit()
    with psycopg.connect(postgres_url) as connection:
        assert connection.execute("SELECT name FROM readers").fetchall() == [(NAME,)]
        assert connection.execute("SHOW server_encoding").fetchone() == ("UTF8",)


def test_server_listens_on_loopback_only(postgres: PostgresServer) -> None:
    assert postgres.url == f"postgresql://{postgres.user}@127.0.0.1:{postgres.port}/postgres"
    with psycopg.connect(postgres.url) as connection:
        assert connection.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert connection.execute("SHOW port").fetchone() == (str(postgres.port),)


def test_server_does_not_run_as_root(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.url) as connection:
        row = connection.execute("SELECT current_setting('data_directory')").fetchone()
        backend = connection.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None and backend is not None
    data = Path(row[0])
    assert data == postgres.data
    assert os.stat(data).st_uid != 0
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    for pid in (postmaster, backend[0]):
        assert 0 not in process_uids(pid), pid


def process_uids(pid: int) -> list[int]:
    """The real, effective, saved and filesystem user ids of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(uid) for uid in line.split()[1:]]
    raise AssertionError(f"no Uid line for process {pid}")


def test_fresh_databases_are_distinct_and_empty(postgres: PostgresServer) -> None:
    first, second = postgres.create_database(), postgres.create_database()
    try:
        assert first != second
        with psycopg.connect(first) as connection:
            assert user_tables(connection) == []
            connection.execute("CREATE TABLE lists (name text)")
            connection.commit()
            assert user_tables(connection) == ["lists"]
            first_name = connection.execute("SELECT current_database()").fetchone()
        with psycopg.connect(second) as connection:
            assert user_tables(connection) == []
            second_name = connection.execute("SELECT current_database()").fetchone()
        assert first_name != second_name
    finally:
        postgres.drop_database(first)
        postgres.drop_database(second)
    with psycopg.connect(postgres.url) as connection:
        names = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
    assert not names & {first.rsplit("/", 1)[1], second.rsplit("/", 1)[1]}


def user_tables(connection: psycopg.Connection[tuple[object, ...]]) -> list[object]:
    rows = connection.execute(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY table_name"
    ).fetchall()
    return [row[0] for row in rows]


def fake_version(root: Path, version: str) -> Path:
    folder = root / version / "bin"
    folder.mkdir(parents=True)
    for name in ("initdb", "pg_ctl", "postgres"):
        (folder / name).write_text("#!/bin/sh\n")
        (folder / name).chmod(0o755)
    return folder


def test_debian_binaries_newest_version_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    for version in ("9.6", "15", "13"):
        fake_version(tmp_path, version)
    (tmp_path / "16" / "bin").mkdir(parents=True)  # a version without its server: not chosen
    assert find_binaries(tmp_path) == tmp_path / "15" / "bin"


def test_without_postgresql_tests_skip_outside_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=MISSING):
        require_binaries(tmp_path)


def test_without_postgresql_tests_fail_in_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=MISSING):
        require_binaries(tmp_path)
